// The report of `syncline-ctl status` (see status_report.hpp).
#include "tools/ctl/status_report.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <memory>

#include "common/logging.hpp"
#include "common/topic_names.hpp"
#include "common/iso_time.hpp"

namespace syncline::ctl {

namespace {

constexpr std::chrono::seconds kConnectTimeout{5};

// The error of a section, with the service that failed named, secrets removed.
std::string section_error(std::string_view service, const std::exception& error) {
  return redact_secrets(fmt::format("{}: {}", service, error.what()));
}

std::string kind_name(ProjectionKind kind) {
  switch (kind) {
    case ProjectionKind::pg_mirror:
      return "pg_mirror";
    case ProjectionKind::pg_sql:
      return "pg_sql";
    case ProjectionKind::es_index:
      return "es_index";
  }
  return "unknown";
}

nlohmann::json optional_json(const std::optional<std::string>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}
nlohmann::json optional_json(const std::optional<std::int64_t>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}
nlohmann::json optional_json(const std::optional<Lsn>& value) {
  return value ? nlohmann::json(value->to_string()) : nlohmann::json(nullptr);
}

bool over_lag(std::int64_t lag, const StatusLimits& limits) { return limits.max_lag && lag > *limits.max_lag; }

bool over_age(const ProjectionReport& projection, const StatusLimits& limits) {
  // An idle source does not make a read model stale: age only matters while events are pending.
  return limits.max_age_seconds && projection.lag && *projection.lag > 0 && projection.age_seconds &&
         *projection.age_seconds > *limits.max_age_seconds;
}

}  // namespace

std::int64_t GroupReport::lag() const {
  std::int64_t total = 0;
  for (const auto& partition : state.partitions) total += partition.lag();
  return total;
}

std::vector<ProjectionReport> project_reports(const std::vector<ProjectionInfo>& projections,
                                              const std::vector<GroupReport>& groups,
                                              std::chrono::system_clock::time_point now) {
  std::vector<ProjectionReport> reports;
  for (const auto& projection : projections) {
    ProjectionReport report{projection, std::nullopt, {}, std::nullopt, std::nullopt};
    const auto group = std::find_if(groups.begin(), groups.end(), [&](const GroupReport& candidate) {
      return candidate.spec.group == projection.group && candidate.spec.sink == projection.sink;
    });
    if (group == groups.end()) {
      report.error = "its consumer group was not read";
    } else if (group->error) {
      report.error = group->error;
    } else {
      std::int64_t lag = 0;
      for (const auto& partition : group->state.partitions) {
        if (std::find(projection.topics.begin(), projection.topics.end(), partition.partition.topic) !=
            projection.topics.end())
          lag += partition.lag();
      }
      report.lag = lag;
      report.applied = newest_applied(group->state.partitions, projection.topics);
      if (report.applied.commit_time)
        report.age_seconds = std::max(0.0, std::chrono::duration<double>(now - *report.applied.commit_time).count());
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

StatusReport collect_status(const Config& config, std::chrono::system_clock::time_point now) {
  StatusReport report;
  report.generated_at = now;
  const auto projections = list_projections(config);

  std::unique_ptr<kafka::AdminClient> admin;
  TopicCatalog catalog;
  std::optional<std::string> kafka_error;
  try {
    admin = std::make_unique<kafka::AdminClient>(admin_properties(config.kafka));
    catalog = read_topic_catalog(*admin);
  } catch (const std::exception& error) {
    kafka_error = section_error("Kafka", error);
  }

  std::unique_ptr<pg::PgConnection> read_db;
  std::optional<std::string> read_db_error;
  for (auto& spec : configured_groups(projections)) {
    GroupReport group{std::move(spec), std::nullopt, {}};
    try {
      if (kafka_error) {
        group.error = kafka_error;
      } else if (group.spec.sink == Sink::pg && read_db_error) {
        group.error = read_db_error;
      } else {
        if (group.spec.sink == Sink::pg && !read_db) {
          try {
            read_db = std::make_unique<pg::PgConnection>(config.require_read_db().dsn, kConnectTimeout);
          } catch (const std::exception& error) {
            read_db_error = section_error("read PostgreSQL", error);
            throw;
          }
        }
        group.state = read_group_state(*admin, catalog, group.spec.sink, group.spec.group, group.spec.topics,
                                       read_db.get());
      }
    } catch (const pg::PgError& error) {
      group.error = read_db_error ? *read_db_error : section_error("read PostgreSQL", error);
    } catch (const std::exception& error) {
      group.error = section_error("Kafka", error);
    }
    report.groups.push_back(std::move(group));
  }
  report.projections = project_reports(projections, report.groups, now);

  SlotReport& slot = report.slot;
  slot.name = config.producer.slot;
  slot.warning_bytes = config.producer.slot_lag_warning_bytes;
  slot.configured = config.write_db.has_value();
  if (slot.configured) {
    try {
      pg::PgConnection write_db(config.write_db->dsn, kConnectTimeout);
      // to_jsonb: wal_status exists from PostgreSQL 13 on; older servers give NULL, not an error.
      const auto result = write_db.exec(
          "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, restart_lsn::text, "
          "confirmed_flush_lsn::text, to_jsonb(s) ->> 'wal_status' FROM pg_replication_slots s WHERE slot_name = $1",
          {slot.name});
      slot.exists = result.rows() == 1;
      if (slot.exists) {
        slot.active = result.value(0, 0) == "t";
        if (!result.is_null(0, 1)) slot.retained_wal_bytes = std::stoll(std::string(result.value(0, 1)));
        if (!result.is_null(0, 2)) slot.restart_lsn = Lsn::parse(result.value(0, 2));
        if (!result.is_null(0, 3)) slot.confirmed_flush_lsn = Lsn::parse(result.value(0, 3));
        slot.wal_status = result.get(0, 4);
      }
    } catch (const std::exception& error) {
      slot.error = section_error("write PostgreSQL", error);
    }
  }

  std::vector<std::pair<std::string, std::string>> dead_letter_topics{
      {"producer", dead_letter_topic_name(config.kafka.topic_prefix)}};
  if (config.read_db) dead_letter_topics.emplace_back("pg-projector", config.pg_projector.dead_letter_topic);
  if (config.search) dead_letter_topics.emplace_back("es-projector", config.es_projector.dead_letter_topic);
  for (auto& [component, topic] : dead_letter_topics) {
    DeadLetterReport dead{component, topic, false, 0, std::nullopt};
    if (kafka_error) {
      dead.error = kafka_error;
    } else if (const auto it = catalog.find(topic); it != catalog.end()) {
      dead.exists = true;
      try {
        for (int p = 0; p < it->second; ++p) {
          const auto watermarks = admin->watermark_offsets(topic, p, kKafkaTimeout);
          dead.messages += std::max<std::int64_t>(0, watermarks.high - watermarks.low);
        }
      } catch (const std::exception& error) {
        dead.error = section_error("Kafka", error);
      }
    }
    report.dead_letters.push_back(std::move(dead));
  }
  return report;
}

std::vector<std::string> find_problems(const StatusReport& report, const StatusLimits& limits) {
  std::vector<std::string> problems;
  for (const auto& group : report.groups) {
    if (group.error) {
      problems.push_back(fmt::format("{} group {}: {}", to_string(group.spec.sink), group.spec.group, *group.error));
      continue;
    }
    for (const auto& partition : group.state.partitions) {
      if (over_lag(partition.lag(), limits)) {
        problems.push_back(fmt::format("{} group {}: {}/{} lags {} event(s) behind, over --max-lag {}",
                                       to_string(group.spec.sink), group.spec.group, partition.partition.topic,
                                       partition.partition.partition, partition.lag(), *limits.max_lag));
      }
    }
  }
  const SlotReport& slot = report.slot;
  if (slot.configured) {
    if (slot.error) {
      problems.push_back(fmt::format("replication slot {}: {}", slot.name, *slot.error));
    } else if (!slot.exists) {
      problems.push_back(fmt::format("replication slot {} does not exist in the write database", slot.name));
    } else {
      if (!slot.active)
        problems.push_back(fmt::format("replication slot {} is not active: no producer is streaming from it", slot.name));
      if (slot.wal_status == "lost")
        problems.push_back(fmt::format("replication slot {} has lost WAL it needs (wal_status lost)", slot.name));
      if (slot.retained_wal_bytes && static_cast<std::uint64_t>(*slot.retained_wal_bytes) >= slot.warning_bytes) {
        problems.push_back(fmt::format("replication slot {} retains {} of WAL, at or over the warning threshold {} "
                                       "(producer.slot_lag_warning_bytes)",
                                       slot.name, format_bytes(static_cast<std::uint64_t>(*slot.retained_wal_bytes)),
                                       format_bytes(slot.warning_bytes)));
      }
    }
  }
  for (const auto& projection : report.projections) {
    if (over_age(projection, limits)) {
      problems.push_back(fmt::format("projection {} ({}): its newest applied commit is {} old, over --max-age {}, "
                                     "with {} event(s) pending",
                                     projection.info.name, to_string(projection.info.sink),
                                     format_seconds(*projection.age_seconds), format_seconds(*limits.max_age_seconds),
                                     *projection.lag));
    }
  }
  for (const auto& dead : report.dead_letters) {
    if (dead.error) problems.push_back(fmt::format("dead-letter topic {}: {}", dead.topic, *dead.error));
  }
  return problems;
}

nlohmann::json status_json(const StatusReport& report, const StatusLimits& limits) {
  using nlohmann::json;
  const auto problems = find_problems(report, limits);
  json groups = json::array();
  for (const auto& group : report.groups) {
    json partitions = json::array();
    for (const auto& partition : group.state.partitions) {
      partitions.push_back(
          {{"topic", partition.partition.topic},
           {"partition", partition.partition.partition},
           {"held", optional_json(partition.held_offset())},
           {"kafka_committed", optional_json(partition.kafka_committed)},
           {"low", partition.watermarks.low},
           {"high", partition.watermarks.high},
           {"lag", partition.lag()},
           {"commit_lsn", partition.held ? optional_json(partition.held->commit_lsn) : json(nullptr)},
           {"commit_ts", partition.held ? optional_json(partition.held->commit_ts) : json(nullptr)}});
    }
    groups.push_back({{"group", group.spec.group},
                      {"sink", to_string(group.spec.sink)},
                      {"projections", group.spec.projections},
                      {"error", optional_json(group.error)},
                      {"lag", group.error ? json(nullptr) : json(group.lag())},
                      {"missing_topics", group.state.missing_topics},
                      {"partitions", std::move(partitions)}});
  }
  const SlotReport& slot = report.slot;
  json slot_json{{"name", slot.name},
                 {"configured", slot.configured},
                 {"exists", slot.exists},
                 {"active", slot.active},
                 {"retained_wal_bytes", optional_json(slot.retained_wal_bytes)},
                 {"warning_bytes", slot.warning_bytes},
                 {"restart_lsn", optional_json(slot.restart_lsn)},
                 {"confirmed_flush_lsn", optional_json(slot.confirmed_flush_lsn)},
                 {"wal_status", optional_json(slot.wal_status)},
                 {"error", optional_json(slot.error)}};
  json projections = json::array();
  for (const auto& projection : report.projections) {
    projections.push_back({{"name", projection.info.name},
                           {"sink", to_string(projection.info.sink)},
                           {"kind", kind_name(projection.info.kind)},
                           {"group", projection.info.group},
                           {"topics", projection.info.topics},
                           {"lag", optional_json(projection.lag)},
                           {"last_commit_lsn", optional_json(projection.applied.commit_lsn)},
                           {"last_commit_ts", optional_json(projection.applied.commit_ts)},
                           {"age_seconds", projection.age_seconds ? json(*projection.age_seconds) : json(nullptr)},
                           {"error", optional_json(projection.error)}});
  }
  json dead_letters = json::array();
  for (const auto& dead : report.dead_letters) {
    dead_letters.push_back({{"component", dead.component},
                            {"topic", dead.topic},
                            {"exists", dead.exists},
                            {"messages", dead.messages},
                            {"error", optional_json(dead.error)}});
  }
  return {{"generated_at", format_iso_utc(report.generated_at)},
          {"ok", problems.empty()},
          {"problems", problems},
          {"limits",
           {{"max_lag", optional_json(limits.max_lag)},
            {"max_age_seconds", limits.max_age_seconds ? json(*limits.max_age_seconds) : json(nullptr)}}},
          {"groups", std::move(groups)},
          {"slot", std::move(slot_json)},
          {"projections", std::move(projections)},
          {"dead_letters", std::move(dead_letters)}};
}

std::string render_status(const StatusReport& report, const StatusLimits& limits, const Style& style) {
  std::string out;
  const auto heading = [&](std::string_view title) {
    if (!out.empty()) out += '\n';
    out += style.bold(title) + '\n';
  };
  const auto lag_cell = [&](std::int64_t lag) {
    const std::string text = format_count(lag);
    if (over_lag(lag, limits)) return style.red(text);
    return lag > 0 ? style.yellow(text) : text;
  };

  heading("Consumer groups");
  if (report.groups.empty()) out += style.dim("no projection is configured (pg_projector / es_projector)") + '\n';
  Table groups({"GROUP", "SINK", "TOPIC", "PARTITION", "HELD", "END", "LAG"});
  groups.align_right(3).align_right(4).align_right(5).align_right(6);
  std::string notes;
  for (const auto& group : report.groups) {
    const std::string label = fmt::format("{} group {} ({})", to_string(group.spec.sink), group.spec.group,
                                          fmt::join(group.spec.projections, ", "));
    if (group.error) {
      notes += style.red(fmt::format("{}: {}", label, *group.error)) + '\n';
      continue;
    }
    for (const auto& partition : group.state.partitions) {
      groups.add_row({group.spec.group, std::string(to_string(group.spec.sink)), partition.partition.topic,
                      std::to_string(partition.partition.partition), format_optional(partition.held_offset(), "none"),
                      format_count(partition.watermarks.high), lag_cell(partition.lag())});
    }
    for (const auto& topic : group.state.missing_topics)
      notes += style.dim(fmt::format("{}: topic {} does not exist yet (nothing published)", label, topic)) + '\n';
  }
  if (!groups.empty()) out += groups.render(style);
  out += notes;

  heading("Replication slot");
  const SlotReport& slot = report.slot;
  if (!slot.configured) {
    out += style.dim(fmt::format("slot {}: not checked (no write_db in the config)", slot.name)) + '\n';
  } else if (slot.error) {
    out += style.red(fmt::format("slot {}: {}", slot.name, *slot.error)) + '\n';
  } else if (!slot.exists) {
    out += style.red(fmt::format("slot {} does not exist in the write database", slot.name)) + '\n';
  } else {
    Table table({"SLOT", "ACTIVE", "RETAINED WAL", "WARNING AT", "RESTART LSN", "CONFIRMED FLUSH LSN", "WAL STATUS"});
    table.align_right(2).align_right(3);
    std::string retained = "-";
    if (slot.retained_wal_bytes) {
      retained = format_bytes(static_cast<std::uint64_t>(*slot.retained_wal_bytes));
      if (static_cast<std::uint64_t>(*slot.retained_wal_bytes) >= slot.warning_bytes) retained = style.red(retained);
    }
    table.add_row({slot.name, slot.active ? style.green("yes") : style.red("no"), retained,
                   format_bytes(slot.warning_bytes), slot.restart_lsn ? slot.restart_lsn->to_string() : "-",
                   slot.confirmed_flush_lsn ? slot.confirmed_flush_lsn->to_string() : "-",
                   slot.wal_status.value_or("-")});
    out += table.render(style);
  }

  heading("Freshness");
  Table freshness({"PROJECTION", "SINK", "KIND", "LAG", "LAST COMMIT LSN", "COMMIT TIME", "AGE"});
  freshness.align_right(3).align_right(6);
  for (const auto& projection : report.projections) {
    if (projection.error) {
      freshness.add_row({projection.info.name, std::string(to_string(projection.info.sink)),
                         std::string(to_string(projection.info.kind)), style.red("unknown"), "-", "-", "-"});
      continue;
    }
    std::string age = projection.age_seconds ? format_seconds(*projection.age_seconds) : "-";
    if (over_age(projection, limits)) age = style.red(age);
    freshness.add_row({projection.info.name, std::string(to_string(projection.info.sink)),
                       std::string(to_string(projection.info.kind)), lag_cell(projection.lag.value_or(0)),
                       projection.applied.commit_lsn ? projection.applied.commit_lsn->to_string() : "none",
                       projection.applied.commit_ts.value_or("-"), age});
  }
  if (freshness.empty()) {
    out += style.dim("no projection is configured") + '\n';
  } else {
    out += freshness.render(style);
  }

  heading("Dead letters");
  Table dead_letters({"COMPONENT", "TOPIC", "MESSAGES", ""});
  dead_letters.align_right(2);
  for (const auto& dead : report.dead_letters) {
    if (dead.error) {
      dead_letters.add_row({dead.component, dead.topic, style.red("unknown"), style.red(*dead.error)});
      continue;
    }
    const std::string messages = format_count(dead.messages);
    dead_letters.add_row({dead.component, dead.topic, dead.messages > 0 ? style.yellow(messages) : messages,
                          dead.exists ? std::string() : style.dim("(no topic yet)")});
  }
  out += dead_letters.render(style);

  out += '\n';
  const auto problems = find_problems(report, limits);
  if (problems.empty()) {
    out += style.green("No problems found.") + '\n';
  } else {
    out += style.red(style.bold(fmt::format("{} problem(s):", problems.size()))) + '\n';
    for (const auto& problem : problems) out += style.red("  - " + problem) + '\n';
  }
  return out;
}

}  // namespace syncline::ctl
