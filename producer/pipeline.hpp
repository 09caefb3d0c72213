// Pipeline: pgoutput messages in, Kafka transactions out — batching, resume and confirmation rules.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "common/lsn.hpp"
#include "producer/event_router.hpp"
#include "producer/event_sink.hpp"
#include "producer/pgoutput.hpp"
#include "producer/relation_cache.hpp"
#include "producer/source_position.hpp"
#include "producer/topic_plan.hpp"

namespace syncline::producer {

struct PipelineOptions {
  std::size_t batch_max_events = 10'000;  // per Kafka transaction; larger source transactions split
  std::chrono::milliseconds batch_max{100};  // a Kafka transaction collects source ones this long
  TopicPlanOptions topics{};
  // Called at each Kafka commit with how long ago each source transaction in it committed.
  std::function<void(std::chrono::duration<double>)> on_published_latency{};
};

using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

// What the pipeline did, for metrics and /status.
struct PipelineStats {
  std::uint64_t transactions_seen = 0;
  std::uint64_t transactions_skipped = 0;  // at or below the stored position after a restart
  std::uint64_t kafka_commits = 0;
  std::uint64_t records_published = 0;
  std::uint64_t dead_letters = 0;
  Lsn last_commit_lsn;  // of the last source transaction published
  std::optional<std::chrono::system_clock::time_point> last_commit_time;
};

// Owned by the producer's pipeline thread. The caller feeds it what the replication stream delivers
// and confirms to PostgreSQL only what confirmable() returns: the end of the last source transaction
// whose records (if any) are committed in Kafka. A throw from the sink leaves the pipeline unusable;
// the caller then starts over from the recovery point with a new pipeline.
class Pipeline {
 public:
  Pipeline(EventRouter& router, EventSink& sink, PipelineOptions options, ResumeFilter resume,
           SteadyClock clock = std::chrono::steady_clock::now);

  // One pgoutput message from an XLogData frame that started at `wal_start`.
  void on_message(Lsn wal_start, std::string_view payload);
  // A keepalive: nothing is pending below `wal_end`, so an idle pipeline may confirm it.
  void on_keepalive(Lsn wal_end);
  // Commits an open batch that has waited batch_max at a transaction boundary.
  void tick();
  // Commits whatever is open (a partial position if inside a source transaction): for shutdown.
  void flush();

  // Rows of the initial snapshot, published as op 'r' with `snapshot_txn` as their transaction.
  void on_snapshot_row(const TransactionInfo& snapshot_txn, const RelationInfo& relation, TupleData row);
  // Commits the snapshot's last batch and records that the snapshot is complete.
  void finish_snapshot(const TransactionInfo& snapshot_txn);

  Lsn confirmable() const { return confirmable_; }
  bool in_transaction() const { return txn_.has_value(); }
  bool batch_open() const { return batch_open_; }
  const PipelineStats& stats() const { return stats_; }
  bool snapshot_done() const { return snapshot_done_; }

 private:
  void handle_change(SourceChange& change);
  void publish(std::vector<OutgoingRecord> records);
  void on_begin(const BeginMessage& begin);
  void on_commit(const CommitMessage& commit);
  void commit_batch(const SourcePosition& position);
  SourcePosition position_after_last_transaction() const;
  void maybe_split_large_transaction();

  EventRouter& router_;
  EventSink& sink_;
  PipelineOptions options_;
  ResumeFilter resume_;
  SteadyClock clock_;
  PgoutputDecoder decoder_{1};
  RelationCache relations_;

  std::optional<TransactionInfo> txn_;  // the source transaction being received
  PgTimestamp txn_commit_time_pg_{};
  std::uint64_t seq_ = 0;              // changes seen in txn_ so far
  std::uint64_t last_published_seq_ = 0;  // last change of txn_ whose records went to the sink
  bool txn_has_records_ = false;

  bool batch_open_ = false;
  std::size_t batch_records_ = 0;
  std::chrono::steady_clock::time_point batch_started_{};

  std::vector<std::chrono::system_clock::time_point> batch_commit_times_;  // source txns in the batch
  SourcePosition last_complete_;  // the last source transaction fully handled
  bool snapshot_done_ = false;
  Lsn confirmable_;
  PipelineStats stats_;
};

}  // namespace syncline::producer
