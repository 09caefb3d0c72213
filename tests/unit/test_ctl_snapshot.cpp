// Unit tests of syncline-ctl resync snapshot's own rules: the snapshot position, progress keys and
// records, transactional ids and the keyset chunk query.
#include <gtest/gtest.h>

#include "tools/ctl/snapshot.hpp"

namespace syncline::ctl {
namespace {

const TableName kItems{"public", "items"};

TEST(CtlSnapshotPosition, events_sit_just_below_the_consistent_point) {
  // A transaction whose commit record starts at the consistent point is streamed, not in the snapshot.
  EXPECT_EQ(snapshot_event_position(Lsn(0x16B3800)), Lsn(0x16B37FF));
  EXPECT_LT(snapshot_event_position(Lsn(0x16B3800)), Lsn(0x16B3800));
  EXPECT_EQ(snapshot_event_position(Lsn()), Lsn());
}

TEST(CtlSnapshotProgressKey, is_the_table_alone_without_a_predicate) {
  EXPECT_EQ(snapshot_progress_key(kItems, ""), "public.items");
}

TEST(CtlSnapshotProgressKey, adds_a_stable_hash_of_the_predicate) {
  // FNV-1a 64 of "a": the same in every build, so a later run finds the record again.
  EXPECT_EQ(snapshot_progress_key(kItems, "a"), "public.items#af63dc4c8601ec8c");
  EXPECT_EQ(snapshot_progress_key(kItems, "id > 5"), snapshot_progress_key(kItems, "id > 5"));
  EXPECT_NE(snapshot_progress_key(kItems, "id > 5"), snapshot_progress_key(kItems, "id > 6"));
  EXPECT_NE(snapshot_progress_key(kItems, "id > 5"),
            snapshot_progress_key(TableName{"public", "other"}, "id > 5"));
}

TEST(CtlSnapshotTopics, progress_topic_and_transactional_ids_follow_the_prefix) {
  EXPECT_EQ(snapshot_progress_topic("syncline"), "syncline.ctl.snapshots");
  EXPECT_EQ(snapshot_transactional_id("syncline", kItems, "", false), "syncline-ctl-snapshot-public.items");
  EXPECT_NE(snapshot_transactional_id("syncline", kItems, "id > 5", false),
            snapshot_transactional_id("syncline", kItems, "", false));
  EXPECT_NE(snapshot_transactional_id("syncline", kItems, "", true),
            snapshot_transactional_id("syncline", kItems, "", false));
  EXPECT_NE(snapshot_transactional_id("other", kItems, "", false),
            snapshot_transactional_id("syncline", kItems, "", false));
}

TEST(CtlSnapshotProgressRecord, round_trips) {
  SnapshotProgressRecord record{.table = "public.items",
                                .where = "id > 5",
                                .last_key = {{"id", "42"}, {"region", "eu"}},
                                .rows = 1234,
                                .chunks = 7,
                                .done = false,
                                .started_at = "2026-11-22T10:00:00Z",
                                .updated_at = "2026-11-22T10:01:00Z",
                                .snapshot_lsn = Lsn(0x16B37FF)};
  const auto decoded = decode_progress(encode_progress(record));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->table, record.table);
  EXPECT_EQ(decoded->where, record.where);
  EXPECT_EQ(decoded->last_key, record.last_key);
  EXPECT_EQ(decoded->rows, 1234U);
  EXPECT_EQ(decoded->chunks, 7U);
  EXPECT_FALSE(decoded->done);
  EXPECT_EQ(decoded->started_at, record.started_at);
  EXPECT_EQ(decoded->updated_at, record.updated_at);
  EXPECT_EQ(decoded->snapshot_lsn, Lsn(0x16B37FF));

  record.last_key = nullptr;
  record.done = true;
  const auto finished = decode_progress(encode_progress(record));
  ASSERT_TRUE(finished.has_value());
  EXPECT_TRUE(finished->last_key.is_null());
  EXPECT_TRUE(finished->done);
}

TEST(CtlSnapshotProgressRecord, rejects_what_it_did_not_write) {
  EXPECT_FALSE(decode_progress("").has_value());
  EXPECT_FALSE(decode_progress("not json").has_value());
  EXPECT_FALSE(decode_progress("[1, 2]").has_value());
  EXPECT_FALSE(decode_progress(R"({"done": false})").has_value());  // no rows
  EXPECT_FALSE(decode_progress(R"({"rows": 1, "done": false, "last_key": [1]})").has_value());
  EXPECT_FALSE(
      decode_progress(R"({"rows": 1, "done": false, "last_key": {"id": 5}})").has_value());  // not text
  EXPECT_TRUE(decode_progress(R"({"rows": 1, "done": false, "last_key": {"id": "5"}})").has_value());
}

TEST(CtlSnapshotChunkSql, first_chunk_has_no_key_bound_and_a_parameterised_limit) {
  EXPECT_EQ(keyset_chunk_sql({kItems.schema, kItems.table}, {"id", "name"}, {"id"}, {"bigint"}, "", false),
            R"(SELECT "id", "name" FROM "public"."items" ORDER BY "id" LIMIT $1::bigint)");
}

TEST(CtlSnapshotChunkSql, next_chunks_start_after_the_last_key_as_a_row_comparison) {
  EXPECT_EQ(keyset_chunk_sql({kItems.schema, kItems.table}, {"a", "b", "v"}, {"a", "b"}, {"integer", "text"}, "", true),
            R"(SELECT "a", "b", "v" FROM "public"."items" WHERE ("a", "b") > ($1::integer, $2::text) )"
            R"(ORDER BY "a", "b" LIMIT $3::bigint)");
}

TEST(CtlSnapshotChunkSql, the_predicate_is_parenthesised_so_or_cannot_escape_the_key_bound) {
  EXPECT_EQ(keyset_chunk_sql({kItems.schema, kItems.table}, {"id"}, {"id"}, {"bigint"}, "id < 10 OR id > 20", true),
            R"(SELECT "id" FROM "public"."items" WHERE ("id") > ($1::bigint) AND (id < 10 OR id > 20) )"
            R"(ORDER BY "id" LIMIT $2::bigint)");
  EXPECT_EQ(keyset_chunk_sql({kItems.schema, kItems.table}, {"id"}, {"id"}, {"bigint"}, "id < 10", false),
            R"(SELECT "id" FROM "public"."items" WHERE (id < 10) ORDER BY "id" LIMIT $1::bigint)");
}

}  // namespace
}  // namespace syncline::ctl
