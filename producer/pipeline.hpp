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

// What every position the pipeline commits carries besides the stream position: the source it
// reads, the snapshot's progress, and what the first resent transaction must be.
struct PositionContext {
  std::uint32_t epoch = 0;  // stamped into every envelope too (the router's options)
  SourceIdentity source;
  SnapshotProgress snapshot;
  std::optional<PublishedTransaction> last_published;
  // Set after a restart when the slot's confirmed position is not past last_published: the first
  // source transaction at or beyond its commit LSN must be exactly it, or the WAL is another
  // history than the one published (a restore, a rewind) and the pipeline throws SourceRefused.
  std::optional<PublishedTransaction> expect;
};

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
           PositionContext context = {}, SteadyClock clock = std::chrono::steady_clock::now);

  // One pgoutput message from an XLogData frame that started at `wal_start`.
  void on_message(Lsn wal_start, std::string_view payload);
  // A keepalive: nothing is pending below `wal_end`, so an idle pipeline may confirm it.
  void on_keepalive(Lsn wal_end);
  // Commits an open batch that has waited batch_max at a transaction boundary.
  void tick();
  // Commits whatever is open (a partial position if inside a source transaction): for shutdown.
  void flush();

  // The initial snapshot. While it runs, every commit stores `stream_start` as the stream position
  // (nothing of the stream is published yet) with the snapshot's progress.
  void begin_snapshot(const SourcePosition& stream_start);
  // A row of the snapshot, published as op 'r' at `version` (commit_lsn: the snapshot's position, one
  // below its consistent point; seq counts the rows published at that position from 1). `after` is
  // the progress once this row is in Kafka.
  void on_snapshot_row(const TransactionInfo& version, const RelationInfo& relation, TupleData row,
                       const SnapshotProgress& after);
  // A truncate of `relation` at (`version`, seq 0), before its rows: for a snapshot whose rows may not
  // replace all the sinks hold (a table without a key read again, a new source epoch).
  void on_snapshot_truncate(const TransactionInfo& version, const RelationInfo& relation,
                            const SnapshotProgress& after);
  // Commits what is open, or the position alone, with `progress` (e.g. before a newer snapshot's rows).
  void commit_snapshot(const SnapshotProgress& progress);
  // The progress the next commit stores (a table finished; the next one not begun).
  void set_snapshot_progress(const SnapshotProgress& progress) { context_.snapshot = progress; }
  // Commits `stream` with the context as a position of its own (no records): the first position of
  // a new slot, stored before anything else happens.
  void store_position(const SourcePosition& stream);
  // Commits the snapshot's last batch with its progress `done`, and streaming may begin.
  void finish_snapshot(const SnapshotProgress& done);

  Lsn confirmable() const { return confirmable_; }
  bool in_transaction() const { return txn_.has_value(); }
  bool batch_open() const { return batch_open_; }
  const PipelineStats& stats() const { return stats_; }
  bool snapshot_done() const { return context_.snapshot.state == SnapshotProgress::State::done; }
  const PositionContext& context() const { return context_; }

 private:
  void handle_change(SourceChange& change);
  void publish(std::vector<OutgoingRecord> records);
  void on_begin(const BeginMessage& begin);
  void on_commit(const CommitMessage& commit);
  // Commits the open batch with `stream` as its stream position and the context's other fields.
  void commit_batch(const SourcePosition& stream);
  void maybe_split_large_transaction();
  void check_history(Lsn commit_lsn, std::uint64_t xid);
  void open_snapshot_transaction(const TransactionInfo& version);
  SourceChange snapshot_change(ChangeKind kind, std::uint64_t seq) const;

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
  PositionContext context_;
  std::optional<PublishedTransaction> batch_published_;  // the newest transaction with records in the batch
  std::optional<SourcePosition> snapshot_stream_;         // the stream position while the snapshot runs
  Lsn confirmable_;
  PipelineStats stats_;
};

}  // namespace syncline::producer
