// Integration tests of SnapshotReader: exported snapshots of the write PostgreSQL, read like pgoutput.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "common/pg.hpp"
#include "producer/pgoutput.hpp"
#include "producer/replication_connection.hpp"
#include "producer/replication_frame.hpp"
#include "producer/slot_manager.hpp"
#include "producer/snapshot_reader.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::producer {
namespace {

using namespace std::chrono_literals;
using test::poll_until;
using test::stack_env;
using test::unique_name;

struct StreamedInsert {
  RelationMessage relation;
  InsertMessage insert;
};

// The first Insert into `table` the stream delivers, with the Relation message describing it.
std::optional<StreamedInsert> next_insert_into(ReplicationConnection& stream, const TableName& table) {
  PgoutputDecoder decoder(1);
  std::map<Oid, RelationMessage> relations;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    const auto frame = stream.read_frame(500ms);
    if (!frame) continue;
    const auto decoded = decode_replication_frame(*frame);
    if (const auto* data = std::get_if<XLogData>(&decoded)) {
      const PgoutputMessage message = decoder.decode(data->payload);
      if (const auto* relation = std::get_if<RelationMessage>(&message))
        relations[relation->relation_id] = *relation;
      const auto* insert = std::get_if<InsertMessage>(&message);
      if (insert == nullptr) continue;
      const RelationMessage& relation = relations.at(insert->relation_id);
      if (relation.schema == table.schema && relation.table == table.table)
        return StreamedInsert{relation, *insert};
    }
  }
  return std::nullopt;
}

struct SnapshotRow {
  RelationInfo relation;
  TupleData row;
};

class SnapshotReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_write_pg());
    admin_ = std::make_unique<pg::PgConnection>(stack_env().write_pg_dsn);
    reader_connection_ = std::make_unique<pg::PgConnection>(stack_env().write_pg_dsn);
    schema_ = unique_name("syncline_snap");
    admin_->exec("CREATE SCHEMA " + schema_);
  }

  void TearDown() override {
    reader_.reset();
    stream_.reset();
    if (!admin_) return;
    SlotManager slots(*admin_);
    if (slot_created_) {
      EXPECT_TRUE(poll_until(
          [&] {
            try {
              return slots.drop_slot(schema_);
            } catch (const pg::PgError& e) {
              if (e.sqlstate() != "55006") throw;  // 55006: the walsender has not exited yet
              return false;
            }
          },
          10s, "replication slot " + schema_ + " to be dropped"));
    }
    slots.drop_publication(schema_);
    admin_->exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  TableName table(const char* name) const { return {schema_, name}; }

  // Creates the slot (exporting its snapshot) and a reader that has imported it.
  CreatedSlot export_snapshot(std::size_t chunk_rows = 1000) {
    stream_ = std::make_unique<ReplicationConnection>(stack_env().write_pg_dsn);
    CreatedSlot slot = stream_->create_slot(schema_, true);
    slot_created_ = true;
    EXPECT_TRUE(slot.snapshot_name.has_value());
    reader_ =
        std::make_unique<SnapshotReader>(*reader_connection_, slot.snapshot_name.value_or(""), chunk_rows);
    return slot;
  }

  std::vector<SnapshotRow> read_all(const TableName& name) {
    std::vector<SnapshotRow> rows;
    const auto count = reader_->read_table(name, [&](const RelationInfo& relation, const TupleData& row) {
      rows.push_back({relation, row});
    });
    EXPECT_EQ(count, rows.size());
    return rows;
  }

  std::unique_ptr<pg::PgConnection> admin_;
  std::unique_ptr<pg::PgConnection> reader_connection_;
  std::unique_ptr<ReplicationConnection> stream_;
  std::unique_ptr<SnapshotReader> reader_;
  std::string schema_;  // also the slot's and the publication's name
  bool slot_created_ = false;
};

std::vector<std::string> first_column(const std::vector<SnapshotRow>& rows) {
  std::vector<std::string> values;
  for (const auto& row : rows) values.push_back(row.row.at(0).value);
  return values;
}

TEST_F(SnapshotReaderTest, SnapshotHasRowsCommittedBeforeTheSlotAndTheStreamHasLaterOnes) {
  admin_->exec("CREATE TABLE " + schema_ + ".items (id int PRIMARY KEY, name text)");
  admin_->exec("INSERT INTO " + schema_ + ".items VALUES (1, 'one'), (2, 'two')");
  SlotManager(*admin_).ensure_publication(schema_, {table("items")}, true);
  const CreatedSlot slot = export_snapshot();
  admin_->exec("INSERT INTO " + schema_ + ".items VALUES (3, 'three')");

  EXPECT_EQ(first_column(read_all(table("items"))), (std::vector<std::string>{"1", "2"}));
  reader_->finish();

  stream_->start_replication(schema_, slot.consistent_point, StreamOptions{{schema_}, 1, true});
  const auto streamed = next_insert_into(*stream_, table("items"));
  ASSERT_TRUE(streamed.has_value()) << "no insert into items arrived";
  EXPECT_EQ(streamed->insert.new_tuple.at(0).value, "3");
}

TEST_F(SnapshotReaderTest, RowsComeInPrimaryKeyOrderAcrossChunks) {
  admin_->exec("CREATE TABLE " + schema_ + ".pairs (label text, b text, a int, PRIMARY KEY (a, b))");
  admin_->exec("INSERT INTO " + schema_ +
               ".pairs VALUES ('a2y', 'y', 2), ('a1z', 'z', 1), ('a3x', 'x', 3), ('a1a', 'a', 1), "
               "('a2b', 'b', 2), ('a0q', 'q', 0), ('a9k', 'k', 9)");
  export_snapshot(3);
  const auto rows = read_all(table("pairs"));
  EXPECT_EQ(first_column(rows), (std::vector<std::string>{"a0q", "a1a", "a1z", "a2b", "a2y", "a3x", "a9k"}));
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].relation.key_columns(), (std::vector<std::string>{"b", "a"}));
}

TEST_F(SnapshotReaderTest, RelationAndValuesMatchWhatPgoutputStreams) {
  admin_->exec(
      "CREATE TABLE " + schema_ +
      ".typed (id int PRIMARY KEY, dropped int, at timestamptz, day date, ratio float8, amount "
      "numeric(10,2), "
      "flag bool, doc jsonb, tags int[], blob bytea, note varchar(20), twice int GENERATED ALWAYS AS "
      "(id * 2) STORED)");
  admin_->exec("ALTER TABLE " + schema_ + ".typed DROP COLUMN dropped");
  const std::string values =
      "'2026-03-04 05:06:07.891+05:30', '2026-03-04', 0.1, 12.50, true, '{\"b\": [1, 2], \"a\": null}', "
      "'{1,2,3}', '\\x00ff', NULL)";
  admin_->exec("INSERT INTO " + schema_ + ".typed VALUES (1, " + values);
  SlotManager(*admin_).ensure_publication(schema_, {table("typed")}, true);
  const CreatedSlot slot = export_snapshot();
  admin_->exec("INSERT INTO " + schema_ + ".typed VALUES (2, " + values);

  const auto rows = read_all(table("typed"));
  reader_->finish();
  ASSERT_EQ(rows.size(), 1U);
  stream_->start_replication(schema_, slot.consistent_point, StreamOptions{{schema_}, 1, true});
  const auto streamed = next_insert_into(*stream_, table("typed"));
  ASSERT_TRUE(streamed.has_value()) << "no insert into typed arrived";

  const RelationInfo& described = rows[0].relation;
  EXPECT_EQ(described.relation_id, streamed->relation.relation_id);
  EXPECT_EQ(described.replica_identity, streamed->relation.replica_identity);
  EXPECT_EQ(described.columns, streamed->relation.columns);
  TupleData snapshot_row = rows[0].row;
  TupleData streamed_row = streamed->insert.new_tuple;
  ASSERT_EQ(snapshot_row.size(), streamed_row.size());
  snapshot_row.erase(snapshot_row.begin());  // the ids differ on purpose
  streamed_row.erase(streamed_row.begin());
  EXPECT_EQ(snapshot_row, streamed_row);
  EXPECT_EQ(snapshot_row.at(0).value, "2026-03-03 23:36:07.891+00");  // ISO, UTC
  EXPECT_EQ(snapshot_row.back().kind, ColumnKind::null);
}

TEST_F(SnapshotReaderTest, TableWithoutPrimaryKeyIsReadInFull) {
  admin_->exec("CREATE TABLE " + schema_ + ".log (line text)");
  admin_->exec("INSERT INTO " + schema_ + ".log SELECT 'line ' || n FROM generate_series(1, 25) AS n");
  export_snapshot(10);
  const auto rows = read_all(table("log"));
  EXPECT_EQ(rows.size(), 25U);
  ASSERT_FALSE(rows.empty());
  EXPECT_TRUE(rows[0].relation.key_columns().empty());
}

TEST_F(SnapshotReaderTest, ReplicaIdentityFullMarksEveryColumnAsKey) {
  admin_->exec("CREATE TABLE " + schema_ + ".full_identity (id int PRIMARY KEY, name text)");
  admin_->exec("ALTER TABLE " + schema_ + ".full_identity REPLICA IDENTITY FULL");
  export_snapshot();
  const RelationInfo relation = reader_->describe(table("full_identity"));
  EXPECT_EQ(relation.replica_identity, ReplicaIdentity::full);
  ASSERT_EQ(relation.columns.size(), 2U);
  EXPECT_TRUE(relation.columns[0].is_key);
  EXPECT_TRUE(relation.columns[1].is_key);
}

TEST_F(SnapshotReaderTest, MissingTableIsAnErrorNamingIt) {
  export_snapshot();
  try {
    reader_->describe(table("absent"));
    FAIL() << "expected an error for a missing table";
  } catch (const pg::PgError& e) {
    EXPECT_EQ(e.sqlstate(), "42P01");
    EXPECT_NE(std::string(e.what()).find(schema_ + ".absent"), std::string::npos) << e.what();
  }
}

TEST_F(SnapshotReaderTest, MalformedOrUnknownSnapshotNamesArePermanentErrors) {
  for (const char* name : {"x'; DROP TABLE t; --", "00000003-0000FFFF-1"}) {
    try {
      SnapshotReader reader(*reader_connection_, name);
      ADD_FAILURE() << "expected snapshot '" << name << "' to be rejected";
    } catch (const pg::PgError& e) {
      EXPECT_EQ(e.error_class(), pg::ErrorClass::permanent) << e.what();
    }
  }
}

}  // namespace
}  // namespace syncline::producer
