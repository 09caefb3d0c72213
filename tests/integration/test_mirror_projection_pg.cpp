// Integration tests of the mirror projection against the real read PostgreSQL: planned statements
// run in one transaction per batch, as the projector runs them, and the mirror tables are read back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <exception>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/pg.hpp"
#include "consumers/pg/mirror_projection.hpp"
#include "consumers/pg/offset_store.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::pg_projector {
namespace {

using json = nlohmann::json;
using test::stack_env;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A Session on its own connection to the read database.
class ReadPgSession : public Session {
 public:
  explicit ReadPgSession(const std::string& dsn) : connection_(dsn) {}
  pg::PgConnection& connection() override { return connection_; }
  const std::vector<Oid>& parameter_types(const std::string& /*sql*/) override {
    throw std::logic_error("the mirror projection casts its parameters itself");
  }

 private:
  pg::PgConnection connection_;
};

class RecordingSink : public PlanSink {
 public:
  std::vector<Statement> statements;
  std::map<std::size_t, std::string> rejected;
  std::vector<std::size_t> skipped;

  void add(Statement statement) override { statements.push_back(std::move(statement)); }
  void reject(std::size_t event_index, std::string reason) override {
    rejected[event_index] = std::move(reason);
  }
  void skip(std::size_t event_index) override { skipped.push_back(event_index); }
};

// Row changes as the producer publishes them; owns what the Events point into.
class Batch {
 public:
  // `position` is "commit_lsn:seq".
  Batch& change(const std::string& table, char op, std::optional<std::string> key, json after,
                const std::string& position, json before = nullptr, json unchanged_toast = json::array()) {
    const auto colon = position.find(':');
    json source = {{"db", "write"},
                   {"schema", "public"},
                   {"table", table},
                   {"commit_lsn", position.substr(0, colon)},
                   {"commit_ts", commit_ts_},
                   {"seq", std::stoull(position.substr(colon + 1))},
                   {"snapshot", op == 'r'},
                   {"unchanged_toast", std::move(unchanged_toast)}};
    if (epoch_ != 0) source["epoch"] = epoch_;
    values_.push_back(json{
        {"id", position},
        {"type", "public." + table + "." + std::string(1, op)},
        {"op", std::string(1, op)},
        {"before", std::move(before)},
        {"after", std::move(after)},
        {"source", std::move(source)},
    });
    keys_.push_back(std::move(key));
    topics_.push_back("syncline.public." + table);
    Event event;
    event.index = events_.size();
    event.topic = topics_.back();
    event.partition = partition_;
    if (keys_.back()) event.key = std::string_view(*keys_.back());
    event.value = &values_.back();
    events_.push_back(event);
    return *this;
  }
  Batch& truncate(const std::string& table, const std::string& position) {
    return change(table, 't', "{}", nullptr, position);
  }
  // What the following changes carry: the Kafka partition they were read from, the source epoch
  // and the write database's commit time.
  Batch& partition(std::int32_t partition) {
    partition_ = partition;
    return *this;
  }
  Batch& epoch(int epoch) {
    epoch_ = epoch;
    return *this;
  }
  Batch& committed_at(std::string commit_ts) {
    commit_ts_ = std::move(commit_ts);
    return *this;
  }

  std::vector<const Event*> events() const {
    std::vector<const Event*> out;
    for (const auto& event : events_) out.push_back(&event);
    return out;
  }

 private:
  std::deque<json> values_;
  std::deque<std::string> topics_;
  std::deque<std::optional<std::string>> keys_;
  std::deque<Event> events_;
  std::int32_t partition_ = 0;
  int epoch_ = 0;
  std::string commit_ts_ = "2026-01-01T00:00:00Z";
};

std::string id_key(int id) { return R"({"id":)" + std::to_string(id) + "}"; }

MirrorConfig mirror_config(const std::string& schema) {
  MirrorConfig config;
  config.schema = schema;
  config.tables = {TableName{"public", "users"}, TableName{"public", "log"}, TableName{"public", "accounts"},
                   TableName{"public", "v"}};
  return config;
}

// Plans `batch` and runs the statements in one transaction, as the projector does.
RecordingSink apply(MirrorProjection& projection, ReadPgSession& session, const Batch& batch,
                    const std::unordered_set<std::size_t>& isolated = {}) {
  RecordingSink sink;
  const auto events = batch.events();
  projection.plan(events, isolated, session, sink);
  for (const auto& statement : sink.statements) {
    EXPECT_FALSE(statement.events.empty());
    for (const auto index : statement.events) {
      EXPECT_FALSE(sink.rejected.contains(index)) << "a statement covers rejected event " << index;
    }
  }
  pg::Transaction transaction(session.connection());
  for (const auto& statement : sink.statements) transaction.exec(*statement.sql, statement.params);
  transaction.commit();
  return sink;
}

class MirrorProjectionPg : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_read_pg());
    schema_ = test::unique_name("mirror");
    session_ = std::make_unique<ReadPgSession>(stack_env().read_pg_dsn);
    projection_ = std::make_unique<MirrorProjection>(mirror_config(schema_), "syncline");
    projection_->setup(*session_);
  }
  void TearDown() override {
    if (!session_) return;
    session_->connection().exec("DROP SCHEMA IF EXISTS " + mirror_sql::quote_identifier(schema_) +
                                " CASCADE");
    session_->connection().exec("DELETE FROM syncline.mirror_tombstones WHERE mirror_schema = $1", {schema_});
    if (!session_->connection().exec("SELECT to_regclass('syncline.mirror_truncates')").is_null(0, 0)) {
      session_->connection().exec("DELETE FROM syncline.mirror_truncates WHERE mirror_schema = $1", {schema_});
    }
  }

  RecordingSink apply(const Batch& batch, const std::unordered_set<std::size_t>& isolated = {}) {
    return pg_projector::apply(*projection_, *session_, batch, isolated);
  }
  pg::Result query(const std::string& sql) { return session_->connection().exec(sql); }
  std::string table(const std::string& name) const {
    return mirror_sql::quote_identifier(schema_) + "." + mirror_sql::quote_identifier(name);
  }
  // "id=name;..." ordered by id.
  std::string users() {
    return std::string(
        query("SELECT coalesce(string_agg(id || '=' || coalesce(name, '-'), ';' ORDER BY id), '') FROM " +
              table("users"))
            .value(0, 0));
  }
  // The keyless log table's lines, in position order.
  std::string log_lines() {
    return std::string(
        query("SELECT coalesce(string_agg(line, ',' ORDER BY _syncline_lsn, _syncline_seq), '') FROM " +
              table("log"))
            .value(0, 0));
  }
  std::string tombstones() {
    return std::string(query("SELECT coalesce(string_agg(key || '@' || commit_lsn::text || ':' || seq, ';' ORDER BY "
                             "key), '') FROM syncline.mirror_tombstones WHERE mirror_schema = '" +
                             schema_ + "'")
                           .value(0, 0));
  }
  std::string column_type(const std::string& table_name, const std::string& column) {
    return std::string(
        session_->connection()
            .exec("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                  "WHERE a.attrelid = ($1 || '.' || $2)::regclass AND a.attname = $3",
                  {mirror_sql::quote_identifier(schema_), mirror_sql::quote_identifier(table_name), column})
            .value(0, 0));
  }

  std::string schema_;
  std::unique_ptr<ReadPgSession> session_;
  std::unique_ptr<MirrorProjection> projection_;
};

TEST_F(MirrorProjectionPg, InsertUpdateDeleteAndTruncateReachTheTable) {
  Batch inserts;
  inserts.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:1")
      .change("users", 'c', id_key(2), {{"id", 2}, {"name", "bob"}}, "0/100:2")
      .change("users", 'c', id_key(3), {{"id", 3}, {"name", "cy"}}, "0/100:3");
  const auto sink = apply(inserts);
  EXPECT_EQ(sink.statements.size(), 1u);  // three rows, one round trip
  EXPECT_EQ(users(), "1=ann;2=bob;3=cy");
  EXPECT_EQ(column_type("users", "id"), "bigint");
  EXPECT_EQ(query("SELECT count(*) FROM pg_index WHERE indrelid = '" + table("users") +
                  "'::regclass AND indisprimary")
                .value(0, 0),
            "1");

  Batch changes;
  changes.change("users", 'u', id_key(1), {{"id", 1}, {"name", "ann2"}}, "0/200:1")
      .change("users", 'd', id_key(2), nullptr, "0/200:2", {{"id", 2}});
  apply(changes);
  EXPECT_EQ(users(), "1=ann2;3=cy");

  Batch truncate;
  truncate.truncate("users", "0/300:1")
      .change("users", 'c', id_key(4), {{"id", 4}, {"name", "di"}}, "0/400:1");
  apply(truncate);
  EXPECT_EQ(users(), "4=di");
  EXPECT_EQ(query("SELECT count(*) FROM syncline.mirror_tombstones WHERE mirror_schema = '" + schema_ + "'")
                .value(0, 0),
            "0");
}

TEST_F(MirrorProjectionPg, ANewColumnIsAddedWhenAnEventBringsIt) {
  Batch first;
  first.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:1");
  apply(first);
  Batch second;
  second
      .change("users", 'u', id_key(1), {{"id", 1}, {"name", "ann"}, {"email", "a@x.org"}, {"age", 41}},
              "0/200:1")
      .change("users", 'c', id_key(2), {{"id", 2}, {"name", "bob"}}, "0/200:2");
  apply(second);
  EXPECT_EQ(column_type("users", "email"), "text");
  EXPECT_EQ(column_type("users", "age"), "bigint");
  const auto rows = query("SELECT email, age FROM " + table("users") + " ORDER BY id");
  ASSERT_EQ(rows.rows(), 2);
  EXPECT_EQ(rows.get(0, 0), "a@x.org");
  EXPECT_EQ(rows.get(0, 1), "41");
  EXPECT_EQ(rows.get(1, 0), std::nullopt);
}

TEST_F(MirrorProjectionPg, EveryValueKindRoundTrips) {
  const json after{
      {"id", 1},
      {"count", -42},
      {"ratio", 1.5},
      {"price", "12.50"},
      {"active", true},
      {"doc", {{"a", json::array({1, "x"})}, {"b", nullptr}}},
      {"tags", json::array({"a", "b,c", nullptr})},
      {"at", "2026-11-22T10:00:00.125Z"},
      {"nothing", nullptr},
      {"name", "it's \"quoted\" \\ {x,y} NULL é"},
  };
  Batch batch;
  batch.change("users", 'c', id_key(1), after, "0/100:1")
      .change("users", 'c', id_key(2), {{"id", 2}, {"count", 7}, {"doc", "just a string"}, {"name", ""}},
              "0/100:2");
  const auto sink = apply(batch);
  EXPECT_THAT(sink.rejected, IsEmpty());

  EXPECT_EQ(column_type("users", "count"), "bigint");
  EXPECT_EQ(column_type("users", "ratio"), "double precision");
  EXPECT_EQ(column_type("users", "price"), "text");
  EXPECT_EQ(column_type("users", "active"), "boolean");
  EXPECT_EQ(column_type("users", "doc"), "jsonb");
  EXPECT_EQ(column_type("users", "tags"), "jsonb");
  EXPECT_EQ(column_type("users", "at"), "text");
  EXPECT_EQ(column_type("users", "nothing"), "text");
  EXPECT_EQ(column_type("users", "_syncline_lsn"), "pg_lsn");

  const auto row = query(
      "SELECT count + 1, ratio * 2, price::numeric + 1, active, doc->'a'->>1, doc, tags->>1, "
      "jsonb_array_length(tags), at::timestamptz = '2026-11-22 10:00:00.125+00', "
      "nothing IS NULL, name, _syncline_lsn::text, _syncline_seq FROM " +
      table("users") + " WHERE id = 1");
  ASSERT_EQ(row.rows(), 1);
  EXPECT_EQ(row.get(0, 0), "-41");
  EXPECT_EQ(row.get(0, 1), "3");
  EXPECT_EQ(row.get(0, 2), "13.50");
  EXPECT_EQ(row.get(0, 3), "t");
  EXPECT_EQ(row.get(0, 4), "x");
  EXPECT_EQ(row.get(0, 5), R"({"a": [1, "x"], "b": null})");
  EXPECT_EQ(row.get(0, 6), "b,c");
  EXPECT_EQ(row.get(0, 7), "3");
  EXPECT_EQ(row.get(0, 8), "t");
  EXPECT_EQ(row.get(0, 9), "t");
  EXPECT_EQ(row.get(0, 10), "it's \"quoted\" \\ {x,y} NULL é");
  EXPECT_EQ(row.get(0, 11), "0/100");
  EXPECT_EQ(row.get(0, 12), "1");

  const auto second =
      query("SELECT doc #>> '{}', name, ratio IS NULL FROM " + table("users") + " WHERE id = 2");
  EXPECT_EQ(second.get(0, 0), "just a string");  // a JSON string in a jsonb column stays a string
  EXPECT_EQ(second.get(0, 1), "");               // empty is not NULL
  EXPECT_EQ(second.get(0, 2), "t");
}

TEST_F(MirrorProjectionPg, AnOlderChangeReplayedAfterANewerOneDoesNotOverwriteIt) {
  Batch newer;
  newer.change("users", 'c', id_key(1), {{"id", 1}, {"name", "new"}}, "0/200:5");
  apply(newer);
  Batch older;
  older.change("users", 'u', id_key(1), {{"id", 1}, {"name", "older lsn"}}, "0/100:9")
      .change("users", 'c', id_key(2), {{"id", 2}, {"name", "two"}}, "0/100:10");
  apply(older);
  Batch same_lsn_lower_seq;
  same_lsn_lower_seq.change("users", 'u', id_key(1), {{"id", 1}, {"name", "lower seq"}}, "0/200:4");
  apply(same_lsn_lower_seq);
  apply(newer);  // an exact replay changes nothing either
  EXPECT_EQ(users(), "1=new;2=two");
  EXPECT_EQ(
      query("SELECT _syncline_lsn::text || ':' || _syncline_seq FROM " + table("users") + " WHERE id = 1")
          .value(0, 0),
      "0/200:5");
}

TEST_F(MirrorProjectionPg, AnOlderInsertAfterANewerDeleteDoesNotResurrectTheRow) {
  Batch insert;
  insert.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:1");
  apply(insert);
  Batch remove;
  remove.change("users", 'd', id_key(1), nullptr, "0/300:1", {{"id", 1}});
  apply(remove);
  EXPECT_EQ(users(), "");

  // A snapshot taken before the delete, replayed after it.
  Batch stale;
  stale.change("users", 'r', id_key(1), {{"id", 1}, {"name", "stale"}}, "0/200:1")
      .change("users", 'u', id_key(1), {{"id", 1}, {"name", "stale too"}}, "0/300:0");
  apply(stale);
  EXPECT_EQ(users(), "");
  EXPECT_EQ(query("SELECT commit_lsn::text || ':' || seq || ' ' || key FROM syncline.mirror_tombstones "
                  "WHERE mirror_schema = '" +
                  schema_ + "' AND table_name = 'users'")
                .value(0, 0),
            R"(0/300:1 {"id":1})");

  // An older delete does not move the tombstone back.
  Batch older_delete;
  older_delete.change("users", 'd', id_key(1), nullptr, "0/250:1", {{"id", 1}});
  apply(older_delete);
  EXPECT_EQ(
      query("SELECT commit_lsn::text FROM syncline.mirror_tombstones WHERE mirror_schema = '" + schema_ + "'")
          .value(0, 0),
      "0/300");

  // A newer insert is a new life of the row.
  Batch reborn;
  reborn.change("users", 'c', id_key(1), {{"id", 1}, {"name", "reborn"}}, "0/400:1");
  apply(reborn);
  EXPECT_EQ(users(), "1=reborn");
  // ...and a delete older than it leaves it alone.
  apply(older_delete);
  EXPECT_EQ(users(), "1=reborn");
}

TEST_F(MirrorProjectionPg, ADeleteBeforeTheTableExistsStillBlocksAnOlderInsert) {
  Batch remove;
  remove.change("users", 'd', id_key(9), nullptr, "0/500:1", {{"id", 9}});
  apply(remove);
  Batch stale;
  stale.change("users", 'r', id_key(9), {{"id", 9}, {"name", "stale"}}, "0/400:1");
  apply(stale);
  EXPECT_EQ(users(), "");
}

TEST_F(MirrorProjectionPg, AnUnchangedToastColumnKeepsItsValue) {
  const std::string bio(5000, 'b');
  Batch insert;
  insert.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}, {"bio", bio}}, "0/100:1");
  apply(insert);
  Batch update;
  update.change("users", 'u', id_key(1), {{"id", 1}, {"name", "ann2"}}, "0/200:1", nullptr,
                json::array({"bio"}));
  apply(update);
  const auto row = query("SELECT name, length(bio) FROM " + table("users"));
  EXPECT_EQ(row.get(0, 0), "ann2");
  EXPECT_EQ(row.get(0, 1), "5000");
}

TEST_F(MirrorProjectionPg, AKeylessTableIsAppendOnlyAndAReplayAddsNoDuplicates) {
  Batch batch;
  batch.change("log", 'c', std::nullopt, {{"line", "one"}, {"level", 1}}, "0/100:1")
      .change("log", 'c', std::nullopt, {{"line", "one"}, {"level", 1}},
              "0/100:2")  // same row, another change
      .change("log", 'u', std::nullopt, {{"line", "uno"}, {"level", 1}}, "0/200:1")
      .change("log", 'd', std::nullopt, nullptr, "0/200:2", {{"line", "one"}, {"level", 1}});
  const auto sink = apply(batch);
  EXPECT_THAT(sink.skipped, ::testing::ElementsAre(2, 3));
  apply(batch);  // replayed
  EXPECT_EQ(query("SELECT count(*), count(DISTINCT _syncline_seq) FROM " + table("log")).value(0, 0), "2");
  EXPECT_EQ(query("SELECT count(*) FROM pg_index WHERE indrelid = '" + table("log") +
                  "'::regclass AND indisprimary")
                .value(0, 0),
            "0");
  Batch more;
  more.change("log", 'c', std::nullopt, {{"line", "two"}, {"level", 2}}, "0/300:1");
  apply(more);
  EXPECT_EQ(query("SELECT string_agg(line, ',' ORDER BY _syncline_lsn, _syncline_seq) FROM " + table("log"))
                .value(0, 0),
            "one,one,two");
}

// Issue 14, point 2: a truncate comes as one copy per partition; rows committed after it that were
// consumed from another partition before this partition's copy must survive it.
TEST_F(MirrorProjectionPg, ATruncateCopyKeepsTheRowsCommittedAfterItWhateverThePartitionOrder) {
  // Partition 1 is consumed first: a row before the truncate, its copy, a row after it.
  Batch one;
  one.partition(1)
      .change("log", 'c', std::nullopt, {{"line", "before"}, {"level", 1}}, "0/100:1")
      .truncate("log", "0/200:1")
      .change("log", 'c', std::nullopt, {{"line", "after-p1"}, {"level", 1}}, "0/200:2");
  apply(one);
  // Then partition 0: its copy of the same truncate and a later row.
  Batch zero;
  zero.partition(0)
      .truncate("log", "0/200:1")
      .change("log", 'c', std::nullopt, {{"line", "after-p0"}, {"level", 1}}, "0/300:1");
  apply(zero);
  EXPECT_EQ(log_lines(), "after-p1,after-p0");
}

TEST_F(MirrorProjectionPg, ARowCommittedBeforeATruncateButConsumedAfterItDoesNotComeBack) {
  Batch zero;
  zero.partition(0)
      .truncate("users", "0/200:1")
      .change("users", 'c', id_key(2), {{"id", 2}, {"name", "after"}}, "0/200:2");
  apply(zero);
  Batch one;
  one.partition(1)
      .change("users", 'c', id_key(1), {{"id", 1}, {"name", "before"}}, "0/100:1")
      .truncate("users", "0/200:1")
      .change("users", 'c', id_key(3), {{"id", 3}, {"name", "later"}}, "0/300:1");
  apply(one);
  EXPECT_EQ(users(), "2=after;3=later");
  // A snapshot row older than the truncate (a resync snapshot published after it) stays out, also
  // for a projector started anew: the floor is kept in the read database.
  projection_ = std::make_unique<MirrorProjection>(mirror_config(schema_), "syncline");
  projection_->setup(*session_);
  Batch stale;
  stale.partition(1).change("users", 'r', id_key(1), {{"id", 1}, {"name", "snapshot"}}, "0/150:1");
  apply(stale);
  EXPECT_EQ(users(), "2=after;3=later");
}

TEST_F(MirrorProjectionPg, ATruncateKeepsTheTombstonesOfDeletesAfterIt) {
  Batch rows;
  rows.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:1");
  apply(rows);
  // A delete after the truncate, read from partition 1 before partition 0's copy.
  Batch one;
  one.partition(1).truncate("users", "0/200:1").change("users", 'd', id_key(1), nullptr, "0/250:1", {{"id", 1}});
  apply(one);
  Batch zero;
  zero.partition(0).truncate("users", "0/200:1");
  apply(zero);
  EXPECT_EQ(tombstones(), R"({"id":1}@0/250:1)");
  // A snapshot row read between the truncate and the delete stays deleted.
  Batch stale;
  stale.partition(1).change("users", 'r', id_key(1), {{"id", 1}, {"name", "snapshot"}}, "0/240:1");
  apply(stale);
  EXPECT_EQ(users(), "");
}

TEST_F(MirrorProjectionPg, ATruncateTouchesOnlyItsOwnTable) {
  Batch rows;
  rows.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:1")
      .change("accounts", 'c', id_key(1), {{"id", 1}, {"name", "acc"}}, "0/100:2")
      .change("accounts", 'd', id_key(2), nullptr, "0/100:3", {{"id", 2}});
  apply(rows);
  Batch truncate;
  truncate.truncate("users", "0/200:1");
  apply(truncate);
  EXPECT_EQ(users(), "");
  EXPECT_EQ(query("SELECT count(*) FROM " + table("accounts")).value(0, 0), "1");
  EXPECT_EQ(tombstones(), R"({"id":2}@0/100:3)");
}

// A truncate the mirror sees before the table exists still keeps older rows out.
TEST_F(MirrorProjectionPg, ATruncateBeforeTheTableExistsStillKeepsOlderRowsOut) {
  Batch truncate;
  truncate.truncate("log", "0/200:1");
  apply(truncate);
  Batch stale;
  stale.partition(2)
      .change("log", 'c', std::nullopt, {{"line", "before"}, {"level", 1}}, "0/100:1")
      .change("log", 'c', std::nullopt, {{"line", "after"}, {"level", 1}}, "0/200:2");
  apply(stale);
  EXPECT_EQ(log_lines(), "after");
}

// Source epochs (syncline-ctl resync source --new-source): a new epoch's changes outrank the old
// epoch's, whatever their commit LSNs.
TEST_F(MirrorProjectionPg, ANewSourceEpochOutranksHigherLsnsOfTheOldOne) {
  Batch old_source;
  old_source.change("users", 'c', id_key(1), {{"id", 1}, {"name", "old"}}, "5/0:1")
      .change("users", 'd', id_key(2), nullptr, "5/0:2", {{"id", 2}});
  apply(old_source);
  Batch new_source;
  new_source.epoch(1)
      .truncate("users", "0/100:0")
      .change("users", 'r', id_key(1), {{"id", 1}, {"name", "new"}}, "0/100:1")
      .change("users", 'r', id_key(2), {{"id", 2}, {"name", "back"}}, "0/100:2");
  apply(new_source);
  EXPECT_EQ(users(), "1=new;2=back");
  Batch late_old;
  late_old.change("users", 'u', id_key(1), {{"id", 1}, {"name", "late old"}}, "6/0:1");
  apply(late_old);
  EXPECT_EQ(users(), "1=new;2=back");
}

// Issue 14, point 7: a tombstone is forgotten only when its partition's applied source time is
// past the delete's commit time by the retention, never by the wall clock.
TEST_F(MirrorProjectionPg, TombstonesArePrunedBySourceTimeNotByWallClock) {
  pg_projector::OffsetStore::ensure_schema(session_->connection());
  const std::string group = test::unique_name("prune");
  MirrorConfig config = mirror_config(schema_);
  config.tombstone_retention = std::chrono::milliseconds(1);
  projection_ = std::make_unique<MirrorProjection>(config, "syncline", group);
  projection_->setup(*session_);
  Batch remove;
  remove.partition(3).committed_at("2026-01-01T00:00:00Z").change("users", 'd', id_key(1), nullptr, "0/300:1",
                                                                   {{"id", 1}});
  apply(remove);
  // Long after, by the wall clock, with the partition never applied further: kept.
  projection_->setup(*session_);  // prunes
  EXPECT_EQ(tombstones(), R"({"id":1}@0/300:1)");
  Batch stale;
  stale.partition(3).change("users", 'r', id_key(1), {{"id", 1}, {"name", "snapshot"}}, "0/200:1");
  apply(stale);
  EXPECT_EQ(users(), "");
  // Another group's progress on that partition does not count.
  session_->connection().exec(
      "INSERT INTO syncline.offsets (consumer_group, topic, partition, next_offset, last_commit_ts) "
      "VALUES ($1, 'syncline.public.users', 3, 10, '2026-02-01T00:00:00Z')",
      {group + "-other"});
  projection_->setup(*session_);
  EXPECT_EQ(tombstones(), R"({"id":1}@0/300:1)");
  // This group's partition applied a change committed after the retention: forgotten.
  session_->connection().exec(
      "INSERT INTO syncline.offsets (consumer_group, topic, partition, next_offset, last_commit_ts) "
      "VALUES ($1, 'syncline.public.users', 3, 10, '2026-01-01T00:00:01Z')",
      {group});
  projection_->setup(*session_);
  EXPECT_EQ(tombstones(), "");
  session_->connection().exec("DELETE FROM syncline.offsets WHERE consumer_group IN ($1, $1 || '-other')", {group});
}

TEST_F(MirrorProjectionPg, TheSameKeyChangedSeveralTimesInOneBatchEndsInItsLastState) {
  Batch batch;
  batch.change("users", 'c', id_key(1), {{"id", 1}, {"name", "a"}}, "0/100:1")
      .change("users", 'c', id_key(2), {{"id", 2}, {"name", "b"}}, "0/100:2")
      .change("users", 'u', id_key(1), {{"id", 1}, {"name", "a2"}}, "0/100:3")
      .change("users", 'u', id_key(1), {{"id", 1}, {"name", "a3"}}, "0/100:4")
      .change("users", 'd', id_key(2), nullptr, "0/100:5", {{"id", 2}})
      .change("users", 'd', id_key(1), nullptr, "0/100:6", {{"id", 1}})
      .change("users", 'c', id_key(1), {{"id", 1}, {"name", "a4"}}, "0/100:7")
      .change("users", 'c', id_key(3), {{"id", 3}, {"name", "c"}}, "0/100:8")
      .change("users", 'u', id_key(3), {{"id", 3}, {"name", "c2"}}, "0/100:9");
  const auto sink = apply(batch);
  EXPECT_GT(sink.statements.size(), 1u);
  EXPECT_LT(sink.statements.size(), 9u);
  EXPECT_EQ(users(), "1=a4;3=c2");
}

TEST_F(MirrorProjectionPg, APreCreatedTableWithRealTypesIsUsedAndValuesAreCast) {
  query("CREATE TABLE " + table("accounts") +
        " (id integer PRIMARY KEY, balance numeric(12,2), opened timestamptz, tags text[], grid int[], "
        "meta jsonb, photo bytea, nick varchar(10), active boolean, day date)");
  query("INSERT INTO " + table("accounts") +
        " (id, nick) VALUES (2, 'loaded')");  // a row the mirror never wrote
  Batch batch;
  batch
      .change("accounts", 'c', id_key(1),
              {{"id", 1},
               {"balance", "1234.5"},
               {"opened", "2026-11-22T10:00:00.125Z"},
               {"tags", json::array({"a", "b,c", "\"q\""})},
               {"grid", json::parse("[[1,2],[3,4]]")},
               {"meta", {{"k", "v"}}},
               {"photo", "AAEC/w=="},
               {"nick", "bob"},
               {"active", false},
               {"day", "2026-11-22"}},
              "0/100:1")
      .change("accounts", 'u', id_key(2), {{"id", 2}, {"nick", "updated"}}, "0/100:2");
  const auto sink = apply(batch);
  EXPECT_THAT(sink.rejected, IsEmpty());
  EXPECT_EQ(column_type("accounts", "balance"), "numeric(12,2)");
  EXPECT_EQ(column_type("accounts", "opened"), "timestamp with time zone");
  EXPECT_EQ(column_type("accounts", "id"), "integer");
  const auto row = query(
      "SELECT balance, opened = '2026-11-22 10:00:00.125+00', tags[2], tags[3], grid[2][1], "
      "meta->>'k', encode(photo, 'hex'), nick, active, day + 1 FROM " +
      table("accounts") + " WHERE id = 1");
  ASSERT_EQ(row.rows(), 1);
  EXPECT_EQ(row.get(0, 0), "1234.50");
  EXPECT_EQ(row.get(0, 1), "t");
  EXPECT_EQ(row.get(0, 2), "b,c");
  EXPECT_EQ(row.get(0, 3), "\"q\"");
  EXPECT_EQ(row.get(0, 4), "3");
  EXPECT_EQ(row.get(0, 5), "v");
  EXPECT_EQ(row.get(0, 6), "000102ff");
  EXPECT_EQ(row.get(0, 7), "bob");
  EXPECT_EQ(row.get(0, 8), "f");
  EXPECT_EQ(row.get(0, 9), "2026-11-23");
  EXPECT_EQ(query("SELECT nick FROM " + table("accounts") + " WHERE id = 2").value(0, 0), "updated");
}

TEST_F(MirrorProjectionPg, AStatementThatFailsIsNarrowedDownByIsolatingItsEvents) {
  query("CREATE TABLE " + table("accounts") + " (id bigint PRIMARY KEY, qty integer)");
  Batch batch;
  batch.change("accounts", 'c', id_key(1), {{"id", 1}, {"qty", 1}}, "0/100:1")
      .change("accounts", 'c', id_key(2), {{"id", 2}, {"qty", "many"}}, "0/100:2")
      .change("accounts", 'c', id_key(3), {{"id", 3}, {"qty", 3}}, "0/100:3");
  try {
    apply(batch);
    ADD_FAILURE() << "expected 'many' not to cast to integer";
  } catch (const pg::PgError& error) {
    EXPECT_EQ(error.error_class(), pg::ErrorClass::permanent);
  }
  RecordingSink sink;
  const auto events = batch.events();
  projection_->plan(events, {0, 1, 2}, *session_, sink);
  ASSERT_EQ(sink.statements.size(), 3u);
  for (const auto& statement : sink.statements) {
    ASSERT_EQ(statement.events.size(), 1u);
    if (statement.events[0] == 1) {
      EXPECT_THROW(session_->connection().exec(*statement.sql, statement.params), pg::PgError);
    } else {
      session_->connection().exec(*statement.sql, statement.params);
    }
  }
  EXPECT_EQ(
      query("SELECT string_agg(id || '=' || qty, ';' ORDER BY id) FROM " + table("accounts")).value(0, 0),
      "1=1;3=3");
}

TEST_F(MirrorProjectionPg, ANameTakenByAViewRejectsTheTablesEvents) {
  query("CREATE VIEW " + table("v") + " AS SELECT 1::bigint AS id");
  Batch batch;
  batch.change("v", 'c', id_key(1), {{"id", 1}}, "0/100:1")
      .change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:2");
  const auto sink = apply(batch);
  ASSERT_EQ(sink.rejected.size(), 1u);
  EXPECT_THAT(sink.rejected.at(0), HasSubstr("not a table"));
  EXPECT_EQ(users(), "1=ann");
}

TEST_F(MirrorProjectionPg, ResetForgetsATableThatWasDroppedAndRecreatesIt) {
  Batch first;
  first.change("users", 'c', id_key(1), {{"id", 1}, {"name", "ann"}}, "0/100:1");
  apply(first);
  query("DROP TABLE " + table("users"));
  Batch second;
  second.change("users", 'c', id_key(2), {{"id", 2}, {"name", "bob"}}, "0/200:1");
  EXPECT_THROW(apply(second), pg::PgError);  // the cache still believes in the old table
  projection_->reset();
  apply(second);
  EXPECT_EQ(users(), "2=bob");
}

TEST_F(MirrorProjectionPg, ConcurrentProjectorsSetUpAndCreateTheSameTableWithoutFailing) {
  constexpr int kProjectors = 4;
  const std::string schema = test::unique_name("mirror");
  std::latch start(kProjectors);
  std::vector<std::exception_ptr> failures(kProjectors);
  std::vector<std::thread> threads;
  threads.reserve(kProjectors);
  for (int i = 0; i < kProjectors; ++i) {
    threads.emplace_back([&, i] {
      try {
        ReadPgSession session(stack_env().read_pg_dsn);
        MirrorProjection projection(mirror_config(schema), "syncline");
        Batch batch;
        batch.change("users", 'c', id_key(i), {{"id", i}, {"name", "p" + std::to_string(i)}},
                     "0/100:" + std::to_string(i));
        start.arrive_and_wait();
        projection.setup(session);
        pg_projector::apply(projection, session, batch);
      } catch (...) {
        failures[static_cast<std::size_t>(i)] = std::current_exception();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& failure : failures) {
    if (!failure) continue;
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& error) {
      ADD_FAILURE() << "a projector failed: " << error.what();
    }
  }
  pg::PgConnection connection(stack_env().read_pg_dsn);
  EXPECT_EQ(
      connection.exec("SELECT count(*) FROM " + mirror_sql::quote_identifier(schema) + ".users").value(0, 0),
      std::to_string(kProjectors));
  connection.exec("DROP SCHEMA " + mirror_sql::quote_identifier(schema) + " CASCADE");
}

}  // namespace
}  // namespace syncline::pg_projector
