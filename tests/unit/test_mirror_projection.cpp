// Unit tests of the mirror projection without a database: SQL text helpers, type inference, and
// how plan() groups, splits, isolates, rejects and skips row changes (a fake catalog stands in
// for the read database's catalog and DDL).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/pg.hpp"
#include "consumers/pg/mirror_projection.hpp"

namespace syncline::pg_projector {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// --- Fakes -----------------------------------------------------------------------------------

// plan() must reach the database only through the catalog: the connection is out of bounds.
class NoDatabaseSession : public Session {
 public:
  pg::PgConnection& connection() override { throw std::logic_error("the unit test has no database"); }
  const std::vector<Oid>& parameter_types(const std::string& /*sql*/) override {
    throw std::logic_error("the unit test has no database");
  }
};

// Tables by name; DDL is recorded and handed to `on_execute`, which may change `tables` as the
// real statement would, or throw.
class FakeCatalog : public MirrorCatalog {
 public:
  std::map<std::string, MirrorTableShape> tables;
  std::vector<std::string> executed;
  std::function<void(const std::string&)> on_execute;
  int describes = 0;

  std::optional<MirrorTableShape> describe(Session& /*session*/, const std::string& /*schema*/,
                                           const std::string& table) override {
    ++describes;
    const auto it = tables.find(table);
    if (it == tables.end()) return std::nullopt;
    return it->second;
  }
  void execute(Session& /*session*/, const std::string& sql,
               const std::vector<pg::Param>& /*params*/) override {
    executed.push_back(sql);
    if (on_execute) on_execute(sql);
  }
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

MirrorColumn column(std::string name, std::string type, ValueKind kind = ValueKind::plain) {
  return MirrorColumn{.name = std::move(name), .type = std::move(type), .kind = kind};
}

// A mirror table keyed by `id`, as the mirror would have created it.
MirrorTableShape users_shape() {
  MirrorTableShape shape;
  shape.columns = {column("id", "bigint"), column("name", "text"), column("bio", "text"),
                   column("_syncline_lsn", "pg_lsn"), column("_syncline_seq", "bigint")};
  shape.primary_key = {"id"};
  shape.unique_keys = {{"id"}};
  return shape;
}

MirrorTableShape keyless_shape() {
  MirrorTableShape shape;
  shape.columns = {column("line", "text"), column("_syncline_lsn", "pg_lsn"),
                   column("_syncline_seq", "bigint")};
  shape.unique_keys = {{"_syncline_lsn", "_syncline_seq"}};
  return shape;
}

// Builds a batch of row-change events; owns what the Events point into.
class Batch {
 public:
  Batch& change(const std::string& table, char op, std::optional<std::string> key, json after,
                json before = nullptr, std::uint64_t seq = 0, std::string commit_lsn = "0/100",
                json toast = json::array()) {
    const std::size_t index = events_.size();
    values_.push_back(json{
        {"id", "x"},
        {"op", std::string(1, op)},
        {"before", std::move(before)},
        {"after", std::move(after)},
        {"source",
         {{"schema", "public"},
          {"table", table},
          {"commit_lsn", std::move(commit_lsn)},
          {"seq", seq == 0 ? index + 1 : seq},
          {"unchanged_toast", std::move(toast)}}},
    });
    return raw(table, std::move(key), index);
  }
  // An event whose value the test wrote itself.
  Batch& value(const std::string& table, json value, std::optional<std::string> key = std::nullopt) {
    const std::size_t index = events_.size();
    values_.push_back(std::move(value));
    return raw(table, std::move(key), index);
  }

  std::vector<const Event*> events() const {
    std::vector<const Event*> out;
    for (const auto& event : events_) out.push_back(&event);
    return out;
  }

 private:
  Batch& raw(const std::string& table, std::optional<std::string> key, std::size_t index) {
    topics_.push_back("sync.public." + table);
    keys_.push_back(std::move(key));
    Event event;
    event.index = index;
    event.topic = topics_.back();
    if (keys_.back()) event.key = std::string_view(*keys_.back());
    event.type = "";
    event.value = &values_.back();
    events_.push_back(event);
    return *this;
  }

  std::deque<json> values_;
  std::deque<std::string> topics_;
  std::deque<std::optional<std::string>> keys_;
  std::deque<Event> events_;
};

class MirrorPlanTest : public ::testing::Test {
 protected:
  MirrorPlanTest() {
    config_.schema = "read";
    config_.tables = {TableName{"public", "users"}, TableName{"public", "log"}};
    auto catalog = std::make_unique<FakeCatalog>();
    catalog_ = catalog.get();
    catalog_->tables["users"] = users_shape();
    catalog_->tables["log"] = keyless_shape();
    projection_ =
        std::make_unique<MirrorProjection>(config_, "sync", "group", std::move(catalog), [this] { return now_; });
  }

  RecordingSink plan(const Batch& batch, const std::unordered_set<std::size_t>& isolated = {}) {
    RecordingSink sink;
    const auto events = batch.events();
    projection_->plan(events, isolated, session_, sink);
    return sink;
  }

  static std::vector<std::vector<std::size_t>> covered(const RecordingSink& sink) {
    std::vector<std::vector<std::size_t>> out;
    for (const auto& statement : sink.statements) out.push_back(statement.events);
    return out;
  }

  MirrorConfig config_;
  FakeCatalog* catalog_ = nullptr;
  NoDatabaseSession session_;
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1000)};
  std::unique_ptr<MirrorProjection> projection_;
};

std::size_t count_prunes(const FakeCatalog& catalog) {
  std::size_t count = 0;
  for (const auto& sql : catalog.executed) {
    if (sql.starts_with("DELETE FROM syncline.mirror_tombstones")) ++count;
  }
  return count;
}

// --- Pure helpers ----------------------------------------------------------------------------

TEST(MirrorSql, QuotesIdentifiersByDoublingQuotes) {
  EXPECT_EQ(mirror_sql::quote_identifier("users"), "\"users\"");
  EXPECT_EQ(mirror_sql::quote_identifier("Order \"Items\""), "\"Order \"\"Items\"\"\"");
  EXPECT_EQ(mirror_sql::quote_identifier(""), "\"\"");
}

TEST(MirrorSql, QuotesLiteralsWhateverStandardConformingStringsSays) {
  EXPECT_EQ(mirror_sql::quote_literal("mirror"), "'mirror'");
  EXPECT_EQ(mirror_sql::quote_literal("it's"), "'it''s'");
  EXPECT_EQ(mirror_sql::quote_literal(R"(a\b'c)"), R"(E'a\\b''c')");
}

TEST(MirrorSql, TextArrayLiteralQuotesEveryElementAndWritesNullBare) {
  const std::vector<pg::Param> elements{"plain",    std::nullopt, R"(say "hi" \o/)", "", "NULL",
                                        "a,b {c} ", "é"};
  EXPECT_EQ(mirror_sql::text_array_literal(elements),
            R"({"plain",NULL,"say \"hi\" \\o/","","NULL","a,b {c} ","é"})");
  EXPECT_EQ(mirror_sql::text_array_literal({}), "{}");
}

TEST(MirrorSql, InfersColumnTypesFromJsonValues) {
  EXPECT_EQ(mirror_sql::column_type_of(json(42)), "bigint");
  EXPECT_EQ(mirror_sql::column_type_of(json(-42)), "bigint");
  EXPECT_EQ(mirror_sql::column_type_of(json(18446744073709551615ULL)), "numeric");
  EXPECT_EQ(mirror_sql::column_type_of(json(1.5)), "double precision");
  EXPECT_EQ(mirror_sql::column_type_of(json(true)), "boolean");
  EXPECT_EQ(mirror_sql::column_type_of(json("12.50")), "text");
  EXPECT_EQ(mirror_sql::column_type_of(json(nullptr)), "text");
  EXPECT_EQ(mirror_sql::column_type_of(json::object({{"a", 1}})), "jsonb");
  EXPECT_EQ(mirror_sql::column_type_of(json::array({1, 2})), "jsonb");
}

TEST(MirrorSql, ValueKindFollowsTheBaseType) {
  EXPECT_EQ(mirror_sql::value_kind_of("jsonb", 'U', ""), ValueKind::json);
  EXPECT_EQ(mirror_sql::value_kind_of("json", 'U', ""), ValueKind::json);
  EXPECT_EQ(mirror_sql::value_kind_of("bytea", 'U', ""), ValueKind::bytea);
  EXPECT_EQ(mirror_sql::value_kind_of("_int4", 'A', "int4"), ValueKind::array);
  EXPECT_EQ(mirror_sql::value_kind_of("_jsonb", 'A', "jsonb"), ValueKind::json_array);
  EXPECT_EQ(mirror_sql::value_kind_of("numeric", 'N', ""), ValueKind::plain);
}

TEST(MirrorSql, ColumnTextWritesValuesAsTheColumnTypeReadsThem) {
  using mirror_sql::column_text;
  EXPECT_EQ(column_text(json(nullptr), ValueKind::plain), std::nullopt);
  EXPECT_EQ(column_text(json(nullptr), ValueKind::json), std::nullopt);
  EXPECT_EQ(column_text(json("2026-11-22T10:00:00Z"), ValueKind::plain), "2026-11-22T10:00:00Z");
  EXPECT_EQ(column_text(json(42), ValueKind::plain), "42");
  EXPECT_EQ(column_text(json(1.5), ValueKind::plain), "1.5");
  EXPECT_EQ(column_text(json(false), ValueKind::plain), "false");
  EXPECT_EQ(column_text(json::parse(R"({"b":[1,"x"]})"), ValueKind::plain), R"({"b":[1,"x"]})");
  // A JSON string in a jsonb column stays a JSON string.
  EXPECT_EQ(column_text(json("text"), ValueKind::json), R"("text")");
  EXPECT_EQ(column_text(json::array({1, 2}), ValueKind::json), "[1,2]");
  // Every element is quoted (PostgreSQL reads "1" as 1 in an int[]), NULL is bare, nesting nests.
  EXPECT_EQ(column_text(json::parse(R"([[1,2],[3,null]])"), ValueKind::array), R"({{"1","2"},{"3",NULL}})");
  EXPECT_EQ(column_text(json::parse(R"(["a\"b", "c,d", null])"), ValueKind::array), R"({"a\"b","c,d",NULL})");
  EXPECT_EQ(column_text(json::parse(R"([{"a":1}, [2]])"), ValueKind::json_array), R"({"{\"a\":1}","[2]"})");
  EXPECT_EQ(column_text(json("aGk="), ValueKind::bytea), "aGk=");
  EXPECT_THROW(column_text(json(std::string("a\0b", 3)), ValueKind::plain), std::invalid_argument);
}

// --- Topics ----------------------------------------------------------------------------------

TEST(MirrorProjectionTopics, WantsTheRowChangeTopicsOfItsTablesOnly) {
  MirrorConfig config;
  config.tables = {TableName{"public", "users"}, TableName{"sales", "order items"}};
  const MirrorProjection projection(config, "syncline", "group", std::make_unique<FakeCatalog>());
  EXPECT_EQ(projection.name(), "mirror");
  EXPECT_THAT(projection.topics(), ElementsAre("syncline.public.users", "syncline.sales.order_items"));
  EXPECT_TRUE(projection.wants("syncline.public.users", "public.users.u"));
  EXPECT_TRUE(projection.wants("syncline.sales.order_items", ""));
  EXPECT_FALSE(projection.wants("syncline.public.orders", "public.orders.c"));
  EXPECT_FALSE(projection.wants("syncline.events.user", "UserCreated"));
}

TEST(MirrorProjectionTopics, RefusesTwoSourceTablesForOneMirrorTable) {
  MirrorConfig config;
  config.tables = {TableName{"public", "users"}, TableName{"audit", "users"}};
  EXPECT_THROW(MirrorProjection(config, "syncline", "group", std::make_unique<FakeCatalog>()), std::invalid_argument);
}

// --- plan() ----------------------------------------------------------------------------------

TEST_F(MirrorPlanTest, UpsertsOfDifferentKeysBecomeOneStatementWithOneArrayPerColumn) {
  Batch batch;
  batch
      .change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "ann"}, {"bio", nullptr}}, nullptr, 3,
              "0/16B3800")
      .change("users", 'u', R"({"id":2})", {{"id", 2}, {"name", "bo\"b"}, {"bio", "x"}}, nullptr, 4,
              "0/16b3800")
      .change("users", 'r', R"({"id":3})", {{"id", 3}, {"name", "cy"}, {"bio", "y"}}, nullptr, 9, "1/0");
  const auto sink = plan(batch);
  EXPECT_THAT(sink.rejected, IsEmpty());
  ASSERT_EQ(sink.statements.size(), 1u);
  const auto& statement = sink.statements[0];
  EXPECT_THAT(statement.events, ElementsAre(0, 1, 2));
  // Columns sorted by name: bio, id, name; then positions and keys.
  EXPECT_THAT(
      statement.params,
      ElementsAre(pg::Param(R"({NULL,"x","y"})"), pg::Param(R"({"1","2","3"})"),
                  pg::Param(R"({"ann","bo\"b","cy"})"), pg::Param(R"({"0/16B3800","0/16B3800","1/0"})"),
                  pg::Param(R"({"3","4","9"})"), pg::Param(R"({"{\"id\":1}","{\"id\":2}","{\"id\":3}"})")));
  const std::string& sql = *statement.sql;
  EXPECT_THAT(sql, StartsWith(R"(INSERT INTO "read"."users" AS cur ("bio", "id", "name", "_syncline_lsn")"));
  EXPECT_THAT(sql,
              HasSubstr("unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"));
  EXPECT_THAT(sql, HasSubstr("CAST(v.c2 AS bigint)"));
  EXPECT_THAT(sql, HasSubstr("syncline.mirror_tombstones"));
  EXPECT_THAT(
      sql, HasSubstr(R"(ON CONFLICT ("id") DO UPDATE SET "bio" = EXCLUDED."bio", "name" = EXCLUDED."name")"));
  EXPECT_THAT(sql, HasSubstr(R"(WHERE ((cur."_syncline_lsn", cur."_syncline_seq") < )"));
  EXPECT_THAT(catalog_->executed,
              ElementsAre(StartsWith("DELETE FROM syncline.mirror_tombstones")));  // prune
}

TEST_F(MirrorPlanTest, ARepeatedKeyEmitsWhatIsPendingFirstSoChangesApplyInOrder) {
  Batch batch;
  batch.change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "a"}, {"bio", "b"}})
      .change("users", 'c', R"({"id":2})", {{"id", 2}, {"name", "a"}, {"bio", "b"}})
      .change("users", 'u', R"({"id":1})", {{"id", 1}, {"name", "a2"}, {"bio", "b"}})
      .change("users", 'd', R"({"id":2})", nullptr, {{"id", 2}})
      .change("users", 'u', R"({"id":3})", {{"id", 3}, {"name", "c"}, {"bio", "b"}})
      .change("users", 'd', R"({"id":1})", nullptr, nullptr)
      .change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "a3"}, {"bio", "b"}});
  const auto sink = plan(batch);
  EXPECT_THAT(sink.rejected, IsEmpty());
  // {0,1} until key 1 repeats; then {2,4} upserts and {3} delete until key 1 repeats again; then
  // the delete {5}; then the last insert {6}.
  EXPECT_THAT(covered(sink), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 4), ElementsAre(3), ElementsAre(5),
                                         ElementsAre(6)));
  EXPECT_THAT(*sink.statements[2].sql,
              StartsWith("WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                         "$5::text[], $6::text[], $7::text[]) AS v(c1, p_lsn, p_seq, p_key, p_topic, p_part, p_ts))"));
  EXPECT_THAT(*sink.statements[2].sql, HasSubstr(R"(DELETE FROM "read"."users" AS cur USING v WHERE )"
                                                 R"(cur."id" = CAST(v.c1 AS bigint))"));
  EXPECT_THAT(sink.statements[2].params[0], pg::Param(R"({"2"})"));
  // Same shape, same text: the SQL is generated once.
  EXPECT_EQ(sink.statements[0].sql, sink.statements[1].sql);
  EXPECT_EQ(sink.statements[0].sql, sink.statements[4].sql);
  EXPECT_EQ(sink.statements[2].sql, sink.statements[3].sql);
}

TEST_F(MirrorPlanTest, StatementTextsStayTheSameAcrossBatchesAndResets) {
  Batch batch;
  batch.change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "a"}, {"bio", "b"}});
  const auto first = plan(batch);
  projection_->reset();
  const auto second = plan(batch);
  ASSERT_EQ(first.statements.size(), 1u);
  ASSERT_EQ(second.statements.size(), 1u);
  EXPECT_EQ(first.statements[0].sql, second.statements[0].sql);
}

TEST_F(MirrorPlanTest, ChangesWithDifferentColumnSetsGoToDifferentStatements) {
  Batch batch;
  batch.change("users", 'u', R"({"id":1})", {{"id", 1}, {"name", "a"}, {"bio", "b"}})
      .change("users", 'u', R"({"id":2})", {{"id", 2}, {"name", "b"}}, nullptr, 0, "0/100",
              json::array({"bio"}))
      .change("users", 'u', R"({"id":3})", {{"id", 3}, {"name", "c"}, {"bio", "c"}});
  const auto sink = plan(batch);
  EXPECT_THAT(covered(sink), ElementsAre(ElementsAre(0, 2), ElementsAre(1)));
  // The unchanged TOAST column is neither written nor updated.
  EXPECT_THAT(*sink.statements[1].sql, StartsWith(R"(INSERT INTO "read"."users" AS cur ("id", "name", )"));
  EXPECT_THAT(*sink.statements[1].sql, ::testing::Not(HasSubstr(R"("bio")")));
  EXPECT_EQ(sink.statements[1].params.size(), 5u);
}

TEST_F(MirrorPlanTest, IsolatedEventsGetStatementsOfTheirOwnAfterWhatPrecedesThem) {
  Batch batch;
  batch.change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "a"}, {"bio", "b"}})
      .change("users", 'c', R"({"id":2})", {{"id", 2}, {"name", "a"}, {"bio", "b"}})
      .change("users", 'c', R"({"id":3})", {{"id", 3}, {"name", "a"}, {"bio", "b"}})
      .change("users", 'c', R"({"id":4})", {{"id", 4}, {"name", "a"}, {"bio", "b"}})
      .change("log", 'c', std::nullopt, {{"line", "x"}});
  const auto sink = plan(batch, {1, 2, 4});
  EXPECT_THAT(covered(sink),
              ElementsAre(ElementsAre(0), ElementsAre(1), ElementsAre(2), ElementsAre(4), ElementsAre(3)));
  EXPECT_EQ(sink.statements[0].sql, sink.statements[1].sql);
}

TEST_F(MirrorPlanTest, RejectsMalformedRowChangesWithAReason) {
  Batch batch;
  batch.value("users", {{"id", "x"}, {"type", "UserCreated"}, {"payload", json::object()}})
      .change("users", 'u', R"({"id":1})", nullptr)
      .change("users", 'c', R"({"id":2})", {{"id", 2}}, nullptr, 0, "not-an-lsn")
      .change("users", 'd', std::nullopt, nullptr, nullptr)
      .change("users", 'c', R"({"id":5})", {{"id", 5}, {"_syncline_lsn", "0/1"}})
      .change("users", 'c', R"([5])", {{"id", 5}})
      .change("users", 'c', R"({"id":6})", {{"id", 6}, {"name", std::string("a\0b", 3)}})
      .change("users", 'c', R"({"name":"x"})", {{"id", 7}, {"name", "x"}})
      .change("users", 'c', R"({"id":8})", {{"id", 8}, {"name", "fine"}});
  const auto sink = plan(batch);
  ASSERT_EQ(sink.rejected.size(), 8u);
  EXPECT_THAT(sink.rejected.at(0), HasSubstr("'op'"));
  EXPECT_THAT(sink.rejected.at(1), HasSubstr("no 'after'"));
  EXPECT_THAT(sink.rejected.at(2), HasSubstr("\"not-an-lsn\" is not a WAL position"));
  EXPECT_THAT(sink.rejected.at(3), HasSubstr("neither a Kafka key nor 'before'"));
  EXPECT_THAT(sink.rejected.at(4), HasSubstr("reserved"));
  EXPECT_THAT(sink.rejected.at(5), HasSubstr("Kafka key"));
  EXPECT_THAT(sink.rejected.at(6), HasSubstr("NUL"));
  EXPECT_THAT(sink.rejected.at(7), HasSubstr("no primary key or unique index on (name)"));
  EXPECT_THAT(covered(sink), ElementsAre(ElementsAre(8)));
}

TEST_F(MirrorPlanTest, ADeleteWithoutKafkaKeyTakesTheKeyFromBefore) {
  Batch batch;
  batch.change("users", 'd', std::nullopt, nullptr, {{"id", 7}, {"name", "gone"}});
  const auto sink = plan(batch);
  EXPECT_THAT(sink.rejected, IsEmpty());
  ASSERT_EQ(sink.statements.size(), 1u);
  // Where the delete was read and when it was committed: its tombstone's horizon.
  EXPECT_THAT(sink.statements[0].params,
              ElementsAre(pg::Param(R"({"7"})"), pg::Param(R"({"0/100"})"), pg::Param(R"({"1"})"),
                          pg::Param(R"({"{\"id\":7}"})"), pg::Param(R"({"sync.public.users"})"),
                          pg::Param(R"({"0"})"), pg::Param("{NULL}")));
}

TEST_F(MirrorPlanTest, KeylessTablesAreAppendOnly) {
  Batch batch;
  batch.change("log", 'c', std::nullopt, {{"line", "one"}})
      .change("log", 'u', std::nullopt, {{"line", "two"}})
      .change("log", 'd', std::nullopt, nullptr, {{"line", "one"}})
      .change("log", 'r', std::nullopt, {{"line", "three"}});
  const auto sink = plan(batch);
  EXPECT_THAT(sink.rejected, IsEmpty());
  EXPECT_THAT(sink.skipped, ElementsAre(1, 2));
  ASSERT_EQ(sink.statements.size(), 1u);
  EXPECT_THAT(sink.statements[0].events, ElementsAre(0, 3));
  EXPECT_EQ(
      *sink.statements[0].sql,
      R"(INSERT INTO "read"."log" ("line", "_syncline_lsn", "_syncline_seq") SELECT CAST(v.c1 AS text), )"
      R"(v.p_lsn::pg_lsn, v.p_seq::bigint FROM unnest($1::text[], $2::text[], $3::text[]) AS )"
      R"(v(c1, p_lsn, p_seq) WHERE ((v.p_lsn::pg_lsn, v.p_seq::bigint) > (SELECT tf.commit_lsn, tf.seq FROM )"
      R"(syncline.mirror_truncates tf WHERE tf.mirror_schema = 'read' AND tf.table_name = 'log')) IS NOT FALSE )"
      R"(ON CONFLICT ("_syncline_lsn", "_syncline_seq") DO NOTHING)");
  EXPECT_THAT(sink.statements[0].params,
              ElementsAre(pg::Param(R"({"one","three"})"), pg::Param(R"({"0/100","0/100"})"),
                          pg::Param(R"({"1","4"})")));
}

TEST_F(MirrorPlanTest, TruncateRunsAfterWhatIsPendingForItsTable) {
  Batch batch;
  batch.change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "a"}, {"bio", "b"}})
      .change("log", 'c', std::nullopt, {{"line", "x"}})
      .value("users",
             {{"op", "t"},
              {"before", nullptr},
              {"after", nullptr},
              {"source", {{"schema", "public"}, {"table", "users"}, {"commit_lsn", "0/200"}, {"seq", 1}}}},
             "{}")
      .change("users", 'c', R"({"id":1})", {{"id", 1}, {"name", "a"}, {"bio", "b"}});
  const auto sink = plan(batch);
  EXPECT_THAT(covered(sink), ElementsAre(ElementsAre(0), ElementsAre(2), ElementsAre(2), ElementsAre(2),
                                         ElementsAre(3), ElementsAre(1)));
  // The floor rises, the tombstones and rows below the truncate go; newer ones stay.
  EXPECT_THAT(*sink.statements[1].sql, StartsWith("INSERT INTO syncline.mirror_truncates"));
  EXPECT_THAT(sink.statements[1].params,
              ElementsAre(pg::Param("read"), pg::Param("users"), pg::Param("0/200"), pg::Param("1")));
  EXPECT_THAT(*sink.statements[2].sql, StartsWith("DELETE FROM syncline.mirror_tombstones"));
  EXPECT_THAT(sink.statements[2].params,
              ElementsAre(pg::Param("read"), pg::Param("users"), pg::Param("0/200"), pg::Param("1")));
  EXPECT_EQ(*sink.statements[3].sql,
            R"(DELETE FROM "read"."users" WHERE (("_syncline_lsn", "_syncline_seq") < ($1::pg_lsn, $2::bigint)) )"
            R"(IS NOT FALSE)");
  EXPECT_THAT(sink.statements[3].params, ElementsAre(pg::Param("0/200"), pg::Param("1")));
}

TEST_F(MirrorPlanTest, CreatesAnAbsentTableFromTheEventsColumnsAndKey) {
  config_.tables = {TableName{"public", "accounts"}, TableName{"public", "events"}};
  auto catalog = std::make_unique<FakeCatalog>();
  FakeCatalog& fake = *catalog;
  fake.on_execute = [&fake](const std::string& sql) {
    if (sql.find(R"("read"."accounts")") != std::string::npos) fake.tables["accounts"] = users_shape();
    if (sql.find(R"("read"."events")") != std::string::npos) fake.tables["events"] = keyless_shape();
  };
  MirrorProjection projection(config_, "sync", "group", std::move(catalog));
  Batch batch;
  batch
      .change("accounts", 'c', R"({"id":1})",
              {{"id", 1}, {"score", 1.5}, {"active", true}, {"tags", json::array({"a"})}, {"note", nullptr}})
      .change("accounts", 'u', R"({"id":2})", {{"id", 2}, {"note", 5}})
      .change("events", 'c', std::nullopt, {{"line", "x"}});
  RecordingSink sink;
  const auto events = batch.events();
  projection.plan(events, {}, session_, sink);
  EXPECT_THAT(
      fake.executed,
      ElementsAre(
          StartsWith("DELETE FROM syncline.mirror_tombstones"),  // the hourly prune
          R"(CREATE TABLE IF NOT EXISTS "read"."accounts" ("active" boolean, "id" bigint, )"
          R"("note" bigint, "score" double precision, "tags" jsonb, "_syncline_lsn" pg_lsn NOT NULL, )"
          R"("_syncline_seq" bigint NOT NULL, PRIMARY KEY ("id")))",
          // users_shape() lacks some of the columns: the mirror adds them.
          R"(ALTER TABLE "read"."accounts" ADD COLUMN IF NOT EXISTS "active" boolean, )"
          R"(ADD COLUMN IF NOT EXISTS "note" bigint, ADD COLUMN IF NOT EXISTS "score" double )"
          R"(precision, ADD COLUMN IF NOT EXISTS "tags" jsonb)",
          R"(CREATE TABLE IF NOT EXISTS "read"."events" ("line" text, "_syncline_lsn" pg_lsn )"
          R"(NOT NULL, "_syncline_seq" bigint NOT NULL, UNIQUE ("_syncline_lsn", "_syncline_seq")))"));
}

TEST_F(MirrorPlanTest, AddsNewColumnsOnceAndCachesTheCatalog) {
  catalog_->on_execute = [this](const std::string& sql) {
    if (sql.starts_with("ALTER TABLE")) catalog_->tables["users"].columns.push_back(column("age", "bigint"));
  };
  Batch batch;
  batch.change("users", 'u', R"({"id":1})", {{"id", 1}, {"age", 41}});
  plan(batch);
  plan(batch);
  std::vector<std::string> alters;
  for (const auto& sql : catalog_->executed) {
    if (sql.starts_with("ALTER")) alters.push_back(sql);
  }
  EXPECT_THAT(alters, ElementsAre(R"(ALTER TABLE "read"."users" ADD COLUMN IF NOT EXISTS "age" bigint)"));
  const int describes = catalog_->describes;
  plan(batch);
  EXPECT_EQ(catalog_->describes, describes);
  projection_->reset();
  plan(batch);
  EXPECT_EQ(catalog_->describes, describes + 1);
}

TEST_F(MirrorPlanTest, APermanentDdlErrorRejectsTheTablesEventsAndARetriableOnePropagates) {
  catalog_->on_execute = [](const std::string& sql) {
    if (sql.starts_with("ALTER TABLE")) throw pg::PgError("42501", "permission denied for table users");
  };
  Batch batch;
  batch.change("users", 'u', R"({"id":1})", {{"id", 1}, {"age", 41}})
      .change("log", 'c', std::nullopt, {{"line", "x"}});
  const auto sink = plan(batch);
  ASSERT_EQ(sink.rejected.size(), 1u);
  EXPECT_THAT(sink.rejected.at(0), HasSubstr("permission denied"));
  EXPECT_THAT(covered(sink), ElementsAre(ElementsAre(1)));

  catalog_->on_execute = [](const std::string& sql) {
    if (sql.starts_with("ALTER TABLE")) throw pg::PgError("08006", "connection lost");
  };
  EXPECT_THROW(plan(batch), pg::PgError);
}

TEST_F(MirrorPlanTest, EventsOfAnUnmirroredTableSharingTheTopicAreSkipped) {
  Batch batch;
  batch.change("orders", 'c', R"({"id":1})", {{"id", 1}});
  const auto sink = plan(batch);
  EXPECT_THAT(sink.skipped, ElementsAre(0));
  EXPECT_THAT(sink.statements, IsEmpty());
}

TEST_F(MirrorPlanTest, PrunesTombstonesAtMostOncePerHour) {
  Batch batch;
  batch.change("users", 'c', R"({"id":1})", {{"id", 1}});
  plan(batch);
  plan(batch);
  EXPECT_EQ(count_prunes(*catalog_), 1u);
  now_ += std::chrono::minutes(59);
  plan(batch);
  EXPECT_EQ(count_prunes(*catalog_), 1u);
  now_ += std::chrono::minutes(1);
  plan(batch);
  EXPECT_EQ(count_prunes(*catalog_), 2u);
}

TEST_F(MirrorPlanTest, SetupCreatesTheSchemasAndTombstoneTableAndPrunes) {
  projection_->setup(session_);
  EXPECT_THAT(catalog_->executed,
              ElementsAre(R"(CREATE SCHEMA IF NOT EXISTS "read")", "CREATE SCHEMA IF NOT EXISTS syncline",
                          StartsWith("CREATE TABLE IF NOT EXISTS syncline.mirror_tombstones ("),
                          StartsWith("ALTER TABLE syncline.mirror_tombstones ADD COLUMN IF NOT EXISTS topic"),
                          StartsWith("CREATE TABLE IF NOT EXISTS syncline.mirror_truncates ("),
                          StartsWith("DELETE FROM syncline.mirror_tombstones")));
  Batch batch;
  batch.change("users", 'c', R"({"id":1})", {{"id", 1}});
  plan(batch);
  EXPECT_EQ(count_prunes(*catalog_), 1u);  // setup's prune counts for the hour
}

}  // namespace
}  // namespace syncline::pg_projector
