// `syncline-ctl offsets reset`: plan, refuse, apply (see offsets_reset.hpp).
#include "tools/ctl/offsets_reset.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>

#include "consumers/pg/offset_store.hpp"
#include "common/iso_time.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/pipeline_state.hpp"

namespace syncline::ctl {

std::string ResetTarget::describe() const {
  switch (mode) {
    case Mode::earliest:
      return "earliest";
    case Mode::latest:
      return "latest";
    case Mode::time:
      return "time " + format_iso_utc(time);
    case Mode::lsn:
      return "LSN " + lsn.to_string();
  }
  return "?";
}

bool ResetPlan::moves_backwards() const {
  return std::any_of(partitions.begin(), partitions.end(), [](const PartitionReset& reset) {
    // Nothing held means "from the beginning": no position can be behind it.
    return reset.before && reset.after < *reset.before;
  });
}

std::vector<ProjectionInfo> projections_sharing_topics(const std::vector<ProjectionInfo>& all,
                                                       const ProjectionInfo& projection) {
  std::vector<ProjectionInfo> sharing;
  if (projection.sink != Sink::pg) return sharing;  // each es index is positioned by the one es group alone
  for (const auto& other : all) {
    if (other.sink != Sink::pg || other.name == projection.name || other.group != projection.group) continue;
    const bool overlaps = std::any_of(other.topics.begin(), other.topics.end(), [&](const std::string& topic) {
      return std::find(projection.topics.begin(), projection.topics.end(), topic) != projection.topics.end();
    });
    if (overlaps) sharing.push_back(other);
  }
  return sharing;
}

void refuse_if_group_is_live(kafka::AdminClient& admin, const std::string& group) {
  const auto description = admin.describe_group(group, kKafkaTimeout);
  if (!description || description->members.empty()) return;
  std::set<std::string> hosts;
  for (const auto& member : description->members) hosts.insert(member.host.empty() ? member.client_id : member.host);
  throw Refused(fmt::format("consumer group {} has {} live member(s) (hosts: {}; state {}): stop its projector(s) "
                            "before resetting offsets",
                            group, description->members.size(), fmt::join(hosts, ", "), description->state));
}

std::vector<std::string> reset_warnings(const ResetPlan& plan) {
  std::vector<std::string> warnings;
  const ProjectionInfo& projection = plan.projection;
  if (!plan.also_affected.empty()) {
    std::vector<std::string> names;
    for (const auto& other : plan.also_affected) names.push_back(fmt::format("{} ({})", other.name, to_string(other.kind)));
    warnings.push_back(fmt::format("the pg projections share consumer group {}: the reset also moves {}, which read "
                                   "the same topics",
                                   projection.group, fmt::join(names, ", ")));
  }
  if (plan.moves_backwards()) {
    std::vector<std::string> sql;
    if (projection.kind == ProjectionKind::pg_sql) sql.push_back(projection.name);
    for (const auto& other : plan.also_affected)
      if (other.kind == ProjectionKind::pg_sql) sql.push_back(other.name);
    if (!sql.empty()) {
      warnings.push_back(fmt::format("moving backwards: SQL projection(s) {} will apply those events again, and SQL "
                                     "projections are not idempotent (counters count twice)",
                                     fmt::join(sql, ", ")));
    }
  }
  for (const auto& topic : plan.missing_topics)
    warnings.push_back(fmt::format("topic {} does not exist (yet): nothing to reset there", topic));
  return warnings;
}

ResetPlan plan_reset(const Config& config, const std::vector<ProjectionInfo>& all, const ProjectionInfo& projection,
                     const ResetTarget& target, kafka::AdminClient& admin, pg::PgConnection* read_db) {
  ResetPlan plan{projection, target, {}, {}, projections_sharing_topics(all, projection), {}};
  const GroupState state =
      read_group_state(admin, read_topic_catalog(admin), projection.sink, projection.group, projection.topics, read_db);
  plan.missing_topics = state.missing_topics;

  std::map<kafka::TopicPartition, std::int64_t> times;  // Mode::time: the first offset at or after it
  if (target.mode == ResetTarget::Mode::time) {
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(target.time.time_since_epoch()).count();
    std::vector<kafka::TopicPartitionOffset> request;
    for (const auto& partition : state.partitions)
      request.push_back({partition.partition.topic, partition.partition.partition, millis});
    for (const auto& found : admin.offsets_for_times(request, kKafkaTimeout))
      times[{found.topic, found.partition}] = found.offset;
  }
  for (const auto& partition : state.partitions) {
    PartitionReset reset{partition.partition, partition.watermarks, partition.held_offset(), partition.kafka_committed,
                         0};
    switch (target.mode) {
      case ResetTarget::Mode::earliest:
        reset.after = partition.watermarks.low;
        break;
      case ResetTarget::Mode::latest:
        reset.after = partition.watermarks.high;
        break;
      case ResetTarget::Mode::time: {
        const auto it = times.find(partition.partition);
        reset.after = it != times.end() ? it->second : partition.watermarks.high;
        break;
      }
      case ResetTarget::Mode::lsn: {
        PartitionReader reader(config.kafka, partition.partition);
        reset.after = first_offset_at_or_after_lsn(target.lsn, partition.watermarks,
                                                   [&](std::int64_t offset) { return reader.first_at_or_after(offset); });
        break;
      }
    }
    reset.after = std::clamp(reset.after, partition.watermarks.low, partition.watermarks.high);
    plan.partitions.push_back(std::move(reset));
  }

  plan.warnings = reset_warnings(plan);
  return plan;
}

void apply_reset(const ResetPlan& plan, kafka::AdminClient& admin, pg::PgConnection* read_db) {
  if (plan.partitions.empty()) return;
  std::vector<kafka::TopicPartitionOffset> offsets;
  for (const auto& reset : plan.partitions)
    offsets.push_back({reset.partition.topic, reset.partition.partition, reset.after});
  admin.alter_group_offsets(plan.projection.group, offsets, kKafkaTimeout);
  if (plan.projection.sink != Sink::pg) return;
  if (read_db == nullptr) throw std::logic_error("apply_reset: a pg projection needs the read database");
  pg_projector::OffsetStore::ensure_schema(*read_db);
  const pg_projector::OffsetStore store(plan.projection.group);
  pg::Transaction transaction(*read_db);
  // Also clears what the projector checks the topic's identity with (the last applied record),
  // so a reset onto a recreated topic is accepted.
  for (const auto& reset : plan.partitions)
    transaction.exec(pg_projector::OffsetStore::reset_sql(), store.reset_params(reset.partition, reset.after));
  transaction.commit();
}

namespace {

nlohmann::json optional_offset(const std::optional<std::int64_t>& offset) {
  return offset ? nlohmann::json(*offset) : nlohmann::json(nullptr);
}

std::string mode_name(ResetTarget::Mode mode) {
  switch (mode) {
    case ResetTarget::Mode::earliest:
      return "earliest";
    case ResetTarget::Mode::latest:
      return "latest";
    case ResetTarget::Mode::time:
      return "time";
    case ResetTarget::Mode::lsn:
      return "lsn";
  }
  return "?";
}

}  // namespace

nlohmann::json reset_json(const ResetPlan& plan, bool dry_run, bool applied) {
  nlohmann::json target{{"mode", mode_name(plan.target.mode)}};
  if (plan.target.mode == ResetTarget::Mode::time) target["time"] = format_iso_utc(plan.target.time);
  if (plan.target.mode == ResetTarget::Mode::lsn) target["lsn"] = plan.target.lsn.to_string();
  nlohmann::json partitions = nlohmann::json::array();
  for (const auto& reset : plan.partitions) {
    partitions.push_back({{"topic", reset.partition.topic},
                          {"partition", reset.partition.partition},
                          {"low", reset.watermarks.low},
                          {"high", reset.watermarks.high},
                          {"before", optional_offset(reset.before)},
                          {"kafka_before", optional_offset(reset.kafka_before)},
                          {"after", reset.after}});
  }
  nlohmann::json also = nlohmann::json::array();
  for (const auto& other : plan.also_affected) also.push_back(other.name);
  return {{"projection", plan.projection.name},
          {"sink", to_string(plan.projection.sink)},
          {"group", plan.projection.group},
          {"target", std::move(target)},
          {"dry_run", dry_run},
          {"applied", applied},
          {"also_affected", std::move(also)},
          {"warnings", plan.warnings},
          {"partitions", std::move(partitions)}};
}

std::string render_reset(const ResetPlan& plan, bool dry_run, bool applied, const Style& style) {
  std::string out = style.bold(fmt::format("Reset of projection {} ({}), consumer group {}, to {}",
                                           plan.projection.name, to_string(plan.projection.kind),
                                           plan.projection.group, plan.target.describe())) +
                    '\n';
  const bool pg = plan.projection.sink == Sink::pg;
  Table table(pg ? std::vector<std::string>{"TOPIC", "PARTITION", "LOW", "HIGH", "HELD BEFORE", "KAFKA BEFORE", "AFTER",
                                            "CHANGE"}
                 : std::vector<std::string>{"TOPIC", "PARTITION", "LOW", "HIGH", "BEFORE", "AFTER", "CHANGE"});
  for (std::size_t c = 1; c < (pg ? 8U : 7U); ++c) table.align_right(c);
  for (const auto& reset : plan.partitions) {
    const std::int64_t from = reset.before.value_or(reset.watermarks.low);
    const std::int64_t delta = reset.after - from;
    std::string change = "unchanged";
    if (delta < 0) change = style.yellow(fmt::format("{} to apply again", format_count(-delta)));
    if (delta > 0) change = style.yellow(fmt::format("{} skipped", format_count(delta)));
    std::vector<std::string> row{reset.partition.topic, std::to_string(reset.partition.partition),
                                 format_count(reset.watermarks.low), format_count(reset.watermarks.high),
                                 format_optional(reset.before, "none")};
    if (pg) row.push_back(format_optional(reset.kafka_before, "none"));
    row.push_back(format_count(reset.after));
    row.push_back(change);
    table.add_row(std::move(row));
  }
  out += table.empty() ? style.dim("no partition to reset") + '\n' : table.render(style);
  for (const auto& warning : plan.warnings) out += style.yellow("warning: " + warning) + '\n';
  if (dry_run) {
    out += "Dry run: nothing was changed.\n";
  } else if (applied) {
    out += style.green(pg ? "Applied: syncline.offsets and the group's Kafka offsets now hold the new positions."
                          : "Applied: the group's committed offsets now hold the new positions.") +
           '\n';
  }
  return out;
}

}  // namespace syncline::ctl
