// The projections a config defines (see projections.hpp).
#include "tools/ctl/projections.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

#include "common/topic_names.hpp"

namespace syncline::ctl {

std::string_view to_string(Sink sink) { return sink == Sink::pg ? "pg" : "es"; }

std::string_view to_string(ProjectionKind kind) {
  switch (kind) {
    case ProjectionKind::pg_mirror:
      return "pg mirror";
    case ProjectionKind::pg_sql:
      return "pg sql";
    case ProjectionKind::es_index:
      return "es index";
  }
  return "?";
}

namespace {

void normalise(std::vector<std::string>& topics) {
  std::sort(topics.begin(), topics.end());
  topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
}

}  // namespace

std::vector<ProjectionInfo> list_projections(const Config& config) {
  const std::string& prefix = config.kafka.topic_prefix;
  std::vector<ProjectionInfo> projections;
  if (config.read_db) {
    const auto& pg = config.pg_projector;
    if (pg.mirror && !pg.mirror->tables.empty()) {
      ProjectionInfo mirror{"mirror", Sink::pg, ProjectionKind::pg_mirror, pg.group_id, {}, pg.mirror->tables,
                            pg.mirror->schema};
      for (const auto& table : pg.mirror->tables)
        mirror.topics.push_back(row_change_topic_name(prefix, table.schema, table.table));
      normalise(mirror.topics);
      projections.push_back(std::move(mirror));
    }
    for (const auto& sql : pg.projections) {
      ProjectionInfo info{sql.name, Sink::pg, ProjectionKind::pg_sql, pg.group_id, sql.topics, {}, sql.name};
      normalise(info.topics);
      projections.push_back(std::move(info));
    }
  }
  if (config.search) {
    const auto& es = config.es_projector;
    for (const auto& index : es.indices) {
      ProjectionInfo info{index.name, Sink::es, ProjectionKind::es_index, es.group_id, {}, {}, index.name};
      for (const auto& mirror : es.mirror) {
        if (mirror.index != index.name) continue;
        info.tables.push_back(mirror.table);
        info.topics.push_back(row_change_topic_name(prefix, mirror.table.schema, mirror.table.table));
      }
      for (const auto& mapping : es.mappings) {
        if (mapping.index == index.name) info.topics.insert(info.topics.end(), mapping.topics.begin(), mapping.topics.end());
      }
      normalise(info.topics);
      projections.push_back(std::move(info));
    }
  }
  return projections;
}

const ProjectionInfo& find_projection(const std::vector<ProjectionInfo>& projections, std::string_view name,
                                      std::optional<Sink> sink) {
  const ProjectionInfo* found = nullptr;
  std::vector<std::string> known;
  for (const auto& projection : projections) {
    known.push_back(fmt::format("{} ({})", projection.name, to_string(projection.sink)));
    if (projection.name != name || (sink && projection.sink != *sink)) continue;
    if (found != nullptr) {
      throw std::invalid_argument(
          fmt::format("projection '{}' exists in both read PostgreSQL and the search index: add --sink pg or --sink es",
                      name));
    }
    found = &projection;
  }
  if (found == nullptr) {
    throw std::invalid_argument(fmt::format("no projection '{}'{} in the config; known: {}", name,
                                            sink ? fmt::format(" on sink {}", to_string(*sink)) : std::string(),
                                            known.empty() ? std::string("none") : fmt::format("{}", fmt::join(known, ", "))));
  }
  return *found;
}

}  // namespace syncline::ctl
