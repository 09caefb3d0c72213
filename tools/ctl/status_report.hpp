// The report of `syncline-ctl status`: what it reads (consumer groups, the replication slot,
// freshness per projection, dead-letter topics), the problems it finds in it, and its two
// renderings (tables for people, JSON per schemas/status.schema.json for machines).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/lsn.hpp"
#include "tools/ctl/pipeline_state.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

// What counts as a problem beyond what always does (a store unreachable, the slot missing or
// inactive, retained WAL at the warning threshold).
struct StatusLimits {
  std::optional<std::int64_t> max_lag;       // events pending on one partition
  std::optional<double> max_age_seconds;     // age of the newest applied commit, while events are pending
};

struct GroupReport {
  GroupSpec spec;
  std::optional<std::string> error;  // Kafka or the sink's store did not answer
  GroupState state;
  std::int64_t lag() const;
};

struct SlotReport {
  std::string name;
  bool configured = false;  // false: no write_db in the config, nothing to check
  bool exists = false;
  bool active = false;
  std::optional<std::int64_t> retained_wal_bytes;
  std::optional<Lsn> restart_lsn;
  std::optional<Lsn> confirmed_flush_lsn;
  std::optional<std::string> wal_status;  // PostgreSQL's: reserved, extended, unreserved, lost
  std::uint64_t warning_bytes = 0;
  std::optional<std::string> error;
};

struct ProjectionReport {
  ProjectionInfo info;
  std::optional<std::int64_t> lag;  // nullopt when its group could not be read
  AppliedPosition applied;
  std::optional<double> age_seconds;  // now - applied.commit_time
  std::optional<std::string> error;
};

struct DeadLetterReport {
  std::string component;  // producer, pg-projector, es-projector
  std::string topic;
  bool exists = false;
  std::int64_t messages = 0;  // sum over partitions of high - low
  std::optional<std::string> error;
};

struct StatusReport {
  std::chrono::system_clock::time_point generated_at;
  std::vector<GroupReport> groups;
  SlotReport slot;
  std::vector<ProjectionReport> projections;
  std::vector<DeadLetterReport> dead_letters;
};

// Reads everything; a section whose service does not answer carries the error instead of
// aborting the report. `now` is the reference for ages.
StatusReport collect_status(const Config& config, std::chrono::system_clock::time_point now);

// The per-projection view (lag, newest applied position, age) derived from the groups.
std::vector<ProjectionReport> project_reports(const std::vector<ProjectionInfo>& projections,
                                              const std::vector<GroupReport>& groups,
                                              std::chrono::system_clock::time_point now);

// Every problem, one sentence each; empty: exit 0.
std::vector<std::string> find_problems(const StatusReport& report, const StatusLimits& limits);

// The --json document (schemas/status.schema.json).
nlohmann::json status_json(const StatusReport& report, const StatusLimits& limits);

// The human report: one section per part, then the problems (or "no problems found").
std::string render_status(const StatusReport& report, const StatusLimits& limits, const Style& style);

}  // namespace syncline::ctl
