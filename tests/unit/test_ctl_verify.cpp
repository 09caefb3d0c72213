// syncline-ctl verify, the pure part: value equality across representations, chunk digests, the
// differences per key, and the report (human and --json).
#include <gtest/gtest.h>

#include "tools/ctl/verify.hpp"

namespace syncline::ctl::verify {
namespace {

using json = nlohmann::json;

WriteRow write_row(int id, json values) {
  const json key = {{"id", id}};
  return {key.dump(), key, std::move(values)};
}

StoredRow stored(json values, std::optional<std::uint64_t> lsn = std::nullopt) {
  StoredRow row;
  row.values = std::move(values);
  if (lsn) row.position = Lsn(*lsn);
  return row;
}

TEST(CtlVerifyValues, equal_json_is_equal_whatever_the_number_type_or_key_order) {
  EXPECT_TRUE(values_equal(json(5), json(5u)));
  EXPECT_TRUE(values_equal(json(1.5), json(1.5)));
  EXPECT_TRUE(values_equal(json::parse(R"({"a":1,"b":[1,2]})"), json::parse(R"({"b":[1,2],"a":1})")));
  EXPECT_FALSE(values_equal(json(5), json(6)));
  EXPECT_FALSE(values_equal(json("x"), json(nullptr)));
}

TEST(CtlVerifyValues, a_text_column_holding_the_json_text_of_the_write_value_is_equal) {
  EXPECT_TRUE(values_equal(json(5), json("5")));
  EXPECT_TRUE(values_equal(json(true), json("true")));
  EXPECT_TRUE(values_equal(json::parse(R"({"a":1})"), json(R"({"a": 1})")));
  EXPECT_TRUE(values_equal(json("12.50"), json("12.50")));
  EXPECT_FALSE(values_equal(json(5), json("6")));
  // A numeric (a string on the write side) in a column the user typed double precision.
  EXPECT_TRUE(values_equal(json("12.50"), json(12.5)));
  EXPECT_FALSE(values_equal(json("abc"), json(12.5)));
}

TEST(CtlVerifyValues, differing_columns_counts_an_absent_column_as_null) {
  const json write = {{"id", 1}, {"name", "a"}, {"note", nullptr}};
  EXPECT_TRUE(differing_columns(write, {{"id", 1}, {"name", "a"}}).empty());
  EXPECT_EQ(differing_columns(write, {{"id", 1}, {"name", "b"}, {"extra", 3}}),
            (std::vector<std::string>{"extra", "name"}));
}

TEST(CtlVerifyDigest, equal_chunks_have_equal_digests_and_nulls_do_not_count) {
  ChunkDigest a;
  ChunkDigest b;
  a.add("1", {{"id", 1}, {"name", "x"}, {"gone", nullptr}});
  b.add("1", {{"name", "x"}, {"id", 1}});
  EXPECT_EQ(a.value(), b.value());
  ChunkDigest c;
  c.add("1", {{"id", 1}, {"name", "y"}});
  EXPECT_NE(a.value(), c.value());
  ChunkDigest absent;
  absent.add_absent("1");
  EXPECT_NE(absent.value(), ChunkDigest().value());
}

TEST(CtlVerifyChunk, an_equal_chunk_has_no_differences) {
  const std::vector<WriteRow> rows = {write_row(1, {{"id", 1}, {"v", "a"}}),
                                      write_row(2, {{"id", 2}, {"v", "b"}})};
  std::map<std::string, StoredRow> read = {{rows[0].id, stored(rows[0].values)},
                                           {rows[1].id, stored(rows[1].values)}};
  const auto result = compare_chunk(rows, read, Lsn(100));
  EXPECT_TRUE(result.digest_equal);
  EXPECT_TRUE(result.diffs.empty());
}

TEST(CtlVerifyChunk, finds_missing_and_different_keys_with_the_differing_columns) {
  const std::vector<WriteRow> rows = {write_row(1, {{"id", 1}, {"v", "a"}}),
                                      write_row(2, {{"id", 2}, {"v", "b"}}),
                                      write_row(3, {{"id", 3}, {"v", "c"}, {"n", 7}})};
  std::map<std::string, StoredRow> read = {{rows[0].id, stored(rows[0].values)},
                                           {rows[2].id, stored({{"id", 3}, {"v", "C"}, {"n", 7}})}};
  const auto result = compare_chunk(rows, read, Lsn(100));
  EXPECT_FALSE(result.digest_equal);
  ASSERT_EQ(result.diffs.size(), 2u);
  EXPECT_EQ(result.diffs[0].kind, DiffKind::missing);
  EXPECT_EQ(result.diffs[0].key, json({{"id", 2}}));
  EXPECT_EQ(result.diffs[1].kind, DiffKind::different);
  EXPECT_EQ(result.diffs[1].columns, std::vector<std::string>{"v"});
}

TEST(CtlVerifyChunk, a_read_row_newer_than_the_snapshot_is_not_a_difference) {
  const std::vector<WriteRow> rows = {write_row(1, {{"id", 1}, {"v", "old"}})};
  std::map<std::string, StoredRow> read = {{rows[0].id, stored({{"id", 1}, {"v", "new"}}, 200)}};
  const auto result = compare_chunk(rows, read, Lsn(100));
  EXPECT_TRUE(result.diffs.empty());
  EXPECT_EQ(result.newer, 1u);
  // At or below the snapshot it is a difference.
  read[rows[0].id].position = Lsn(100);
  EXPECT_EQ(compare_chunk(rows, read, Lsn(100)).diffs.size(), 1u);
}

TEST(CtlVerifyChunk, a_representation_difference_alone_differs_in_digest_but_not_in_keys) {
  const std::vector<WriteRow> rows = {write_row(1, {{"id", 1}, {"n", 5}})};
  std::map<std::string, StoredRow> read = {{rows[0].id, stored({{"id", 1}, {"n", "5"}})}};
  const auto result = compare_chunk(rows, read, std::nullopt);
  EXPECT_FALSE(result.digest_equal);
  EXPECT_TRUE(result.diffs.empty());
}

TEST(CtlVerifyKey, compare_key_classifies_each_case) {
  const json key = {{"id", 1}};
  const std::optional<json> row = json{{"id", 1}, {"v", "a"}};
  EXPECT_FALSE(compare_key("1", key, std::nullopt, std::nullopt, Lsn(1)));
  EXPECT_FALSE(compare_key("1", key, row, stored(*row), Lsn(1)));
  EXPECT_EQ(compare_key("1", key, row, std::nullopt, Lsn(1))->kind, DiffKind::missing);
  EXPECT_EQ(compare_key("1", key, std::nullopt, stored(*row), Lsn(1))->kind, DiffKind::extra);
  EXPECT_EQ(compare_key("1", key, row, stored({{"id", 1}, {"v", "b"}}), Lsn(1))->kind, DiffKind::different);
  // An extra row written after the snapshot (inserted since): not a difference.
  EXPECT_FALSE(compare_key("1", key, std::nullopt, stored(*row, 5), Lsn(1)));
}

Report sample_report() {
  Report report;
  report.snapshot_lsn = Lsn(0x16B3748);
  ProjectionReport mirror{.name = "mirror",
                          .sink = "pg",
                          .kind = "pg_mirror",
                          .target = "mirror",
                          .verifiable = true,
                          .reason = {},
                          .tables = {}};
  TableReport table;
  table.table = "public.items";
  table.target = "mirror.items";
  table.write_rows = 10;
  table.read_rows = 10;
  table.chunks = 1;
  table.chunks_different = 1;
  table.rechecked = 4;
  table.settled = 1;
  table.diffs = {{DiffKind::missing, "{\"id\":3}", {{"id", 3}}, {}},
                 {DiffKind::extra, "{\"id\":99}", {{"id", 99}}, {}},
                 {DiffKind::different, "{\"id\":5}", {{"id", 5}}, {"name"}},
                 {DiffKind::missing, "{\"id\":4}", {{"id", 4}}, {}}};
  mirror.tables.push_back(table);
  report.projections.push_back(mirror);
  report.projections.push_back({.name = "totals",
                                .sink = "pg",
                                .kind = "pg_sql",
                                .target = "totals",
                                .verifiable = false,
                                .reason = "derived data",
                                .tables = {}});
  return report;
}

TEST(CtlVerifyReport, human_report_names_each_key_by_kind_and_caps_the_list) {
  const auto text = render_human(sample_report(), Style(false), 1);
  EXPECT_NE(text.find("missing    {\"id\":3}"), std::string::npos) << text;
  EXPECT_NE(text.find("... and 1 more missing"), std::string::npos) << text;
  EXPECT_NE(text.find("extra      {\"id\":99}"), std::string::npos) << text;
  EXPECT_NE(text.find("different  {\"id\":5}  columns: name"), std::string::npos) << text;
  EXPECT_NE(text.find("4 key(s) re-checked"), std::string::npos) << text;
  EXPECT_NE(text.find("not verifiable: totals"), std::string::npos) << text;
  EXPECT_NE(text.find("4 difference(s) remain"), std::string::npos) << text;
}

TEST(CtlVerifyReport, json_report_has_complete_counts_and_capped_key_lists) {
  const auto document = render_json(sample_report(), 1);
  EXPECT_EQ(document["differences"], 4);
  EXPECT_EQ(document["ok"], false);
  EXPECT_EQ(document["snapshot_lsn"], "0/16B3748");
  const auto& table = document["projections"][0]["tables"][0];
  EXPECT_EQ(table["missing"]["count"], 2);
  EXPECT_EQ(table["missing"]["keys"].size(), 1u);
  EXPECT_EQ(table["missing"]["more"], 1);
  EXPECT_EQ(table["different"]["keys"][0]["columns"], json::array({"name"}));
  EXPECT_EQ(table["extra"]["keys"][0]["key"], json({{"id", 99}}));
  EXPECT_EQ(document["projections"][1]["verifiable"], false);
  EXPECT_EQ(document["projections"][1]["reason"], "derived data");
}

TEST(CtlVerifyReport, no_differences_says_so) {
  Report report;
  report.projections.push_back({.name = "mirror",
                                .sink = "pg",
                                .kind = "pg_mirror",
                                .target = "mirror",
                                .verifiable = true,
                                .reason = {},
                                .tables = {TableReport{}}});
  EXPECT_EQ(report.differences(), 0u);
  EXPECT_NE(render_human(report, Style(false), 5).find("no differences"), std::string::npos);
  EXPECT_EQ(render_json(report, 5)["ok"], true);
}

}  // namespace
}  // namespace syncline::ctl::verify
