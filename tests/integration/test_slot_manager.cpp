// Integration tests of SlotManager (publications, slot state, heartbeats) against the write PostgreSQL.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/pg.hpp"
#include "producer/slot_manager.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::producer {
namespace {

using test::stack_env;
using test::stack_value;
using test::unique_name;

// Runs `action`, which must throw a PgError, and returns it.
template <typename Action>
pg::PgError expect_pg_error(Action action) {
  try {
    action();
  } catch (const pg::PgError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a PgError";
  return pg::PgError("", "no error");
}

class SlotManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_write_pg());
    connection_ = std::make_unique<pg::PgConnection>(stack_env().write_pg_dsn);
    slots_ = std::make_unique<SlotManager>(*connection_);
    schema_ = unique_name("syncline_sm");
    connection_->exec("CREATE SCHEMA " + schema_);
    for (const char* table : {"a", "b", "c"}) {
      connection_->exec("CREATE TABLE " + schema_ + "." + table + " (id int PRIMARY KEY)");
    }
  }

  void TearDown() override {
    if (!connection_) return;
    // No walsender ever uses these slots, so they can be dropped at once.
    slots_->drop_slot(schema_);
    slots_->drop_publication(schema_);
    connection_->exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  TableName table(const char* name) const { return {schema_, name}; }

  std::unique_ptr<pg::PgConnection> connection_;
  std::unique_ptr<SlotManager> slots_;
  std::string schema_;  // also the publication's and the slot's name
};

TEST_F(SlotManagerTest, EnsurePublicationCreatesAMissingPublicationForEveryOperation) {
  slots_->ensure_publication(schema_, {table("a"), table("b")}, true);
  const pg::Result publication = connection_->exec(
      "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate, "
      "(SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables t "
      " WHERE t.pubname = p.pubname) FROM pg_publication p WHERE pubname = $1",
      {schema_});
  ASSERT_EQ(publication.rows(), 1);
  EXPECT_EQ(publication.value(0, 0), "t");
  EXPECT_EQ(publication.value(0, 1), "a,b");
}

TEST_F(SlotManagerTest, EnsurePublicationAcceptsAPublicationThatMatches) {
  slots_->ensure_publication(schema_, {table("a"), table("b")}, true);
  EXPECT_NO_THROW(slots_->ensure_publication(schema_, {table("b"), table("a")}, false));
}

TEST_F(SlotManagerTest, PublicationMismatchErrorNamesTheMissingAndExtraTables) {
  slots_->ensure_publication(schema_, {table("a"), table("b")}, true);
  const pg::PgError error = expect_pg_error([&] {
    slots_->ensure_publication(schema_, {table("a"), table("c")}, true);
  });
  const std::string message = error.what();
  EXPECT_NE(message.find("missing " + schema_ + ".c"), std::string::npos) << message;
  EXPECT_NE(message.find("extra " + schema_ + ".b"), std::string::npos) << message;
  EXPECT_EQ(error.error_class(), pg::ErrorClass::permanent);
}

TEST_F(SlotManagerTest, MissingPublicationIsAnErrorWhenCreationIsNotAllowed) {
  const pg::PgError error =
      expect_pg_error([&] { slots_->ensure_publication(schema_, {table("a")}, false); });
  EXPECT_NE(std::string(error.what()).find(schema_), std::string::npos) << error.what();
  EXPECT_EQ(error.sqlstate(), "42704");
}

TEST_F(SlotManagerTest, PublicationThatSkipsDeletesAndTruncatesIsRejected) {
  connection_->exec("CREATE PUBLICATION " + schema_ + " FOR TABLE " + schema_ +
                    ".a WITH (publish = 'insert, update')");
  const pg::PgError error = expect_pg_error([&] { slots_->ensure_publication(schema_, {table("a")}, true); });
  EXPECT_NE(std::string(error.what()).find("does not publish delete, truncate"), std::string::npos)
      << error.what();
}

TEST_F(SlotManagerTest, SlotStateOfAnAbsentSlotSaysItDoesNotExist) {
  const SlotState state = slots_->slot_state(schema_);
  EXPECT_FALSE(state.exists);
  EXPECT_NO_THROW(slots_->validate_slot(schema_));
}

TEST_F(SlotManagerTest, SlotStateReportsPluginDatabasePositionsAndRetainedWal) {
  connection_->exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {schema_});
  const Lsn heartbeat = slots_->emit_heartbeat(unique_name("syncline_heartbeat"), "{}");

  const SlotState state = slots_->validate_slot(schema_);
  EXPECT_TRUE(state.exists);
  EXPECT_EQ(state.slot_type, "logical");
  EXPECT_EQ(state.plugin, "pgoutput");
  EXPECT_EQ(state.database, slots_->current_database());
  EXPECT_FALSE(state.active);
  EXPECT_EQ(state.active_pid, std::nullopt);
  EXPECT_TRUE(state.restart_lsn.is_valid());
  EXPECT_TRUE(state.confirmed_flush_lsn.is_valid());
  // The heartbeat was written after the slot, so the slot pins at least the WAL up to it.
  EXPECT_GT(heartbeat, state.restart_lsn);
  EXPECT_GE(state.retained_bytes, heartbeat.value() - state.restart_lsn.value());
}

TEST_F(SlotManagerTest, ValidateSlotRejectsAPhysicalSlot) {
  connection_->exec("SELECT pg_create_physical_replication_slot($1)", {schema_});
  const pg::PgError error = expect_pg_error([&] { slots_->validate_slot(schema_); });
  EXPECT_NE(std::string(error.what()).find("is a physical slot"), std::string::npos) << error.what();
}

TEST_F(SlotManagerTest, ValidateSlotRejectsASlotOfAnotherDatabase) {
  pg::PgConnection other_database("host=" + stack_value("SYNCLINE_WRITE_PG_HOST") +
                                  " port=" + stack_value("SYNCLINE_WRITE_PG_PORT") +
                                  " user=" + stack_value("SYNCLINE_PG_USER") +
                                  " password=" + stack_value("SYNCLINE_PG_PASSWORD") + " dbname=postgres");
  other_database.exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {schema_});
  const pg::PgError error = expect_pg_error([&] { slots_->validate_slot(schema_); });
  // A logical slot can only be dropped from its own database, so TearDown could not.
  SlotManager(other_database).drop_slot(schema_);
  EXPECT_NE(std::string(error.what()).find("belongs to database \"postgres\""), std::string::npos)
      << error.what();
}

TEST(SlotManager, SlotProblemNamesAForeignPluginAndLostWal) {
  SlotState state;
  state.exists = true;
  state.slot_type = "logical";
  state.plugin = "wal2json";
  state.database = "db";
  EXPECT_NE(slot_problem(state, "s", "db").value_or("").find("\"wal2json\", not pgoutput"),
            std::string::npos);
  state.plugin = "pgoutput";
  EXPECT_EQ(slot_problem(state, "s", "db"), std::nullopt);
  state.wal_status = "lost";
  EXPECT_NE(slot_problem(state, "s", "db").value_or("").find("lost WAL"), std::string::npos);
}

TEST_F(SlotManagerTest, DropSlotRemovesTheSlotAndIgnoresAnAbsentOne) {
  connection_->exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {schema_});
  EXPECT_TRUE(slots_->drop_slot(schema_));
  EXPECT_FALSE(slots_->slot_state(schema_).exists);
  EXPECT_FALSE(slots_->drop_slot(schema_));
}

TEST(SlotManager, QuotedIdentifiersDoubleTheirQuotes) {
  EXPECT_EQ(quote_identifier("plain"), "\"plain\"");
  EXPECT_EQ(quote_table({"My Schema", "we\"ird"}), "\"My Schema\".\"we\"\"ird\"");
}

}  // namespace
}  // namespace syncline::producer
