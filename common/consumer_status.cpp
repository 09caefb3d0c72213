// ConsumerStatus (see consumer_status.hpp).
#include "common/consumer_status.hpp"

#include <algorithm>

#include "common/iso_time.hpp"

namespace syncline {

namespace {
constexpr auto kErrorWindow = std::chrono::minutes(5);

double seconds_since(std::chrono::system_clock::time_point then) {
  return std::chrono::duration<double>(std::chrono::system_clock::now() - then).count();
}
}  // namespace

ConsumerStatus::ConsumerStatus(std::string group, metrics::Registry& registry, const std::string& metric_prefix)
    : registry_(registry), lag_metric_(metric_prefix + "_partition_lag") {
  status_ = {{"status", "starting"}, {"group", std::move(group)}};
}

void ConsumerStatus::set_state(const std::string& state, const std::string& error) {
  std::lock_guard lock(mutex_);
  status_["status"] = state;
  ready_ = state == "ok";
  if (error.empty()) {
    status_.erase("last_error");
  } else {
    status_["last_error"] = error.substr(0, 500);
  }
}

http::Readiness ConsumerStatus::readiness() const {
  std::lock_guard lock(mutex_);
  if (ready_) return {true, "ok"};
  return {false, status_.value("last_error", status_.value("status", "starting"))};
}

nlohmann::json ConsumerStatus::snapshot() const {
  std::lock_guard lock(mutex_);
  nlohmann::json status = status_;
  if (newest_commit_) status["last_applied_age_seconds"] = seconds_since(*newest_commit_);
  return status;
}

void ConsumerStatus::set(const std::string& key, nlohmann::json value) {
  std::lock_guard lock(mutex_);
  status_[key] = std::move(value);
}

void ConsumerStatus::record_batch(std::uint64_t records, std::uint64_t dead_lettered) {
  std::lock_guard lock(mutex_);
  status_["last_sync"] = format_iso_utc(std::chrono::system_clock::now());
  window_.emplace_back(Clock::now(), std::pair{records, dead_lettered});
}

void ConsumerStatus::record_applied_commit(std::chrono::system_clock::time_point commit_time) {
  std::lock_guard lock(mutex_);
  if (!newest_commit_ || commit_time > *newest_commit_) newest_commit_ = commit_time;
}

std::optional<std::chrono::system_clock::time_point> ConsumerStatus::newest_applied_commit() const {
  std::lock_guard lock(mutex_);
  return newest_commit_;
}

void ConsumerStatus::update_partitions(const std::vector<PartitionProgress>& partitions) {
  std::int64_t total = 0;
  bool known = true;
  nlohmann::json listed = nlohmann::json::array();
  std::lock_guard lock(mutex_);
  for (const auto& [partition, next, watermarks] : partitions) {
    std::int64_t lag = 0;
    if (watermarks && next) lag = std::max<std::int64_t>(0, watermarks->high - *next);
    // Nothing fetched yet: the backlog is unknown, which is not the same as none.
    if (!watermarks || !next) known = false;
    total += lag;
    auto& gauge = gauges_[partition];
    if (gauge == nullptr) {
      gauge = &registry_.gauge(lag_metric_, "Records in the partition after the applied offset (end - next offset).",
                               {{"topic", partition.topic}, {"partition", std::to_string(partition.partition)}});
    }
    gauge->set(static_cast<double>(lag));
    listed.push_back({{"topic", partition.topic},
                      {"partition", partition.partition},
                      {"next_offset", next ? nlohmann::json(*next) : nlohmann::json(nullptr)},
                      {"end_offset", watermarks ? nlohmann::json(watermarks->high) : nlohmann::json(nullptr)},
                      {"lag", lag}});
  }
  // error_rate: the share of records dead-lettered over the last five minutes.
  while (!window_.empty() && window_.front().first < Clock::now() - kErrorWindow) window_.pop_front();
  std::uint64_t records = 0;
  std::uint64_t errors = 0;
  for (const auto& [when, counts] : window_) {
    records += counts.first;
    errors += counts.second;
  }
  status_["queue_size"] = known ? nlohmann::json(total) : nlohmann::json(nullptr);
  status_["error_rate"] = records == 0 ? 0.0 : static_cast<double>(errors) / static_cast<double>(records);
  status_["sync_lag_seconds"] = total == 0 || !newest_commit_ ? 0.0 : std::max(0.0, seconds_since(*newest_commit_));
  status_["partitions"] = std::move(listed);
}

void ConsumerStatus::forget_partition(const kafka::TopicPartition& partition) {
  std::lock_guard lock(mutex_);
  if (const auto it = gauges_.find(partition); it != gauges_.end()) it->second->set(0);
}

}  // namespace syncline
