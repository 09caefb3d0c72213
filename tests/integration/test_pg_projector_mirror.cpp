// Mirror projection end to end: row changes of a captured write-database table, published by the
// real producer, reach a same-named table of the read database's mirror schema.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

class PgProjectorMirror : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_write_pg());
    ASSERT_TRUE(require_read_pg());
    ASSERT_TRUE(require_kafka());
  }
};

// One row of the mirror table as text (NULL as "NULL"), columns in the given order.
std::vector<std::string> row(pg::PgConnection& db, const std::string& table, const std::string& columns, int id) {
  const auto result = db.exec(fmt::format("SELECT {} FROM {} WHERE id = {}", columns, table, id));
  std::vector<std::string> values;
  if (result.rows() != 1) return values;
  for (int c = 0; c < result.columns(); ++c)
    values.push_back(result.is_null(0, c) ? "NULL" : std::string(result.value(0, c)));
  return values;
}

TEST_F(PgProjectorMirror, inserts_updates_deletes_new_columns_toast_and_truncate_reach_the_read_table) {
  const std::string table = unique_name("mirrored");
  ProducerHarness producer("pgp_mirror", fmt::format("  snapshot: never\n  capture: [public.{}]\n", table));
  auto& write = producer.write_db();
  write.exec(fmt::format(
      "CREATE TABLE public.{} (id bigint PRIMARY KEY, name text, price numeric(10,2), active boolean, "
      "tags text[], doc jsonb, created timestamptz, data bytea, note text)",
      table));
  const std::string schema = unique_name("mirror");
  PgProjectorHarness projector("pgp_mirror", producer.prefix(),
                               fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", schema, table));
  producer.start();
  ASSERT_TRUE(producer.wait_ready());
  // The row-change topic exists once the producer has created it; the projector subscribes to it.
  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  const std::string mirror = schema + "." + table;

  write.exec(fmt::format(
      "INSERT INTO public.{} VALUES (1, 'one', 12.50, true, ARRAY['a','b'], '{{\"k\": [1, 2]}}', "
      "'2026-11-22 10:00:00.123+00', '\\x0102ff', NULL), (2, 'two', 2, false, NULL, 'null', NULL, NULL, 'n2'), "
      "(3, 'three', 3, NULL, '{{}}', '[]', NULL, NULL, NULL)",
      table));
  write.exec(fmt::format("UPDATE public.{} SET name = 'uno', price = 13 WHERE id = 1", table));
  write.exec(fmt::format("DELETE FROM public.{} WHERE id = 2", table));
  ASSERT_TRUE(poll_until(
      [&] {
        try {
          return projector.read_db().exec(fmt::format("SELECT count(*) FROM {}", mirror)).value(0, 0) == "2" &&
                 row(projector.read_db(), mirror, "name", 1) == std::vector<std::string>{"uno"};
        } catch (const pg::PgError&) {
          return false;  // the table is created with the first event
        }
      },
      60s, "rows 1 and 3 in " + mirror))
      << projector.process().log_tail();
  EXPECT_EQ(row(projector.read_db(), mirror, "id, name, price, active, tags::text, doc::text, created, data, note", 1),
            (std::vector<std::string>{"1", "uno", "13.00", "t", "[\"a\", \"b\"]", "{\"k\": [1, 2]}",
                                      "2026-11-22T10:00:00.123Z", "AQL/", "NULL"}));
  EXPECT_EQ(row(projector.read_db(), mirror, "id, name, tags::text, doc::text", 3),
            (std::vector<std::string>{"3", "three", "[]", "[]"}));

  // A new column in the source appears in the mirror; an unchanged TOASTed value is kept.
  write.exec(fmt::format("ALTER TABLE public.{} ADD COLUMN extra integer", table));
  write.exec(fmt::format(
      "INSERT INTO public.{} (id, name, extra, note) VALUES (4, 'four', 44, "
      "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3000) g))",
      table));
  write.exec(fmt::format("UPDATE public.{} SET name = 'vier' WHERE id = 4", table));
  ASSERT_TRUE(poll_until([&] { return row(projector.read_db(), mirror, "name", 4) == std::vector<std::string>{"vier"}; },
                         60s, "row 4 updated"))
      << projector.process().log_tail();
  EXPECT_EQ(row(projector.read_db(), mirror, "extra, length(note)", 4), (std::vector<std::string>{"44", "96000"}));

  // A replayed old change (an older source position) does not overwrite the newer row.
  EventPublisher publisher;
  nlohmann::json stale = {{"id", "0/10:1"},
                          {"type", fmt::format("public.{}.u", table)},
                          {"op", "u"},
                          {"before", nullptr},
                          {"after", {{"id", 1}, {"name", "stale"}}},
                          {"source",
                           {{"db", "write"}, {"schema", "public"}, {"table", table}, {"lsn", "0/10"},
                            {"commit_lsn", "0/10"}, {"seq", 1}, {"txid", 1},
                            {"commit_ts", "2020-01-01T00:00:00Z"}, {"snapshot", false}}}};
  publisher.begin();
  publisher.send(producer.row_topic("public", table), std::string("{\"id\":1}"), stale.dump(),
                 fmt::format("public.{}.u", table));
  publisher.commit();
  write.exec(fmt::format("UPDATE public.{} SET name = 'drei' WHERE id = 3", table));  // a marker after it
  ASSERT_TRUE(poll_until([&] { return row(projector.read_db(), mirror, "name", 3) == std::vector<std::string>{"drei"}; },
                         60s, "row 3 updated"));
  EXPECT_EQ(row(projector.read_db(), mirror, "name", 1), std::vector<std::string>{"uno"});

  write.exec(fmt::format("TRUNCATE public.{}", table));
  ASSERT_TRUE(poll_until(
      [&] { return projector.read_db().exec(fmt::format("SELECT count(*) FROM {}", mirror)).value(0, 0) == "0"; },
      60s, "the mirror truncated"));

  EXPECT_EQ(projector.stop(), 0);
  EXPECT_EQ(producer.stop(), 0);
  projector.read_db().exec(fmt::format("DROP SCHEMA {} CASCADE", schema));
  write.exec(fmt::format("DROP TABLE public.{}", table));
}

}  // namespace
}  // namespace syncline::test
