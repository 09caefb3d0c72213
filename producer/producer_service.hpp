// ProducerService: runs the producer — sessions of (slot, snapshot, stream) with retry and back-off.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "common/config.hpp"
#include "common/http_server.hpp"
#include "common/metrics.hpp"
#include "producer/event_router.hpp"

namespace syncline::producer {

// Exit codes of syncline-producer.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFatal = 1;  // configuration or a state only an operator can fix
inline constexpr int kExitFenced = 2;  // another producer took over the transactional.id

// The router options the producer uses for `config` on database `database` (source.db), without the
// primary keys (read_primary_keys fills them). Shared with syncline-ctl, whose re-published rows must
// be keyed, typed and routed exactly as the producer's.
RouterOptions router_options_for(const Config& config, const std::string& database);

// Owned by main(); run() blocks on the calling thread until shutdown is requested or a fatal error.
// A session connects, reads the stored position, creates or checks slot and publication, publishes
// the initial snapshot if due, and streams. Any transient failure ends the session; the next one
// resumes from the recovery point (the slot's confirmed_flush_lsn plus the position stored in
// Kafka), so a retry can neither lose nor duplicate. readiness() and status() are thread-safe.
class ProducerService {
 public:
  ProducerService(const Config& config, metrics::Registry& registry);

  int run();

  http::Readiness readiness() const;
  nlohmann::json status() const;

 private:
  void run_session();
  RouterOptions router_options(const std::string& database) const;
  void set_state(std::string state, std::string error = {});

  const Config& config_;
  const ProducerConfig& options_;
  metrics::Registry& registry_;

  mutable std::mutex status_mutex_;
  nlohmann::json status_;  // guarded by status_mutex_
  std::atomic<bool> replicating_{false};
};

}  // namespace syncline::producer
