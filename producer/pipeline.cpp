// Pipeline: the producer's core rules — which changes to publish, when to commit, what to confirm.
#include "producer/pipeline.hpp"

#include <fmt/format.h>

#include "common/failpoint.hpp"
#include "producer/source_check.hpp"

#include <limits>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace syncline::producer {

Pipeline::Pipeline(EventRouter& router, EventSink& sink, PipelineOptions options, ResumeFilter resume,
                   PositionContext context, SteadyClock clock)
    : router_(router),
      sink_(sink),
      options_(std::move(options)),
      resume_(std::move(resume)),
      clock_(std::move(clock)),
      context_(std::move(context)) {
  if (const auto& stored = resume_.stored()) {
    if (stored->complete) {
      last_complete_ = *stored;
      confirmable_ = stored->end_lsn;
    }
  }
}

void Pipeline::check_history(Lsn commit_lsn, std::uint64_t xid) {
  if (!context_.expect || commit_lsn < context_.expect->commit_lsn) return;
  const PublishedTransaction expected = *context_.expect;
  if (commit_lsn == expected.commit_lsn && xid == expected.xid) {
    context_.expect.reset();  // the same history: from here on the stream continues it
    return;
  }
  throw SourceRefused(fmt::format(
      "the write database's WAL is not the history the producer published: the last transaction in Kafka "
      "committed at {} (xid {}), but the slot resent {} at {} (xid {}) instead. The database was restored "
      "or rewound, and streaming on would skip or repeat events. If the read models should follow this "
      "database from now on, run `{}`.",
      expected.commit_lsn, expected.xid, commit_lsn == expected.commit_lsn ? "another transaction" : "a later one",
      commit_lsn, xid, kNewSourceCommand));
}

void Pipeline::on_message(Lsn wal_start, std::string_view payload) {
  auto message = decoder_.decode(payload);
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, BeginMessage>) {
          on_begin(m);
        } else if constexpr (std::is_same_v<T, CommitMessage>) {
          on_commit(m);
        } else if constexpr (std::is_same_v<T, RelationMessage>) {
          relations_.apply(m);
        } else if constexpr (std::is_same_v<T, InsertMessage> || std::is_same_v<T, UpdateMessage> ||
                             std::is_same_v<T, DeleteMessage> || std::is_same_v<T, TruncateMessage>) {
          if (!txn_) throw DecodeError(fmt::format("{} outside a transaction", message_name(message)), 0);
          SourceChange change;
          change.txn = &*txn_;
          change.lsn = wal_start;
          change.seq = ++seq_;
          if constexpr (std::is_same_v<T, InsertMessage>) {
            change.kind = ChangeKind::insert;
            change.relation = &relations_.at(m.relation_id);
            change.new_tuple = std::move(m.new_tuple);
          } else if constexpr (std::is_same_v<T, UpdateMessage>) {
            change.kind = ChangeKind::update;
            change.relation = &relations_.at(m.relation_id);
            change.old_tuple = std::move(m.old_tuple);
            change.new_tuple = std::move(m.new_tuple);
          } else if constexpr (std::is_same_v<T, DeleteMessage>) {
            change.kind = ChangeKind::remove;
            change.relation = &relations_.at(m.relation_id);
            change.old_tuple = std::move(m.old_tuple);
          } else {
            change.kind = ChangeKind::truncate;
            for (const auto id : m.relation_ids) change.truncated.push_back(&relations_.at(id));
          }
          handle_change(change);
        } else if constexpr (std::is_same_v<T, LogicalDecodingMessage>) {
          if (txn_) {
            SourceChange change;
            change.kind = ChangeKind::message;
            change.txn = &*txn_;
            change.lsn = m.lsn;
            change.seq = ++seq_;
            change.message = std::move(m);
            handle_change(change);
          } else {
            // A non-transactional message stands alone between transactions: it is its own
            // "transaction" at its LSN, so resume and confirmation treat it like any other.
            const Lsn lsn = m.lsn;
            on_begin(BeginMessage{lsn, PgTimestamp::from_sys_time(std::chrono::time_point_cast<std::chrono::microseconds>(
                                           std::chrono::system_clock::now())),
                                  0});
            SourceChange change;
            change.kind = ChangeKind::message;
            change.txn = &*txn_;
            change.lsn = lsn;
            change.seq = ++seq_;
            change.message = std::move(m);
            handle_change(change);
            on_commit(CommitMessage{0, lsn, lsn, txn_commit_time_pg_});
          }
        } else if constexpr (std::is_same_v<T, StreamStartMessage> || std::is_same_v<T, StreamStopMessage> ||
                             std::is_same_v<T, StreamCommitMessage> || std::is_same_v<T, StreamAbortMessage>) {
          throw DecodeError(fmt::format("{} under protocol version 1", message_name(message)), 0);
        }
        // Type and Origin messages carry nothing the events need.
      },
      message);
}

void Pipeline::on_begin(const BeginMessage& begin) {
  if (txn_) throw DecodeError("Begin inside a transaction", 0);
  check_history(begin.final_lsn, begin.xid);
  txn_ = TransactionInfo{begin.final_lsn, begin.commit_time.to_iso8601(), begin.xid, false};
  txn_commit_time_pg_ = begin.commit_time;
  seq_ = 0;
  last_published_seq_ = 0;
  txn_has_records_ = false;
  ++stats_.transactions_seen;
}

void Pipeline::handle_change(SourceChange& change) {
  if (!change.txn->snapshot && resume_.already_published(change.txn->commit_lsn, change.seq)) return;
  auto records = router_.route(change);
  if (auto types = router_.take_new_aggregate_types(); !types.empty()) {
    std::vector<kafka::NewTopic> topics;
    for (const auto& type : types) topics.push_back(domain_event_topic(router_.options(), options_.topics, type));
    sink_.ensure_topics(topics);
  }
  // Split before the change that would overfill the batch, not after the one that fills it: a
  // transaction that ends there is then committed with its complete position.
  if (!records.empty()) maybe_split_large_transaction();
  publish(std::move(records));
  last_published_seq_ = change.seq;
}

void Pipeline::publish(std::vector<OutgoingRecord> records) {
  for (auto& record : records) {
    if (!batch_open_) {
      sink_.begin();
      batch_open_ = true;
      batch_started_ = clock_();
      batch_records_ = 0;
    }
    if (record.kind == RecordKind::dead_letter) ++stats_.dead_letters;
    sink_.publish(std::move(record));
    ++batch_records_;
    ++stats_.records_published;
    if (!txn_has_records_) {
      txn_has_records_ = true;
      batch_commit_times_.push_back(txn_commit_time_pg_.to_sys_time());
      if (!txn_->snapshot) batch_published_ = PublishedTransaction{txn_->commit_lsn, txn_->xid};
    }
  }
}

// A source transaction larger than a batch is split over Kafka transactions, each storing how far
// into it the stream got, so memory and the Kafka transaction timeout stay bounded.
void Pipeline::maybe_split_large_transaction() {
  if (!batch_open_ || batch_records_ < options_.batch_max_events || !txn_) return;
  if (txn_->snapshot) {
    commit_batch(*snapshot_stream_);
    failpoint::hit("producer.snapshot_chunk_committed");
    return;
  }
  SourcePosition partial;
  partial.commit_lsn = txn_->commit_lsn;
  partial.seq = last_published_seq_;
  partial.complete = false;
  commit_batch(partial);
  failpoint::hit("producer.split_transaction_committed");
}

void Pipeline::on_commit(const CommitMessage& commit) {
  if (!txn_) throw DecodeError("Commit outside a transaction", 0);
  const Lsn commit_lsn = txn_->commit_lsn;
  if (resume_.already_published(commit_lsn, std::numeric_limits<std::uint64_t>::max())) {
    ++stats_.transactions_skipped;
  }
  if (txn_has_records_) {
    stats_.last_commit_lsn = commit_lsn;
    stats_.last_commit_time = txn_commit_time_pg_.to_sys_time();
  }
  last_complete_ = SourcePosition{};
  last_complete_.commit_lsn = commit_lsn;
  last_complete_.end_lsn = commit.end_lsn;
  last_complete_.seq = seq_;
  txn_.reset();
  if (!batch_open_) {
    confirmable_ = std::max(confirmable_, commit.end_lsn);
    return;
  }
  if (batch_records_ >= options_.batch_max_events || clock_() - batch_started_ >= options_.batch_max) {
    commit_batch(last_complete_);
  }
}

void Pipeline::commit_batch(const SourcePosition& stream) {
  SourcePosition position = stream;
  position.snapshot = context_.snapshot;
  position.epoch = context_.epoch;
  position.source = context_.source;
  position.last_published = batch_published_ ? batch_published_ : context_.last_published;
  position.fresh = false;
  sink_.commit(position);
  context_.last_published = position.last_published;
  batch_published_.reset();
  batch_open_ = false;
  batch_records_ = 0;
  ++stats_.kafka_commits;
  confirmable_ = std::max(confirmable_, last_complete_.end_lsn);
  if (options_.on_published_latency) {
    const auto now = std::chrono::system_clock::now();
    for (const auto& committed : batch_commit_times_) options_.on_published_latency(now - committed);
  }
  batch_commit_times_.clear();
}

void Pipeline::on_keepalive(Lsn wal_end) {
  if (!batch_open_ && !txn_) confirmable_ = std::max(confirmable_, wal_end);
}

void Pipeline::tick() {
  if (batch_open_ && !txn_ && clock_() - batch_started_ >= options_.batch_max) commit_batch(last_complete_);
}

void Pipeline::flush() {
  if (!batch_open_) return;
  if (txn_ && txn_->snapshot) {
    commit_batch(*snapshot_stream_);
  } else if (txn_) {
    SourcePosition partial;
    partial.commit_lsn = txn_->commit_lsn;
    partial.seq = last_published_seq_;
    partial.complete = false;
    commit_batch(partial);
  } else {
    commit_batch(last_complete_);
  }
}

void Pipeline::begin_snapshot(const SourcePosition& stream_start) {
  if (txn_) throw std::logic_error("begin_snapshot inside a source transaction");
  snapshot_stream_ = stream_start;
  snapshot_stream_->snapshot = {};
  last_complete_ = stream_start;
  confirmable_ = std::max(confirmable_, stream_start.end_lsn);
}

void Pipeline::open_snapshot_transaction(const TransactionInfo& version) {
  if (!snapshot_stream_) throw std::logic_error("a snapshot row before begin_snapshot");
  if (txn_ && txn_->commit_lsn == version.commit_lsn) return;
  // Rows of one snapshot position share it; each new position (a resumed or renewed snapshot) counts
  // its rows from 1 again, so (commit_lsn, seq) names every row once.
  txn_ = version;
  txn_->snapshot = true;
  txn_commit_time_pg_ = PgTimestamp::from_sys_time(
      std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()));
  seq_ = 0;
  last_published_seq_ = 0;
  txn_has_records_ = false;
}

SourceChange Pipeline::snapshot_change(ChangeKind kind, std::uint64_t seq) const {
  SourceChange change;
  change.kind = kind;
  change.txn = &*txn_;
  change.lsn = txn_->commit_lsn;
  change.seq = seq;
  return change;
}

void Pipeline::on_snapshot_row(const TransactionInfo& version, const RelationInfo& relation, TupleData row,
                               const SnapshotProgress& after) {
  open_snapshot_transaction(version);
  SourceChange change = snapshot_change(ChangeKind::insert, ++seq_);
  change.relation = &relation;
  change.new_tuple = std::move(row);
  handle_change(change);
  // After handle_change: a batch it split off before this row holds the progress before it.
  context_.snapshot = after;
}

void Pipeline::on_snapshot_truncate(const TransactionInfo& version, const RelationInfo& relation,
                                    const SnapshotProgress& after) {
  open_snapshot_transaction(version);
  SourceChange change = snapshot_change(ChangeKind::truncate, 0);  // seq 0: below every row of its position
  change.truncated.push_back(&relation);
  handle_change(change);
  context_.snapshot = after;
}

void Pipeline::commit_snapshot(const SnapshotProgress& progress) {
  context_.snapshot = progress;
  commit_batch(*snapshot_stream_);  // with no batch open: the position alone, so the progress is stored
  failpoint::hit("producer.snapshot_chunk_committed");
}

void Pipeline::store_position(const SourcePosition& stream) {
  if (batch_open_ || txn_) throw std::logic_error("store_position with a batch or transaction open");
  last_complete_ = stream;
  commit_batch(stream);
}

void Pipeline::finish_snapshot(const SnapshotProgress& done) {
  context_.snapshot = done;
  txn_.reset();
  commit_batch(*snapshot_stream_);
  last_complete_ = *snapshot_stream_;
  snapshot_stream_.reset();
}

}  // namespace syncline::producer
