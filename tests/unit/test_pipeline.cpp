// Unit tests of the producer pipeline: source transactions batched into Kafka transactions, large ones
// split with partial positions, resume after a restart, what may be confirmed, and snapshot rows —
// with a fake sink and a manual clock, on hand-encoded and captured pgoutput messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/envelope.hpp"
#include "producer/pipeline.hpp"
#include "producer/source_check.hpp"
#include "producer/source_position.hpp"
#include "producer/value_mapping.hpp"
#include "tests/support/pgoutput_writer.hpp"
#include "tests/unit/fake_event_sink.hpp"
#include "tests/unit/pgoutput_fixture.hpp"

namespace syncline::producer {
namespace {

using test::PgoutputWriter;
using test::relation_message;

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::FakeEventSink;
using testing::InjectedSinkFailure;
using std::chrono::milliseconds;
using SinkKind = testing::SinkCall::Kind;

constexpr milliseconds kNever{std::chrono::hours(1)};

// --- Encoding pgoutput messages (layouts as producer/pgoutput.cpp decodes them) ---


constexpr std::uint64_t kCommitTimeMicros = 848'052'000'000'000;  // 2026-11-15, PostgreSQL's epoch

std::string begin_message(Lsn final_lsn, Xid xid) {
  return PgoutputWriter('B').lsn(final_lsn).u64(kCommitTimeMicros).u32(xid).bytes();
}

std::string commit_message(Lsn commit_lsn, Lsn end_lsn) {
  return PgoutputWriter('C').u8(0).lsn(commit_lsn).lsn(end_lsn).u64(kCommitTimeMicros).bytes();
}


// Text values; nullopt is SQL NULL.
std::string insert_message(Oid relation_id, const std::vector<std::optional<std::string>>& values) {
  PgoutputWriter writer('I');
  writer.u32(relation_id).u8('N').u16(static_cast<std::uint16_t>(values.size()));
  for (const auto& value : values) {
    if (value) {
      writer.u8('t').counted(*value);
    } else {
      writer.u8('n');
    }
  }
  return writer.bytes();
}

RelationColumn column(std::string name, Oid type) { return {false, std::move(name), type, -1}; }
RelationColumn key(std::string name, Oid type) { return {true, std::move(name), type, -1}; }

RelationInfo public_table(Oid id, std::string table, std::vector<RelationColumn> columns) {
  return {id, "public", std::move(table), ReplicaIdentity::default_identity, std::move(columns)};
}

using namespace pg_type;
const RelationInfo kOutbox = public_table(
    16384, "outbox",
    {key("id", kUuid), column("aggregate_type", kText), column("aggregate_id", kText), column("event_type", kText),
     column("payload", kJsonb), column("occurred_at", kTimestamptz), column("headers", kJsonb)});
const RelationInfo kOrders = public_table(16390, "orders", {key("id", kInt4), column("status", kText)});  // captured
const RelationInfo kSessions = public_table(16393, "sessions", {key("id", kInt4)});  // neither captured nor outbox

RouterOptions router_options() {
  RouterOptions options;
  options.captured_tables = {{"public", "orders"}};
  return options;
}

PipelineOptions batching(std::size_t max_events, milliseconds max_time) {
  PipelineOptions options;
  options.batch_max_events = max_events;
  options.batch_max = max_time;
  return options;
}

// --- A source transaction as the replication stream delivers it ---

struct WalMessage {
  Lsn wal_start;
  std::string bytes;
};

struct SourceTxn {
  Lsn commit_lsn;
  Lsn end_lsn;
  std::vector<WalMessage> messages;  // Begin ... Commit
  Xid xid = 0;

  // The position a commit stores when this transaction (with records) is the last one it covers.
  SourcePosition complete_position(std::uint64_t seq) const {
    SourcePosition position{commit_lsn, end_lsn, seq, true};
    position.last_published = PublishedTransaction{commit_lsn, xid};
    return position;
  }
  SourcePosition partial_position(std::uint64_t seq) const {
    SourcePosition position{commit_lsn, Lsn(), seq, false};
    position.last_published = PublishedTransaction{commit_lsn, xid};
    return position;
  }
};

// Hands out increasing LSNs and xids, so transactions built one after another commit in that order.
class WalWriter {
 public:
  // `events` outbox inserts of one aggregate type.
  SourceTxn outbox_txn(int events, const std::string& aggregate_type = "conversation") {
    std::vector<std::string> changes{relation_message(kOutbox)};
    for (int i = 0; i < events; ++i) {
      changes.push_back(insert_message(
          kOutbox.relation_id, {fmt::format("00000000-0000-4000-8000-{:012x}", ++events_written_), aggregate_type,
                                "agg-1", "Happened", R"({"n": 1})", "2026-11-22 10:00:00.123+00", std::nullopt}));
    }
    return txn(changes);
  }
  // One insert into a table that is not captured: a transaction without records.
  SourceTxn uncaptured_txn() { return txn({relation_message(kSessions), insert_message(kSessions.relation_id, {"7"})}); }

 private:
  SourceTxn txn(const std::vector<std::string>& changes) {
    const Lsn begin{next_};
    const Lsn commit_lsn{next_ + 0x100 * (changes.size() + 1)};
    SourceTxn txn{commit_lsn, Lsn(commit_lsn.value() + 0x30), {}, ++xid_};
    txn.messages.push_back({begin, begin_message(commit_lsn, txn.xid)});
    for (std::size_t i = 0; i < changes.size(); ++i) txn.messages.push_back({Lsn(next_ + 0x100 * (i + 1)), changes[i]});
    txn.messages.push_back({commit_lsn, commit_message(commit_lsn, txn.end_lsn)});
    next_ = txn.end_lsn.value() + 0x100;
    return txn;
  }

  std::uint64_t next_ = 0x1000000;
  Xid xid_ = 700;
  int events_written_ = 0;
};

class ManualClock {
 public:
  void advance(milliseconds by) { now_ += by; }
  SteadyClock function() {
    return [this] { return now_; };
  }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};

// A producer process: its router and pipeline, on a sink and clock the test keeps across restarts.
class PipelineTest : public ::testing::Test {
 protected:
  Pipeline& start(PipelineOptions options, std::optional<SourcePosition> stored = std::nullopt) {
    pipeline_.reset();
    router_.emplace(router_options());
    PositionContext context;
    if (stored) {
      context.snapshot = stored->snapshot;
      context.last_published = stored->last_published;
    }
    pipeline_.emplace(*router_, sink_, std::move(options), ResumeFilter(stored), context, clock_.function());
    return *pipeline_;
  }
  // A new process (router included) resuming from what Kafka holds, publishing into a fresh sink.
  Pipeline& restart(PipelineOptions options, const SourcePosition& stored) {
    sink_ = FakeEventSink();
    return start(std::move(options), stored);
  }

  void feed(const SourceTxn& txn) {
    feed_all_but_commit(txn);
    feed_commit(txn);
  }
  void feed_all_but_commit(const SourceTxn& txn) {
    for (std::size_t i = 0; i + 1 < txn.messages.size(); ++i) {
      pipeline_->on_message(txn.messages[i].wal_start, txn.messages[i].bytes);
    }
  }
  void feed_commit(const SourceTxn& txn) {
    pipeline_->on_message(txn.messages.back().wal_start, txn.messages.back().bytes);
  }

  std::vector<std::uint64_t> published_seqs() const {
    std::vector<std::uint64_t> seqs;
    for (const auto& record : sink_.published()) seqs.push_back(record.seq);
    return seqs;
  }

  WalWriter wal_;
  ManualClock clock_;
  FakeEventSink sink_;
  std::optional<EventRouter> router_;
  std::optional<Pipeline> pipeline_;  // after router_: it refers to it
};

using PipelineConfirmation = PipelineTest;
using PipelineBatching = PipelineTest;
using PipelineSplitting = PipelineTest;
using PipelineResume = PipelineTest;
using PipelineFlush = PipelineTest;
using PipelineSinkFailure = PipelineTest;
using PipelineTopics = PipelineTest;
using PipelineSnapshot = PipelineTest;

// --- Confirmation ---

TEST_F(PipelineConfirmation, an_outbox_insert_is_published_and_committed_with_its_complete_position_before_it_is_confirmable) {
  auto& pipeline = start(batching(100, milliseconds(0)));
  const auto txn = wal_.outbox_txn(1);

  feed_all_but_commit(txn);
  EXPECT_THAT(sink_.trace(), ElementsAre("ensure_topics syncline.events.conversation", "begin",
                                         "publish syncline.events.conversation"));
  EXPECT_EQ(pipeline.confirmable(), Lsn());

  feed_commit(txn);
  EXPECT_THAT(sink_.trace(), ElementsAre("ensure_topics syncline.events.conversation", "begin",
                                         "publish syncline.events.conversation", "commit"));
  EXPECT_THAT(sink_.commits(), ElementsAre(txn.complete_position(1)));
  EXPECT_EQ(pipeline.confirmable(), txn.end_lsn);
  const auto record = sink_.published().at(0);
  EXPECT_EQ(record.kind, RecordKind::event);
  EXPECT_EQ(record.commit_lsn, txn.commit_lsn);
  EXPECT_EQ(record.message.key, "agg-1");
  EXPECT_EQ(pipeline.stats().kafka_commits, 1U);
  EXPECT_EQ(pipeline.stats().records_published, 1U);
  EXPECT_EQ(pipeline.stats().last_commit_lsn, txn.commit_lsn);
}

TEST_F(PipelineConfirmation, a_transaction_without_records_moves_confirmable_without_a_kafka_transaction_when_no_batch_is_open) {
  auto& pipeline = start(batching(100, kNever));
  const auto txn = wal_.uncaptured_txn();

  feed(txn);

  EXPECT_THAT(sink_.trace(), IsEmpty());
  EXPECT_EQ(pipeline.confirmable(), txn.end_lsn);
}

TEST_F(PipelineConfirmation, a_transaction_without_records_does_not_move_confirmable_past_an_open_batch) {
  auto& pipeline = start(batching(100, milliseconds(100)));
  const auto published = wal_.outbox_txn(1);
  const auto empty = wal_.uncaptured_txn();

  feed(published);
  feed(empty);
  EXPECT_EQ(pipeline.confirmable(), Lsn());
  EXPECT_THAT(sink_.commits(), IsEmpty());

  clock_.advance(milliseconds(100));
  pipeline.tick();
  // The batch's position is the later, record-less transaction: both are handled in full. The last
  // transaction with records is still the earlier one.
  SourcePosition expected = empty.complete_position(1);
  expected.last_published = PublishedTransaction{published.commit_lsn, published.xid};
  EXPECT_THAT(sink_.commits(), ElementsAre(expected));
  EXPECT_EQ(pipeline.confirmable(), empty.end_lsn);
}

TEST_F(PipelineConfirmation, keepalive_moves_confirmable_only_when_idle) {
  auto& pipeline = start(batching(100, milliseconds(100)));
  const auto txn = wal_.outbox_txn(1);

  pipeline.on_keepalive(Lsn(0x100));
  EXPECT_EQ(pipeline.confirmable(), Lsn(0x100));

  feed_all_but_commit(txn);
  pipeline.on_keepalive(txn.commit_lsn);
  EXPECT_EQ(pipeline.confirmable(), Lsn(0x100)) << "inside a source transaction";

  feed_commit(txn);
  pipeline.on_keepalive(Lsn(txn.end_lsn.value() + 0x100));
  EXPECT_EQ(pipeline.confirmable(), Lsn(0x100)) << "with a Kafka transaction open";

  clock_.advance(milliseconds(100));
  pipeline.tick();
  EXPECT_EQ(pipeline.confirmable(), txn.end_lsn);
  pipeline.on_keepalive(Lsn(txn.end_lsn.value() + 0x100));
  EXPECT_EQ(pipeline.confirmable(), Lsn(txn.end_lsn.value() + 0x100));
}

TEST_F(PipelineConfirmation, captured_logical_messages_publish_the_domain_event_and_let_the_heartbeat_only_move_confirmable) {
  auto& pipeline = start(batching(100, milliseconds(0)));
  const auto fixture = testing::load_fixture("logical_messages");
  ASSERT_EQ(fixture.messages.size(), 4U);

  for (std::size_t i = 0; i < 3; ++i) pipeline.on_message(fixture.messages[i].lsn, fixture.messages[i].bytes);
  // Its id "e-1" is not a UUID: a dead letter, still published and committed with the transaction.
  ASSERT_EQ(sink_.published().size(), 1U);
  EXPECT_EQ(sink_.published()[0].kind, RecordKind::dead_letter);
  EXPECT_EQ(pipeline.stats().dead_letters, 1U);
  ASSERT_EQ(sink_.commits().size(), 1U);
  EXPECT_EQ(sink_.commits()[0].commit_lsn, Lsn::from_string("0/1A78A20"));
  EXPECT_EQ(sink_.commits()[0].end_lsn, Lsn::from_string("0/1A78A50"));
  EXPECT_TRUE(sink_.commits()[0].complete);
  EXPECT_EQ(pipeline.confirmable(), Lsn::from_string("0/1A78A50"));

  const auto calls_before_heartbeat = sink_.calls().size();
  pipeline.on_message(fixture.messages[3].lsn, fixture.messages[3].bytes);  // non-transactional heartbeat
  EXPECT_EQ(sink_.calls().size(), calls_before_heartbeat);
  EXPECT_EQ(pipeline.confirmable(), Lsn::from_string("0/1A78AA0"));
  EXPECT_FALSE(pipeline.in_transaction());
}

TEST_F(PipelineConfirmation, captured_changes_of_uncaptured_tables_are_confirmed_without_kafka) {
  auto& pipeline = start(batching(100, kNever));
  for (const auto& message : testing::load_fixture("setup_rows").messages) {
    pipeline.on_message(message.lsn, message.bytes);
  }
  EXPECT_THAT(sink_.trace(), IsEmpty());
  EXPECT_EQ(pipeline.confirmable(), Lsn::from_string("0/1A716D8"));
  EXPECT_EQ(pipeline.stats().transactions_seen, 2U);
}

// --- Batching ---

TEST_F(PipelineBatching, several_small_transactions_share_one_kafka_transaction_until_batch_max_elapses) {
  auto& pipeline = start(batching(100, milliseconds(100)));
  const auto first = wal_.outbox_txn(1);
  const auto second = wal_.outbox_txn(1);
  const auto third = wal_.outbox_txn(1);

  feed(first);
  clock_.advance(milliseconds(60));
  feed(second);
  clock_.advance(milliseconds(39));
  pipeline.tick();
  EXPECT_THAT(sink_.commits(), IsEmpty());
  EXPECT_EQ(pipeline.confirmable(), Lsn());

  clock_.advance(milliseconds(1));
  pipeline.tick();
  EXPECT_THAT(sink_.trace(), ElementsAre("ensure_topics syncline.events.conversation", "begin",
                                         "publish syncline.events.conversation",
                                         "publish syncline.events.conversation", "commit"));
  EXPECT_THAT(sink_.commits(), ElementsAre(second.complete_position(1)));
  EXPECT_EQ(pipeline.confirmable(), second.end_lsn);

  feed(third);  // a new batch, timed from its own first record
  clock_.advance(milliseconds(99));
  pipeline.tick();
  EXPECT_EQ(sink_.commits().size(), 1U);
  clock_.advance(milliseconds(1));
  pipeline.tick();
  EXPECT_THAT(sink_.commits(), ElementsAre(second.complete_position(1), third.complete_position(1)));
}

TEST_F(PipelineBatching, a_source_commit_after_batch_max_commits_the_batch_without_waiting_for_tick) {
  auto& pipeline = start(batching(100, milliseconds(100)));
  const auto first = wal_.outbox_txn(1);
  const auto second = wal_.outbox_txn(1);

  feed(first);
  clock_.advance(milliseconds(100));
  feed(second);

  EXPECT_THAT(sink_.commits(), ElementsAre(second.complete_position(1)));
  EXPECT_EQ(pipeline.confirmable(), second.end_lsn);
}

TEST_F(PipelineBatching, tick_does_not_commit_inside_a_source_transaction) {
  auto& pipeline = start(batching(100, milliseconds(100)));
  const auto txn = wal_.outbox_txn(2);

  feed_all_but_commit(txn);
  clock_.advance(milliseconds(500));
  pipeline.tick();
  EXPECT_THAT(sink_.commits(), IsEmpty());

  feed_commit(txn);
  EXPECT_THAT(sink_.commits(), ElementsAre(txn.complete_position(2)));
}

TEST_F(PipelineBatching, several_small_transactions_share_one_kafka_transaction_until_batch_max_events_is_reached) {
  auto& pipeline = start(batching(3, kNever));
  const auto first = wal_.outbox_txn(1);
  const auto second = wal_.outbox_txn(1);
  const auto third = wal_.outbox_txn(1);
  const auto fourth = wal_.outbox_txn(1);

  feed(first);
  feed(second);
  EXPECT_THAT(sink_.commits(), IsEmpty());
  feed(third);

  EXPECT_THAT(sink_.trace(), ElementsAre("ensure_topics syncline.events.conversation", "begin",
                                         "publish syncline.events.conversation",
                                         "publish syncline.events.conversation",
                                         "publish syncline.events.conversation", "commit"));
  EXPECT_THAT(sink_.commits(), ElementsAre(third.complete_position(1)));
  EXPECT_EQ(pipeline.confirmable(), third.end_lsn);

  feed(fourth);
  EXPECT_EQ(sink_.commits().size(), 1U);
  EXPECT_TRUE(pipeline.batch_open());
}

// --- Splitting large source transactions ---

TEST_F(PipelineSplitting, a_transaction_with_more_changes_than_batch_max_events_is_split_with_partial_positions) {
  auto& pipeline = start(batching(2, milliseconds(0)));
  const auto before = wal_.outbox_txn(1);
  const auto large = wal_.outbox_txn(5);

  feed(before);
  feed_all_but_commit(large);
  EXPECT_THAT(sink_.commits(), ElementsAre(before.complete_position(1), large.partial_position(2),
                                           large.partial_position(4)));
  EXPECT_EQ(pipeline.confirmable(), before.end_lsn) << "not past the last complete transaction";

  feed_commit(large);
  EXPECT_THAT(sink_.commits(), ElementsAre(before.complete_position(1), large.partial_position(2),
                                           large.partial_position(4), large.complete_position(5)));
  EXPECT_EQ(pipeline.confirmable(), large.end_lsn);
  EXPECT_EQ(pipeline.stats().kafka_commits, 4U);
}

TEST_F(PipelineSplitting, a_transaction_with_exactly_batch_max_events_changes_is_not_split) {
  auto& pipeline = start(batching(2, kNever));
  const auto txn = wal_.outbox_txn(2);

  feed(txn);

  EXPECT_THAT(sink_.commits(), ElementsAre(txn.complete_position(2)));
  EXPECT_EQ(pipeline.confirmable(), txn.end_lsn);
}

// --- Resume after a restart ---

TEST_F(PipelineResume, after_a_restart_at_a_partial_position_only_the_unpublished_changes_of_the_resent_transaction_are_published) {
  start(batching(2, milliseconds(0)));
  const auto large = wal_.outbox_txn(5);
  feed_all_but_commit(large);  // the process dies here
  const auto stored = sink_.commits().back();
  ASSERT_EQ(stored, large.partial_position(4));

  auto& pipeline = restart(batching(2, milliseconds(0)), stored);
  EXPECT_EQ(pipeline.confirmable(), Lsn());
  feed(large);

  EXPECT_THAT(published_seqs(), ElementsAre(5U));
  EXPECT_THAT(sink_.commits(), ElementsAre(large.complete_position(5)));
  EXPECT_EQ(pipeline.confirmable(), large.end_lsn);
  EXPECT_EQ(pipeline.stats().transactions_skipped, 0U);
}

TEST_F(PipelineResume, after_a_restart_at_a_complete_position_transactions_at_or_below_it_are_skipped_and_counted) {
  const auto first = wal_.outbox_txn(1);
  const auto second = wal_.outbox_txn(2);
  const auto third = wal_.outbox_txn(1, "order");
  SourcePosition stored = second.complete_position(2);
  stored.snapshot.state = SnapshotProgress::State::done;

  auto& pipeline = restart(batching(100, milliseconds(0)), stored);
  EXPECT_EQ(pipeline.confirmable(), second.end_lsn);
  feed(first);
  feed(second);
  EXPECT_THAT(sink_.trace(), IsEmpty());
  feed(third);

  EXPECT_THAT(sink_.trace(), ElementsAre("ensure_topics syncline.events.order", "begin",
                                         "publish syncline.events.order", "commit"));
  SourcePosition expected = third.complete_position(1);
  expected.snapshot.state = SnapshotProgress::State::done;
  EXPECT_THAT(sink_.commits(), ElementsAre(expected)) << "the snapshot's state is carried over from the stored position";
  EXPECT_EQ(pipeline.stats().transactions_seen, 3U);
  EXPECT_EQ(pipeline.stats().transactions_skipped, 2U);
  EXPECT_EQ(pipeline.confirmable(), third.end_lsn);
}

// --- Flush and failures ---

TEST_F(PipelineFlush, flush_inside_a_transaction_commits_a_partial_position) {
  auto& pipeline = start(batching(100, kNever));
  const auto before = wal_.outbox_txn(1);
  const auto open = wal_.outbox_txn(3);

  feed(before);
  feed_all_but_commit(open);
  pipeline.flush();

  EXPECT_THAT(sink_.commits(), ElementsAre(open.partial_position(3)));
  EXPECT_EQ(pipeline.confirmable(), before.end_lsn);
  EXPECT_FALSE(pipeline.batch_open());
}

TEST_F(PipelineFlush, flush_between_transactions_commits_the_last_complete_one_and_then_nothing) {
  auto& pipeline = start(batching(100, kNever));
  const auto txn = wal_.outbox_txn(1);

  feed(txn);
  pipeline.flush();
  pipeline.flush();

  EXPECT_THAT(sink_.commits(), ElementsAre(txn.complete_position(1)));
  EXPECT_EQ(pipeline.confirmable(), txn.end_lsn);
}

TEST_F(PipelineSinkFailure, a_failing_commit_propagates_and_nothing_is_confirmed) {
  auto& pipeline = start(batching(100, milliseconds(0)));
  const auto txn = wal_.outbox_txn(1);
  sink_.fail_on(SinkKind::commit, 1);

  feed_all_but_commit(txn);
  EXPECT_THROW(feed_commit(txn), InjectedSinkFailure);

  EXPECT_EQ(pipeline.confirmable(), Lsn());
  EXPECT_THAT(sink_.commits(), IsEmpty());
}

TEST_F(PipelineSinkFailure, a_failing_publish_propagates_and_nothing_is_committed_or_confirmed) {
  auto& pipeline = start(batching(100, milliseconds(0)));
  const auto txn = wal_.outbox_txn(3);
  sink_.fail_on(SinkKind::publish, 2);

  EXPECT_THROW(feed(txn), InjectedSinkFailure);

  EXPECT_EQ(sink_.published().size(), 1U);
  EXPECT_THAT(sink_.commits(), IsEmpty());
  EXPECT_EQ(pipeline.confirmable(), Lsn());
}

// --- Topics ---

TEST_F(PipelineTopics, a_new_aggregate_type_is_ensured_before_the_first_publish_to_its_topic) {
  auto& pipeline = start(batching(100, kNever));
  feed(wal_.outbox_txn(1, "conversation"));
  feed(wal_.outbox_txn(1, "order"));
  feed(wal_.outbox_txn(1, "conversation"));
  pipeline.flush();

  EXPECT_THAT(sink_.trace(),
              ElementsAre("ensure_topics syncline.events.conversation", "begin", "publish syncline.events.conversation",
                          "ensure_topics syncline.events.order", "publish syncline.events.order",
                          "publish syncline.events.conversation", "commit"));
  EXPECT_EQ(sink_.calls_of(SinkKind::ensure_topics), 2U);
}

TEST_F(PipelineTopics, a_failing_ensure_topics_publishes_nothing_to_the_new_topic) {
  start(batching(100, milliseconds(0)));
  sink_.fail_on(SinkKind::ensure_topics, 1);

  EXPECT_THROW(feed(wal_.outbox_txn(1)), InjectedSinkFailure);

  EXPECT_THAT(sink_.trace(), IsEmpty());
}

// --- Snapshot ---

const TransactionInfo kSnapshotTxn{
    .commit_lsn = Lsn(0x2000000),
    .commit_ts = "2026-11-22T10:00:00.125Z",
    .xid = 0,
    .snapshot = true,
};

TupleData order_row(std::string id) { return {{ColumnKind::text, std::move(id)}, {ColumnKind::text, "open"}}; }

SnapshotProgress running(std::size_t table, std::optional<std::string> last_id, std::uint64_t rows) {
  SnapshotProgress progress{SnapshotProgress::State::running, table, std::nullopt, rows};
  if (last_id) progress.last_key = nlohmann::json{{"id", *last_id}};
  return progress;
}
const SnapshotProgress kDone{SnapshotProgress::State::done, 0, std::nullopt, 3};

// The stream's start: the new slot's consistent point (kSnapshotTxn's rows sit one below it).
SourcePosition stream_start() { return position_before(Lsn(kSnapshotTxn.commit_lsn.value() + 1)); }

SourcePosition stream_start_with(SnapshotProgress progress) {
  auto position = stream_start();
  position.snapshot = std::move(progress);
  return position;
}

TEST_F(PipelineSnapshot, snapshot_rows_are_published_as_reads_at_their_position_and_finish_commits_the_stream_start) {
  auto& pipeline = start(batching(100, kNever));
  pipeline.begin_snapshot(stream_start());

  pipeline.on_snapshot_row(kSnapshotTxn, kOrders, order_row("1"), running(0, "1", 1));
  pipeline.on_snapshot_row(kSnapshotTxn, kOrders, order_row("2"), running(0, "2", 2));
  EXPECT_FALSE(pipeline.snapshot_done());
  pipeline.finish_snapshot(kDone);

  EXPECT_THAT(sink_.trace(), ElementsAre("begin", "publish syncline.public.orders", "publish syncline.public.orders",
                                         "commit"));
  std::uint64_t seq = 0;
  for (const auto& record : sink_.published()) {
    const auto envelope = decode_envelope(record.message.value);
    EXPECT_EQ(envelope.op, Op::read);
    EXPECT_TRUE(envelope.source.snapshot);
    EXPECT_EQ(envelope.source.commit_lsn, kSnapshotTxn.commit_lsn);
    EXPECT_EQ(envelope.source.seq, ++seq);
  }
  EXPECT_THAT(sink_.commits(), ElementsAre(stream_start_with(kDone)));
  EXPECT_TRUE(pipeline.snapshot_done());
  EXPECT_FALSE(pipeline.in_transaction());
  EXPECT_EQ(pipeline.confirmable(), stream_start().end_lsn);
}

TEST_F(PipelineSnapshot, a_split_snapshot_batch_stores_the_stream_start_and_the_key_of_its_last_row) {
  auto& pipeline = start(batching(2, kNever));
  pipeline.begin_snapshot(stream_start());

  for (const auto* id : {"1", "2", "3"}) {
    pipeline.on_snapshot_row(kSnapshotTxn, kOrders, order_row(id), running(0, id, std::stoull(id)));
  }
  pipeline.finish_snapshot(kDone);

  // The split before row 3 holds rows 1 and 2: its progress is row 2's, so a restart resumes after it.
  EXPECT_THAT(sink_.commits(), ElementsAre(stream_start_with(running(0, "2", 2)), stream_start_with(kDone)));
}

TEST_F(PipelineSnapshot, a_snapshot_truncate_goes_to_every_partition_below_the_rows_of_its_position) {
  auto& pipeline = start(batching(100, kNever));
  pipeline.begin_snapshot(stream_start());

  pipeline.on_snapshot_truncate(kSnapshotTxn, kOrders, running(0, std::nullopt, 0));
  pipeline.on_snapshot_row(kSnapshotTxn, kOrders, order_row("1"), running(0, "1", 1));
  pipeline.commit_snapshot(running(0, "1", 1));

  ASSERT_EQ(sink_.published().size(), 2U);
  const auto truncate = decode_envelope(sink_.published()[0].message.value);
  EXPECT_EQ(truncate.op, Op::truncate);
  EXPECT_EQ(truncate.source.seq, 0U);
  EXPECT_TRUE(sink_.published()[0].every_partition);
  EXPECT_EQ(decode_envelope(sink_.published()[1].message.value).source.seq, 1U);
  EXPECT_FALSE(sink_.published()[1].every_partition);
}

TEST_F(PipelineSnapshot, rows_of_a_newer_snapshot_count_their_seq_from_one_at_their_own_position) {
  auto& pipeline = start(batching(100, kNever));
  pipeline.begin_snapshot(stream_start());
  TransactionInfo renewed = kSnapshotTxn;
  renewed.commit_lsn = Lsn(kSnapshotTxn.commit_lsn.value() + 0x500);

  pipeline.on_snapshot_row(kSnapshotTxn, kOrders, order_row("1"), running(0, "1", 1));
  pipeline.commit_snapshot(running(0, "1", 1));
  pipeline.on_snapshot_row(renewed, kOrders, order_row("2"), running(0, "2", 2));
  pipeline.finish_snapshot(kDone);

  const auto second = decode_envelope(sink_.published().at(1).message.value);
  EXPECT_EQ(second.source.commit_lsn, renewed.commit_lsn);
  EXPECT_EQ(second.source.seq, 1U);
  EXPECT_THAT(sink_.commits(), ElementsAre(stream_start_with(running(0, "1", 1)), stream_start_with(kDone)));
}

// A transaction whose commit record starts exactly at the slot's consistent point is streamed, not
// in the snapshot: the stored position must not claim it.
TEST_F(PipelineSnapshot, a_transaction_committed_at_the_consistent_point_is_not_taken_for_published) {
  const ResumeFilter filter(position_before(kSnapshotTxn.commit_lsn));
  EXPECT_FALSE(filter.already_published(kSnapshotTxn.commit_lsn, 1));
  EXPECT_TRUE(filter.already_published(Lsn(kSnapshotTxn.commit_lsn.value() - 8), 1));
}

TEST_F(PipelineSnapshot, an_empty_snapshot_still_commits_that_it_is_done) {
  auto& pipeline = start(batching(100, kNever));
  pipeline.begin_snapshot(stream_start());

  pipeline.finish_snapshot(kDone);

  EXPECT_THAT(sink_.commits(), ElementsAre(stream_start_with(kDone)));
  EXPECT_TRUE(pipeline.snapshot_done());
}

// --- Source history (point 3 of "no loss on any path") ---

TEST_F(PipelineResume, the_resent_last_published_transaction_proves_the_history_and_streaming_goes_on) {
  const auto first = wal_.outbox_txn(1);
  const auto second = wal_.outbox_txn(1);
  const SourcePosition stored = first.complete_position(1);
  auto& pipeline = restart(batching(100, milliseconds(0)), stored);
  pipeline_.reset();
  PositionContext context;
  context.last_published = stored.last_published;
  context.expect = stored.last_published;
  pipeline_.emplace(*router_, sink_, batching(100, milliseconds(0)), ResumeFilter(stored), context, clock_.function());
  (void)pipeline;

  feed(first);   // resent: skipped, and it is the transaction the stored position names
  feed(second);  // published
  EXPECT_THAT(sink_.commits(), ElementsAre(second.complete_position(1)));
}

TEST_F(PipelineResume, another_transaction_where_the_last_published_one_was_is_refused) {
  const auto first = wal_.outbox_txn(1);
  SourcePosition stored = first.complete_position(1);
  stored.last_published->xid += 1;  // the WAL at that position now holds another transaction
  restart(batching(100, milliseconds(0)), stored);
  pipeline_.reset();
  PositionContext context;
  context.expect = stored.last_published;
  pipeline_.emplace(*router_, sink_, batching(100, milliseconds(0)), ResumeFilter(stored), context, clock_.function());

  EXPECT_THROW(feed(first), SourceRefused);
  EXPECT_THAT(sink_.trace(), IsEmpty());
}

TEST_F(PipelineResume, a_later_transaction_arriving_first_means_the_published_one_is_gone_and_is_refused) {
  const auto lost = wal_.outbox_txn(1);
  const auto later = wal_.outbox_txn(1);
  const SourcePosition stored = lost.complete_position(1);
  restart(batching(100, milliseconds(0)), stored);
  pipeline_.reset();
  PositionContext context;
  context.expect = stored.last_published;
  pipeline_.emplace(*router_, sink_, batching(100, milliseconds(0)), ResumeFilter(stored), context, clock_.function());

  try {
    feed(later);
    FAIL() << "a history without the published transaction was streamed";
  } catch (const SourceRefused& refused) {
    EXPECT_NE(std::string(refused.what()).find("syncline-ctl resync source --new-source"), std::string::npos)
        << refused.what();
  }
  EXPECT_THAT(sink_.trace(), IsEmpty());
}

TEST_F(PipelineResume, a_commit_without_records_keeps_the_last_published_transaction_of_an_earlier_one) {
  auto& pipeline = start(batching(100, kNever));
  const auto published = wal_.outbox_txn(1);
  const auto silent = wal_.uncaptured_txn();
  feed(published);
  feed(silent);
  pipeline.flush();

  ASSERT_EQ(sink_.commits().size(), 1U);
  EXPECT_EQ(sink_.commits()[0].commit_lsn, silent.commit_lsn);
  EXPECT_EQ(sink_.commits()[0].last_published, (PublishedTransaction{published.commit_lsn, published.xid}));
}

// --- ResumeFilter ---

const Lsn kStoredCommit = Lsn::from_string("0/16B3800");

TEST(ResumeFilter, without_a_stored_position_nothing_is_already_published) {
  const ResumeFilter filter;
  EXPECT_FALSE(filter.already_published(Lsn(1), 1));
  EXPECT_FALSE(filter.stored().has_value());
}

TEST(ResumeFilter, a_complete_position_covers_every_change_of_transactions_at_or_below_it) {
  const ResumeFilter filter(SourcePosition{kStoredCommit, Lsn(kStoredCommit.value() + 0x30), 3, true});
  EXPECT_TRUE(filter.already_published(Lsn(kStoredCommit.value() - 1), 100));
  EXPECT_TRUE(filter.already_published(kStoredCommit, 1));
  EXPECT_TRUE(filter.already_published(kStoredCommit, 100));
  EXPECT_FALSE(filter.already_published(Lsn(kStoredCommit.value() + 1), 1));
}

TEST(ResumeFilter, a_partial_position_covers_earlier_transactions_and_its_own_changes_up_to_seq) {
  const ResumeFilter filter(SourcePosition{kStoredCommit, Lsn(), 3, false});
  EXPECT_TRUE(filter.already_published(Lsn(kStoredCommit.value() - 1), 100));
  EXPECT_TRUE(filter.already_published(kStoredCommit, 3));
  EXPECT_FALSE(filter.already_published(kStoredCommit, 4));
  EXPECT_FALSE(filter.already_published(Lsn(kStoredCommit.value() + 1), 1));
}

// --- encode_position / decode_position ---

TEST(SourcePosition, complete_and_partial_positions_round_trip_through_their_json_form) {
  SourcePosition complete{kStoredCommit, Lsn::from_string("0/16B3830"), 12, true};
  complete.snapshot.state = SnapshotProgress::State::done;
  complete.snapshot.rows = 40;
  complete.epoch = 2;
  complete.source = {"7312345678901234567", 3};
  complete.last_published = PublishedTransaction{kStoredCommit, 991};
  SourcePosition partial{Lsn::from_string("FF/FFFFFFFF"), Lsn(), 10'000, false};
  partial.snapshot = {SnapshotProgress::State::running, 1, nlohmann::json{{"id", "42"}}, 7, true};
  SourcePosition fresh;
  fresh.fresh = true;
  fresh.epoch = 1;
  for (const auto& position : {complete, partial, fresh}) {
    EXPECT_EQ(decode_position(encode_position(position)), position) << encode_position(position);
  }
  EXPECT_EQ(encode_position(complete),
            R"({"commit_lsn":"0/16B3800","end_lsn":"0/16B3830","seq":12,"complete":true,"snapshot_done":true,)"
            R"("snapshot":{"state":"done","rows":40},"epoch":2,"system_id":"7312345678901234567","timeline":3,)"
            R"("last_published":{"commit_lsn":"0/16B3800","xid":991}})");
}

TEST(SourcePosition, the_older_form_decodes_with_its_snapshot_done_or_as_no_snapshot_and_no_identity) {
  SourcePosition done{Lsn(0x10), Lsn(0x40), 1, true};
  done.snapshot.state = SnapshotProgress::State::done;
  EXPECT_EQ(decode_position(R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":1,"complete":true,"snapshot_done":true})"),
            done);
  // A position written while an old snapshot ran looks like one of `snapshot: never`: read as "none",
  // so nothing is dropped or taken again.
  EXPECT_EQ(decode_position(R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":1,"complete":true})"),
            (SourcePosition{Lsn(0x10), Lsn(0x40), 1, true}));
}

TEST(SourcePosition, decode_of_garbage_returns_nullopt) {
  for (const char* text : {
           "",
           "not json",
           "[1, 2]",
           "{}",
           R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":1,"complete":true)",  // cut off
           R"({"end_lsn":"0/40","seq":1,"complete":true})",
           R"({"commit_lsn":"0/XYZ","end_lsn":"0/40","seq":1,"complete":true})",
           R"({"commit_lsn":16,"end_lsn":"0/40","seq":1,"complete":true})",
           R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":"1","complete":true})",
           R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":-1,"complete":false})",
           R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":1.5,"complete":false})",
           R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":1,"complete":"yes"})",
           R"({"commit_lsn":"0/10","end_lsn":"0/40","seq":1,"complete":true,"snapshot_done":1})",
       }) {
    EXPECT_EQ(decode_position(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace syncline::producer
