// The projections a config defines, as syncline-ctl names them: one list that status, offsets,
// resync and verify all resolve "--projection NAME" against.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"

namespace syncline::ctl {

enum class Sink { pg, es };
std::string_view to_string(Sink sink);

enum class ProjectionKind {
  pg_mirror,  // pg_projector.mirror: row-change topics -> tables of one read schema
  pg_sql,     // pg_projector.projections[]: declarative SQL
  es_index,   // es_projector.indices[] (and the mirror/mappings entries writing to it)
};
std::string_view to_string(ProjectionKind kind);

struct ProjectionInfo {
  std::string name;  // "mirror" for the pg mirror; a SQL projection's name; an index's alias
  Sink sink = Sink::pg;
  ProjectionKind kind = ProjectionKind::pg_mirror;
  std::string group;                // the live consumer group (shared by every projection of the sink)
  std::vector<std::string> topics;  // every topic it reads, sorted, no duplicates
  std::vector<TableName> tables;    // mirrored source tables (pg mirror; es mirror entries of the index)
  std::string target;               // pg mirror: the read schema; es: the alias; pg_sql: the projection's name
};

// Every projection of the config, pg ones first, each sink's in config order. The pg mirror is
// listed as "mirror" when pg_projector.mirror has tables; an es index once, whatever writes to it.
std::vector<ProjectionInfo> list_projections(const Config& config);

// The projection called `name`; `sink` narrows the search when a name exists on both sinks.
// Throws std::invalid_argument naming the known projections when there is no such
// projection, or when the name is ambiguous without `sink`.
const ProjectionInfo& find_projection(const std::vector<ProjectionInfo>& projections, std::string_view name,
                                      std::optional<Sink> sink = std::nullopt);

}  // namespace syncline::ctl
