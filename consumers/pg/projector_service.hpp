// ProjectorService: the pg-projector's consumer loop. Reads the projections' topics as a member of
// a consumer group, applies batches of events to the read database in one transaction each
// (projection writes + syncline.offsets), dead-letters what can never apply, and retries what
// failed for a transient reason while the partitions stay paused and the group membership kept.
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
#include <tuple>
#include <vector>

#include "common/backoff.hpp"
#include "common/config.hpp"
#include "common/consumer_status.hpp"
#include "common/dead_letter.hpp"
#include "common/http_server.hpp"
#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "common/metrics.hpp"
#include "consumers/pg/offset_store.hpp"
#include "consumers/pg/projection.hpp"
#include "consumers/pg/read_db_session.hpp"
#include "consumers/pg/topic_identity.hpp"

namespace syncline::pg_projector {

inline constexpr int kExitOk = 0;     // stopped by SIGTERM/SIGINT
inline constexpr int kExitFatal = 1;  // configuration or state an operator must fix (also a recreated topic)

// A projection's set-up failed for a reason retrying cannot fix (bad SQL in the config, a
// type conflict with an existing table): the process exits 1 naming the projection.
class ProjectionSetupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// run() owns the consumer thread; readiness() and status() are called from HTTP threads.
class ProjectorService {
 public:
  ProjectorService(const Config& config, metrics::Registry& registry,
                   std::vector<std::unique_ptr<Projection>> projections);
  ~ProjectorService();
  ProjectorService(const ProjectorService&) = delete;
  ProjectorService& operator=(const ProjectorService&) = delete;

  // Until shutdown::requested(); returns the exit code.
  int run();

  http::Readiness readiness() const;
  nlohmann::json status() const;

 private:
  struct Record {
    kafka::Message message;
    std::string topic;                   // read once: librdkafka builds it anew on every call
    std::string type;                    // the syncline-event-type header
    std::vector<std::size_t> wanted_by;   // indexes into projections_
    std::vector<std::size_t> skipped_by;  // projections reading the topic that do not want the type
    std::optional<nlohmann::json> value;  // parsed when some projection wants it
  };
  using RecordKey = std::tuple<std::string, std::int32_t, std::int64_t>;  // topic, partition, offset

  struct Partition {
    std::optional<std::int64_t> stored;    // next_offset in syncline.offsets; nullopt: no row
    std::optional<std::int64_t> received;  // next offset to apply; nullopt: any
    bool positioned = false;               // start offset known (else paused until it is)
    // The lowest offset the consumer may deliver next: the seek target, then the last delivered
    // + 1. Lower means Kafka moved the position back by itself (a recreated topic).
    std::optional<std::int64_t> floor;
    std::optional<PendingFingerprint> verify;  // the last applied record, to be found again first
  };

  // What one attempt at the batch found out; kept across attempts of the same batch.
  struct BatchState {
    std::map<std::pair<std::size_t, RecordKey>, std::string> dead;  // (projection, record) -> reason
    std::set<RecordKey> dead_for_all;                             // not JSON: no projection can use it
    std::set<std::pair<std::size_t, RecordKey>> published;        // dead letters already in Kafka
    std::map<std::size_t, std::set<RecordKey>> isolated;          // per projection
  };

  enum class Attempt { done, again };

  std::vector<kafka::TopicPartitionOffset> on_assign(const std::vector<kafka::TopicPartition>& partitions);
  void on_revoke(const std::vector<kafka::TopicPartition>& partitions, bool lost);

  void ensure_connected();
  void position(const std::vector<kafka::TopicPartition>& partitions, bool seek);
  void collect();
  // `fresh`: just delivered by the consumer (not re-fed from carry_), so its order can be checked.
  void accept(kafka::Message message, bool fresh);
  const std::string& recovery_for(const std::string& topic) const;
  Attempt apply_once();
  void reload_offsets();
  void reload_offsets(const std::set<kafka::TopicPartition>& partitions);
  void advance_idle_offsets();
  void publish_dead_letters();
  const Record* find_record(const RecordKey& key) const;
  void finish_batch(const std::map<kafka::TopicPartition, std::int64_t>& next_offsets,
                    const std::vector<std::size_t>& applied, const std::vector<std::size_t>& skipped,
                    std::chrono::steady_clock::time_point started);
  void recover();
  void wait_for_retry();
  void enter_retry(const std::string& reason);
  void commit_to_kafka();
  void update_lag();
  void set_state(const std::string& state, const std::string& error = {});
  kafka::Properties consumer_properties() const;

  const Config& config_;
  const PgProjectorConfig& options_;
  metrics::Registry& registry_;
  std::vector<std::unique_ptr<Projection>> projections_;
  std::vector<std::string> topics_;
  std::map<std::string, std::vector<std::size_t>, std::less<>> readers_;  // topic -> projections reading it
  std::map<std::string, std::string, std::less<>> recovery_;  // topic -> what to run when it was recreated
  bool start_from_end_ = false;  // auto.offset.reset for partitions without a stored offset
  OffsetStore offsets_;
  ReadDbSession session_;
  bool setup_done_ = false;

  std::map<kafka::TopicPartition, Partition> partitions_;
  std::vector<Record> batch_;
  BatchState batch_state_;
  std::deque<kafka::Message> carry_;  // arrived while a batch was being retried
  std::map<kafka::TopicPartition, std::int64_t> to_commit_;  // to Kafka, for standard lag tools

  std::optional<std::chrono::steady_clock::time_point> retry_at_;
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_status_{};  // next refresh of lag and /status
  std::uint64_t attempts_ = 0;

  // Metrics, looked up once.
  struct ProjectionMetrics {
    metrics::Counter* applied;
    metrics::Counter* skipped;
    metrics::Counter* dead_lettered;
  };
  std::vector<ProjectionMetrics> projection_metrics_;
  metrics::Counter& unparsed_;
  metrics::Counter& retries_;
  metrics::Histogram& batch_events_;
  metrics::Histogram& apply_seconds_;
  metrics::Histogram& commit_to_applied_;
  ConsumerStatus status_;
  metrics::Gauge& last_commit_ts_;


  // Last: destroyed first, while the members its hooks use still exist.
  std::unique_ptr<DeadLetterPublisher> dead_letters_;
  std::unique_ptr<kafka::Consumer> consumer_;
};

}  // namespace syncline::pg_projector
