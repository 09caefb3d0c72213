// EsProjectorService: the es-projector's consumer loop. Reads the mirrored and mapped topics as a
// member of a consumer group, plans documents per batch, sends them in bulk requests with external
// versions, retries only the items that failed for a transient reason (partitions paused, group
// membership kept), dead-letters what the engine rejects, and commits offsets to Kafka only once
// every item of the batch is durable, stale or dead-lettered.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/backoff.hpp"
#include "common/config.hpp"
#include "common/consumer_status.hpp"
#include "common/dead_letter.hpp"
#include "common/http_server.hpp"
#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "consumers/es/bulk_action.hpp"
#include "consumers/es/document_planner.hpp"
#include "consumers/es/es_client.hpp"

namespace syncline::es_projector {

inline constexpr int kExitOk = 0;     // stopped by SIGTERM/SIGINT
inline constexpr int kExitFatal = 1;  // configuration or state an operator must fix

// The metadata of each offset commit: the source position of the last event applied from that
// partition, {"commit_lsn":"0/16B3800","commit_ts":"2026-11-22T10:00:00.125Z"}, so that
// `syncline-ctl status` can tell how fresh the index is (an offset alone says nothing about time).
struct CommitMetadata {
  std::optional<std::string> commit_lsn;
  std::optional<std::string> commit_ts;
};
// From an envelope's source.commit_lsn / source.commit_ts; nullopt when it has neither.
std::optional<std::string> commit_metadata_of(const nlohmann::json& envelope);
// nullopt for anything that is not such an object (an older projector's empty metadata).
std::optional<CommitMetadata> parse_commit_metadata(std::string_view metadata);

// run() owns the consumer thread; readiness() and status() are called from HTTP threads.
class EsProjectorService {
 public:
  EsProjectorService(const Config& config, metrics::Registry& registry);
  ~EsProjectorService();
  EsProjectorService(const EsProjectorService&) = delete;
  EsProjectorService& operator=(const EsProjectorService&) = delete;

  int run();  // until shutdown::requested(); returns the exit code

  http::Readiness readiness() const;
  nlohmann::json status() const;

 private:
  struct Record {
    kafka::Message message;
    std::string topic;
    std::string type;
    std::optional<nlohmann::json> value;  // parsed when the planner wants the record
    bool wanted = false;
  };

  void collect();
  void apply();
  void execute(const Plan& plan);
  void send_bulk(std::vector<const BulkAction*> actions);
  void dead_letter(std::size_t record, const std::string& reason);
  void commit_offsets();
  // Waits `duration` without leaving the group: polls (records go to carry_) with all assigned
  // partitions paused. Returns false when a shutdown was requested meanwhile.
  bool wait_paused(std::chrono::milliseconds duration);
  void ensure_indices();
  void update_lag();
  void set_state(const std::string& state, const std::string& error = {});
  kafka::Properties consumer_properties() const;

  const Config& config_;
  const EsProjectorConfig& options_;
  metrics::Registry& registry_;
  DocumentPlanner planner_;
  EsClient client_;
  bool indices_ready_ = false;

  std::vector<Record> batch_;
  std::size_t batch_bytes_ = 0;
  std::deque<kafka::Message> carry_;                 // polled while waiting
  std::set<kafka::TopicPartition> assigned_;
  std::map<kafka::TopicPartition, std::int64_t> committed_;  // next offsets committed to Kafka
  // Per partition, the metadata its commits carry (see CommitMetadata); present once known, even
  // if empty, so a partition's previous commit is looked up at most once.
  std::map<kafka::TopicPartition, std::string> commit_metadata_;
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_status_{};  // next refresh of lag and /status

  metrics::Counter& indexed_;
  metrics::Counter& deleted_;
  metrics::Counter& stale_;
  metrics::Counter& retried_;
  metrics::Counter& dead_lettered_;
  metrics::Counter& skipped_;
  metrics::Histogram& bulk_actions_;
  metrics::Histogram& bulk_seconds_;
  ConsumerStatus status_;
  metrics::Histogram& commit_to_indexed_;


  // Last: destroyed first, while the members its hooks use still exist.
  std::unique_ptr<DeadLetterPublisher> dead_letters_;
  std::unique_ptr<kafka::Consumer> consumer_;
};

}  // namespace syncline::es_projector
