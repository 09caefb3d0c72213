// Integration tests of ReplicationConnection against the real write PostgreSQL (walsender protocol).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/pg.hpp"
#include "producer/pgoutput.hpp"
#include "producer/replication_connection.hpp"
#include "producer/replication_frame.hpp"
#include "producer/slot_manager.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::producer {
namespace {

using namespace std::chrono_literals;
using test::poll_until;
using test::stack_env;
using test::unique_name;

// Reads the stream until a whole transaction (Begin .. Commit) contains a message `wanted` accepts,
// and returns that transaction. Other transactions are skipped: other tests share the database, and
// their pg_logical_emit_message calls reach every slot that streams messages.
template <typename Wanted>
std::vector<PgoutputMessage> read_transaction_with(ReplicationConnection& stream, Wanted wanted,
                                                   std::chrono::milliseconds deadline = 20s) {
  PgoutputDecoder decoder(1);
  std::vector<PgoutputMessage> transaction;
  bool found = false;
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    const auto frame = stream.read_frame(500ms);
    if (!frame) continue;
    const auto decoded = decode_replication_frame(*frame);
    const auto* data = std::get_if<XLogData>(&decoded);
    if (data == nullptr) continue;
    PgoutputMessage message = decoder.decode(data->payload);
    if (std::holds_alternative<BeginMessage>(message)) {
      transaction.clear();
      found = false;
    }
    found = found || wanted(message);
    const bool commit = std::holds_alternative<CommitMessage>(message);
    transaction.push_back(std::move(message));
    if (commit && found) return transaction;
  }
  ADD_FAILURE() << "no matching transaction arrived within " << deadline.count() << " ms";
  return {};
}

class ReplicationConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_write_pg());
    admin_ = std::make_unique<pg::PgConnection>(stack_env().write_pg_dsn);
    schema_ = unique_name("syncline_rc");
    admin_->exec("CREATE SCHEMA " + schema_);
    admin_->exec("CREATE TABLE " + schema_ + ".items (id bigint PRIMARY KEY, name text, at timestamptz)");
    SlotManager(*admin_).ensure_publication(schema_, {{schema_, "items"}}, true);
  }

  void TearDown() override {
    stream_.reset();  // the walsender must let go of the slot before it can be dropped
    if (!admin_) return;
    SlotManager slots(*admin_);
    EXPECT_TRUE(poll_until(
        [&] {
          try {
            slots.drop_slot(schema_);
            return true;
          } catch (const pg::PgError& e) {
            if (e.sqlstate() == "55006") return false;  // still active: the walsender is exiting
            throw;
          }
        },
        10s, "replication slot " + schema_ + " to be released and dropped"));
    slots.drop_publication(schema_);
    admin_->exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  // A new slot (named like the schema and publication), streaming from its consistent point.
  ReplicationConnection& start_stream() {
    stream_ = std::make_unique<ReplicationConnection>(stack_env().write_pg_dsn);
    const CreatedSlot slot = stream_->create_slot(schema_, false);
    stream_->start_replication(schema_, slot.consistent_point, StreamOptions{{schema_}, 1, true});
    return *stream_;
  }

  std::unique_ptr<pg::PgConnection> admin_;
  std::unique_ptr<ReplicationConnection> stream_;
  std::string schema_;  // also the slot's and the publication's name
};

TEST_F(ReplicationConnectionTest, IdentifySystemReportsTheConnectedDatabase) {
  ReplicationConnection connection(stack_env().write_pg_dsn);
  const SystemIdentity identity = connection.identify_system();
  EXPECT_EQ(identity.database, SlotManager(*admin_).current_database());
  EXPECT_FALSE(identity.system_id.empty());
  EXPECT_GE(identity.timeline, 1);
  EXPECT_TRUE(identity.wal_flush.is_valid());
}

TEST_F(ReplicationConnectionTest, CreatedSlotWithoutSnapshotHasNoSnapshotName) {
  stream_ = std::make_unique<ReplicationConnection>(stack_env().write_pg_dsn);
  const CreatedSlot slot = stream_->create_slot(schema_, false);
  EXPECT_EQ(slot.slot_name, schema_);
  EXPECT_EQ(slot.output_plugin, "pgoutput");
  EXPECT_TRUE(slot.consistent_point.is_valid());
  EXPECT_EQ(slot.snapshot_name, std::nullopt);
  EXPECT_TRUE(SlotManager(*admin_).slot_state(schema_).exists);
}

TEST_F(ReplicationConnectionTest, InvalidSlotNameIsRejectedBeforeReachingTheServer) {
  ReplicationConnection connection(stack_env().write_pg_dsn);
  try {
    connection.create_slot("Bad-Name", false);
    FAIL() << "expected an invalid slot name to be rejected";
  } catch (const pg::PgError& e) {
    EXPECT_EQ(e.sqlstate(), "42602");
    EXPECT_EQ(e.error_class(), pg::ErrorClass::permanent);
  }
}

TEST_F(ReplicationConnectionTest, UnreachableServerIsRetriableAndItsErrorHidesThePassword) {
  try {
    ReplicationConnection connection("postgresql://syncline:topsecret-pw@127.0.0.1:1/syncline_write", 1s);
    FAIL() << "expected the connection to fail";
  } catch (const pg::PgError& e) {
    EXPECT_TRUE(e.retriable()) << e.what();
    EXPECT_EQ(std::string(e.what()).find("topsecret-pw"), std::string::npos) << e.what();
  }
}

TEST_F(ReplicationConnectionTest, StreamDeliversBeginInsertCommitForAnInsertWithUtcIsoText) {
  ReplicationConnection& stream = start_stream();
  admin_->exec("INSERT INTO " + schema_ + ".items VALUES (1, 'alpha', '2026-01-02 05:04:05.125+02')");

  const auto transaction = read_transaction_with(
      stream, [](const PgoutputMessage& m) { return std::holds_alternative<InsertMessage>(m); });
  ASSERT_EQ(transaction.size(), 4U);  // Begin, Relation (first use on this connection), Insert, Commit
  ASSERT_TRUE(std::holds_alternative<BeginMessage>(transaction[0]));
  const auto& relation = std::get<RelationMessage>(transaction[1]);
  EXPECT_EQ(relation.schema, schema_);
  EXPECT_EQ(relation.table, "items");
  const auto& insert = std::get<InsertMessage>(transaction[2]);
  EXPECT_EQ(insert.relation_id, relation.relation_id);
  ASSERT_EQ(insert.new_tuple.size(), 3U);
  EXPECT_EQ(insert.new_tuple[0].value, "1");
  EXPECT_EQ(insert.new_tuple[1].value, "alpha");
  // The session options: ISO DateStyle, UTC time zone.
  EXPECT_EQ(insert.new_tuple[2].value, "2026-01-02 03:04:05.125+00");
  const auto& commit = std::get<CommitMessage>(transaction[3]);
  EXPECT_EQ(commit.commit_lsn, std::get<BeginMessage>(transaction[0]).final_lsn);
}

TEST_F(ReplicationConnectionTest, StatusUpdateAdvancesConfirmedFlushLsn) {
  ReplicationConnection& stream = start_stream();
  admin_->exec("INSERT INTO " + schema_ + ".items (id) VALUES (1)");
  const auto transaction = read_transaction_with(
      stream, [](const PgoutputMessage& m) { return std::holds_alternative<InsertMessage>(m); });
  ASSERT_FALSE(transaction.empty());
  const Lsn end = std::get<CommitMessage>(transaction.back()).end_lsn;
  SlotManager slots(*admin_);
  ASSERT_LT(slots.slot_state(schema_).confirmed_flush_lsn, end);

  stream.send_status(end, end, end, false);
  EXPECT_TRUE(poll_until([&] { return slots.slot_state(schema_).confirmed_flush_lsn >= end; }, 10s,
                         "confirmed_flush_lsn to reach " + end.to_string()));
}

TEST_F(ReplicationConnectionTest, ReadWithTimeoutReturnsNothingWhenIdle) {
  ReplicationConnection& stream = start_stream();
  // A zero timeout never waits: it hands out what has arrived (the walsender greets with a
  // keepalive) and then says there is nothing.
  EXPECT_TRUE(
      poll_until([&] { return !stream.read_frame(0ms).has_value(); }, 10s, "an empty zero-timeout read"));
  // Other tests' activity may still send a frame now and then, so wait for one idle stretch.
  bool timed_out = false;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!timed_out && std::chrono::steady_clock::now() < until) {
    const auto started = std::chrono::steady_clock::now();
    const auto frame = stream.read_frame(300ms);
    if (frame) continue;
    timed_out = true;
    EXPECT_GE(std::chrono::steady_clock::now() - started, 290ms);
  }
  EXPECT_TRUE(timed_out);
}

TEST_F(ReplicationConnectionTest, HeartbeatMessageArrivesInTheStream) {
  ReplicationConnection& stream = start_stream();
  const std::string prefix = unique_name("syncline_heartbeat");
  const Lsn lsn = SlotManager(*admin_).emit_heartbeat(prefix, R"({"beat":1})");

  const auto transaction = read_transaction_with(stream, [&](const PgoutputMessage& m) {
    const auto* message = std::get_if<LogicalDecodingMessage>(&m);
    return message != nullptr && message->prefix == prefix;
  });
  ASSERT_EQ(transaction.size(), 3U);  // Begin, Message, Commit
  const auto& message = std::get<LogicalDecodingMessage>(transaction[1]);
  EXPECT_TRUE(message.transactional);
  EXPECT_EQ(message.content, R"({"beat":1})");
  EXPECT_EQ(message.lsn, lsn);
}

TEST_F(ReplicationConnectionTest, TerminatedWalsenderSurfacesAsRetriableError) {
  ReplicationConnection& stream = start_stream();
  admin_->exec("SELECT pg_terminate_backend($1::int)", {std::to_string(stream.backend_pid())});

  std::optional<pg::PgError> error;
  EXPECT_TRUE(poll_until(
      [&] {
        try {
          stream.read_frame(200ms);
          return false;
        } catch (const pg::PgError& e) {
          error = e;
          return true;
        }
      },
      10s, "the terminated walsender to surface as an error"));
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->retriable()) << error->what();
  EXPECT_FALSE(stream.is_streaming());
}

TEST_F(ReplicationConnectionTest, StopReplicationReturnsTheConnectionToCommandMode) {
  ReplicationConnection& stream = start_stream();
  stream.stop_replication();
  EXPECT_FALSE(stream.is_streaming());
  EXPECT_TRUE(stream.is_open());
  EXPECT_TRUE(stream.identify_system().wal_flush.is_valid());
}

}  // namespace
}  // namespace syncline::producer
