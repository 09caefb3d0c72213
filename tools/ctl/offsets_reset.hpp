// `syncline-ctl offsets reset`: the new position of a projection per partition (earliest, latest,
// a time, a source LSN), computed, shown, then written where its projector resumes from:
// read-PostgreSQL syncline.offsets plus the group's Kafka offsets (pg), the group's Kafka offsets
// (es). Refused while the group has live members.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "common/pg.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

struct ResetTarget {
  enum class Mode { earliest, latest, time, lsn };
  Mode mode = Mode::earliest;
  std::chrono::system_clock::time_point time{};  // Mode::time
  Lsn lsn{};                                      // Mode::lsn
  std::string describe() const;                   // "earliest", "time 2026-...Z", "LSN 0/16B3800"
};

struct PartitionReset {
  kafka::TopicPartition partition;
  kafka::WatermarkOffsets watermarks;
  std::optional<std::int64_t> before;        // what the projector resumes from now; nullopt: nothing held
  std::optional<std::int64_t> kafka_before;  // the group's committed offset (pg: for lag tools only)
  std::int64_t after = 0;
};

struct ResetPlan {
  ProjectionInfo projection;
  ResetTarget target;
  std::vector<PartitionReset> partitions;
  std::vector<std::string> missing_topics;  // configured topics Kafka does not have: nothing to reset
  // Other projections whose position moves too: the pg projections share one group, and a
  // position is per (group, topic, partition).
  std::vector<ProjectionInfo> also_affected;
  std::vector<std::string> warnings;
  bool moves_backwards() const;
};

// The pg projections other than `projection` that read one of its topics (none for es).
std::vector<ProjectionInfo> projections_sharing_topics(const std::vector<ProjectionInfo>& all,
                                                       const ProjectionInfo& projection);

// What the operator must know before the plan is applied: the projections it also moves, the
// SQL projections that would apply events twice (moving backwards), topics that do not exist.
std::vector<std::string> reset_warnings(const ResetPlan& plan);

// Throws Refused naming the group, its member count and hosts when the group has live members.
void refuse_if_group_is_live(kafka::AdminClient& admin, const std::string& group);

// Reads the current positions and computes the targets (nothing is written). `read_db` is
// required for a pg projection.
ResetPlan plan_reset(const Config& config, const std::vector<ProjectionInfo>& all, const ProjectionInfo& projection,
                     const ResetTarget& target, kafka::AdminClient& admin, pg::PgConnection* read_db);

// Writes the plan: the group's Kafka offsets first (the broker itself refuses while the group has
// members, which closes the race with a projector starting now), then, for pg, every
// syncline.offsets row in one transaction.
void apply_reset(const ResetPlan& plan, kafka::AdminClient& admin, pg::PgConnection* read_db);

nlohmann::json reset_json(const ResetPlan& plan, bool dry_run, bool applied);
std::string render_reset(const ResetPlan& plan, bool dry_run, bool applied, const Style& style);

}  // namespace syncline::ctl
