// ConsumerStatus: what both projectors report in the same shape — the /status document
// (status, queue_size, sync_lag_seconds, error_rate, last_sync, partitions), the /readyz answer
// and the per-partition lag gauges.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/http_server.hpp"
#include "common/kafka.hpp"
#include "common/metrics.hpp"

namespace syncline {

// Where a consumer stands on one partition.
struct PartitionProgress {
  kafka::TopicPartition partition;
  std::optional<std::int64_t> next_offset;             // applied up to here; nullopt: unknown yet
  std::optional<kafka::WatermarkOffsets> watermarks;  // nullopt: nothing fetched yet
};

// Updated by the consumer thread, read by the HTTP threads: every member function locks.
class ConsumerStatus {
 public:
  // `metric_prefix` e.g. "syncline_pg_projector": the lag gauge is <prefix>_partition_lag.
  ConsumerStatus(std::string group, metrics::Registry& registry, const std::string& metric_prefix);

  // "starting", "ok", "retrying" (with the error), "failed". Ready only when "ok".
  void set_state(const std::string& state, const std::string& error = {});
  http::Readiness readiness() const;
  nlohmann::json snapshot() const;

  // A field of the component's own (e.g. "projections", "documents", "last_applied_commit_lsn").
  void set(const std::string& key, nlohmann::json value);
  // A batch is done: `last_sync` is now, and its dead letters count towards error_rate.
  void record_batch(std::uint64_t records, std::uint64_t dead_lettered);
  // The write database's commit time of an applied event (the newest one gives the freshness).
  void record_applied_commit(std::chrono::system_clock::time_point commit_time);
  std::optional<std::chrono::system_clock::time_point> newest_applied_commit() const;

  // Recomputes lag per partition (end offset - next offset), the gauges, queue_size (null when a
  // partition's backlog is not known yet), sync_lag_seconds and error_rate.
  void update_partitions(const std::vector<PartitionProgress>& partitions);
  // A partition is no longer assigned: its gauge reads 0.
  void forget_partition(const kafka::TopicPartition& partition);

 private:
  using Clock = std::chrono::steady_clock;

  metrics::Registry& registry_;
  const std::string lag_metric_;
  mutable std::mutex mutex_;
  nlohmann::json status_;
  bool ready_ = false;
  std::optional<std::chrono::system_clock::time_point> newest_commit_;
  std::deque<std::pair<Clock::time_point, std::pair<std::uint64_t, std::uint64_t>>> window_;  // (records, dead)
  std::map<kafka::TopicPartition, metrics::Gauge*> gauges_;
};

}  // namespace syncline
