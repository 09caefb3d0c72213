// Unit tests of declarative SQL projections: the :json.path compiler, event routing, and binding
// envelope values as typed text parameters (with a fake Session, so no database).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "consumers/pg/sql_projection.hpp"

namespace syncline::pg_projector {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace oid = sql_param_oid;

// --- Test doubles ---

// Thrown by FakeSession::connection(): plan() must never need the connection.
class ConnectionUsed : public std::runtime_error {
 public:
  ConnectionUsed() : std::runtime_error("the test session has no connection") {}
};

// Answers parameter_types() from a table keyed by the compiled SQL text; an unknown text fails to
// prepare, as a statement on a missing table would.
class FakeSession : public Session {
 public:
  std::map<std::string, std::vector<Oid>> types;
  std::map<std::string, int> prepared;  // how often each text was asked for

  pg::PgConnection& connection() override { throw ConnectionUsed(); }
  const std::vector<Oid>& parameter_types(const std::string& sql) override {
    ++prepared[sql];
    const auto found = types.find(sql);
    if (found == types.end())
      throw pg::PgError("42P01", "relation does not exist (no types for: " + sql + ")");
    return found->second;
  }
};

struct Added {
  std::string sql;
  const std::string* sql_address = nullptr;
  std::vector<pg::Param> params;
  std::vector<std::size_t> events;
};

class RecordingSink : public PlanSink {
 public:
  std::vector<Added> added;
  std::map<std::size_t, std::string> rejected;
  std::vector<std::size_t> skipped;

  void add(Statement statement) override {
    ASSERT_NE(statement.sql, nullptr);
    added.push_back(
        {*statement.sql, statement.sql, std::move(statement.params), std::move(statement.events)});
  }
  void reject(std::size_t event_index, std::string reason) override {
    EXPECT_TRUE(rejected.emplace(event_index, std::move(reason)).second) << "event rejected twice";
  }
  void skip(std::size_t event_index) override { skipped.push_back(event_index); }
};

// --- Helpers ---

constexpr const char* kTopic = "app.events.conversation";

SqlProjectionConfig projection_config(std::vector<SqlHandlerConfig> handlers, std::string setup = "") {
  SqlProjectionConfig config;
  config.name = "conversation_summary";
  config.topics = {kTopic, "app.public.messages"};
  config.setup = std::move(setup);
  config.handlers = std::move(handlers);
  return config;
}

json envelope(const std::string& type, json payload) {
  return {{"id", "e-1"},
          {"type", type},
          {"aggregate_type", "conversation"},
          {"aggregate_id", "c-42"},
          {"occurred_at", "2026-11-22T10:00:00.123Z"},
          {"payload", std::move(payload)},
          {"op", nullptr},
          {"before", nullptr},
          {"after", nullptr},
          {"source",
           {{"db", "write"},
            {"schema", "public"},
            {"table", "outbox"},
            {"lsn", "0/16B3748"},
            {"commit_lsn", "0/16B3800"},
            {"seq", 3},
            {"txid", 1234},
            {"commit_ts", "2026-11-22T10:00:00.125Z"},
            {"snapshot", false}}}};
}

// Plans `values` (event i has index i and the value's "type") as one batch.
// `partitions[i]`, when given, is event i's Kafka partition (else 0).
RecordingSink plan_batch(SqlProjection& projection, Session& session, const std::vector<json>& values,
                         const std::vector<std::int32_t>& partitions = {}) {
  std::vector<std::string> types;
  types.reserve(values.size());
  for (const auto& value : values) types.push_back(value.at("type").get<std::string>());
  std::vector<Event> events(values.size());
  std::vector<const Event*> pointers;
  for (std::size_t i = 0; i < values.size(); ++i) {
    events[i].index = i;
    events[i].topic = kTopic;
    events[i].offset = static_cast<std::int64_t>(100 + i);
    if (i < partitions.size()) events[i].partition = partitions[i];
    events[i].type = types[i];
    events[i].value = &values[i];
    pointers.push_back(&events[i]);
  }
  RecordingSink sink;
  projection.plan(pointers, {}, session, sink);
  return sink;
}

// The outcome of binding payload.v to one parameter PostgreSQL typed as `type`.
struct Binding {
  bool bound = false;
  pg::Param param;
  std::string reason;
};

Binding bind(const json& value, Oid type) {
  SqlProjection projection(projection_config({{{"Set"}, {"SELECT :payload.v"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {type};
  projection.setup(session);
  const auto sink = plan_batch(projection, session, {envelope("Set", {{"v", value}})});
  Binding binding;
  if (!sink.added.empty()) {
    binding.bound = true;
    binding.param = sink.added.at(0).params.at(0);
  } else if (!sink.rejected.empty()) {
    binding.reason = sink.rejected.begin()->second;
  }
  return binding;
}

pg::Param bound_text(const json& value, Oid type) {
  const Binding binding = bind(value, type);
  EXPECT_TRUE(binding.bound) << value.dump() << " as oid " << type << " was rejected: " << binding.reason;
  return binding.param;
}

std::string mismatch_reason(const json& value, Oid type) {
  const Binding binding = bind(value, type);
  EXPECT_FALSE(binding.bound) << value.dump() << " as oid " << type << " bound as "
                              << binding.param.value_or("NULL");
  return binding.reason;
}

std::vector<std::string> paths_of(const CompiledSql& compiled) {
  std::vector<std::string> paths;
  for (const auto& parameter : compiled.parameters) paths.push_back(parameter.text);
  return paths;
}

std::string compile_error(std::string_view sql) {
  try {
    const auto compiled = compile_named_parameters(sql);
    ADD_FAILURE() << "compiled without error to: " << compiled.sql;
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return {};
}

// --- The named-parameter compiler ---

TEST(SqlNamedParameters, replaces_named_parameters_with_positional_ones_in_order_of_first_use) {
  const auto compiled = compile_named_parameters(
      "INSERT INTO summary (id, at, lsn) VALUES (:payload.conversation_id, :occurred_at, "
      ":source.commit_lsn)");
  EXPECT_EQ(compiled.sql, "INSERT INTO summary (id, at, lsn) VALUES ($1, $2, $3)");
  EXPECT_THAT(paths_of(compiled), ElementsAre("payload.conversation_id", "occurred_at", "source.commit_lsn"));
  EXPECT_FALSE(compiled.parameters[0].optional);
  ASSERT_EQ(compiled.parameters[0].steps.size(), 2U);
  EXPECT_EQ(compiled.parameters[0].steps[0].key, "payload");
  EXPECT_EQ(compiled.parameters[0].steps[1].key, "conversation_id");
  EXPECT_FALSE(compiled.parameters[0].steps[1].is_index);
}

TEST(SqlNamedParameters, gives_a_path_used_twice_the_same_number) {
  const auto compiled =
      compile_named_parameters("UPDATE t SET a = :payload.x, b = :payload.y WHERE a <> :payload.x");
  EXPECT_EQ(compiled.sql, "UPDATE t SET a = $1, b = $2 WHERE a <> $1");
  EXPECT_THAT(paths_of(compiled), ElementsAre("payload.x", "payload.y"));
}

TEST(SqlNamedParameters, reads_a_double_colon_after_a_parameter_as_a_cast) {
  EXPECT_EQ(compile_named_parameters("SELECT :payload.n::bigint, x::int, (y)::text, :id?::uuid").sql,
            "SELECT $1::bigint, x::int, (y)::text, $2::uuid");
  EXPECT_TRUE(compile_named_parameters("SELECT x::int").parameters.empty());
  EXPECT_TRUE(compile_named_parameters("SELECT x :: payload").parameters.empty());
}

TEST(SqlNamedParameters, leaves_string_literals_alone_including_doubled_and_backslash_escaped_quotes) {
  const auto compiled = compile_named_parameters(
      R"(SELECT 'it''s :payload.a', E'\' :payload.b', e'x\\', :payload.c, U&'d\0061 :payload.d')");
  EXPECT_EQ(compiled.sql,
            R"(SELECT 'it''s :payload.a', E'\' :payload.b', e'x\\', $1, U&'d\0061 :payload.d')");
  EXPECT_THAT(paths_of(compiled), ElementsAre("payload.c"));
}

TEST(SqlNamedParameters, reads_a_backslash_in_a_plain_string_as_a_character) {
  // Without the E prefix (standard_conforming_strings), '\' does not escape the closing quote.
  const auto compiled = compile_named_parameters(R"(SELECT 'a\', :payload.x, type'b\', :id)");
  EXPECT_EQ(compiled.sql, R"(SELECT 'a\', $1, type'b\', $2)");
}

TEST(SqlNamedParameters, leaves_quoted_identifiers_alone) {
  const auto compiled = compile_named_parameters(R"(SELECT "odd "":payload.a" FROM t WHERE k = :id)");
  EXPECT_EQ(compiled.sql, R"(SELECT "odd "":payload.a" FROM t WHERE k = $1)");
  EXPECT_THAT(paths_of(compiled), ElementsAre("id"));
}

TEST(SqlNamedParameters, leaves_line_comments_and_nested_block_comments_alone) {
  const auto compiled = compile_named_parameters(
      "SELECT :id -- not :payload.a\n, /* outer /* inner :payload.b */ still :payload.c */ :type");
  EXPECT_EQ(compiled.sql,
            "SELECT $1 -- not :payload.a\n, /* outer /* inner :payload.b */ still :payload.c */ $2");
  EXPECT_THAT(paths_of(compiled), ElementsAre("id", "type"));
}

TEST(SqlNamedParameters, leaves_dollar_quoted_bodies_alone) {
  const auto compiled = compile_named_parameters(
      "SELECT $$ :payload.a $1 $$, $fn$ body $$ :payload.b $fn$, :payload.c, $x$ 'quote $x$");
  EXPECT_EQ(compiled.sql, "SELECT $$ :payload.a $1 $$, $fn$ body $$ :payload.b $fn$, $1, $x$ 'quote $x$");
  EXPECT_THAT(paths_of(compiled), ElementsAre("payload.c"));
}

TEST(SqlNamedParameters, leaves_array_slices_named_arguments_and_identifiers_with_dollars_alone) {
  const auto compiled = compile_named_parameters(
      "SELECT arr[1:2], arr[i:j], arr[lo:hi][1:1], f(a := 1), a$1, tab.col$x FROM t");
  EXPECT_EQ(compiled.sql, "SELECT arr[1:2], arr[i:j], arr[lo:hi][1:1], f(a := 1), a$1, tab.col$x FROM t");
  EXPECT_TRUE(compiled.parameters.empty());
}

TEST(SqlNamedParameters, compiles_parameters_at_the_very_start_and_end_and_next_to_punctuation) {
  const auto compiled = compile_named_parameters(":id||(:type)||[:aggregate_id]||:payload");
  EXPECT_EQ(compiled.sql, "$1||($2)||[$3]||$4");
}

TEST(SqlNamedParameters, marks_a_trailing_question_mark_as_optional_and_leaves_it_out_of_the_sql) {
  const auto compiled =
      compile_named_parameters("VALUES (:payload.note?, :payload.n?::int, :payload.x, :payload.note?)");
  EXPECT_EQ(compiled.sql, "VALUES ($1, $2::int, $3, $1)");
  ASSERT_EQ(compiled.parameters.size(), 3U);
  EXPECT_EQ(compiled.parameters[0].text, "payload.note");
  EXPECT_TRUE(compiled.parameters[0].optional);
  EXPECT_TRUE(compiled.parameters[1].optional);
  EXPECT_FALSE(compiled.parameters[2].optional);
}

TEST(SqlNamedParameters, parses_digit_steps_as_array_indexes) {
  const auto compiled = compile_named_parameters("SELECT :payload.items.0.id, :payload.items.12.tags.3");
  EXPECT_EQ(compiled.sql, "SELECT $1, $2");
  ASSERT_EQ(compiled.parameters[0].steps.size(), 4U);
  EXPECT_TRUE(compiled.parameters[0].steps[2].is_index);
  EXPECT_EQ(compiled.parameters[0].steps[2].index, 0U);
  EXPECT_EQ(compiled.parameters[0].steps[2].key, "0");
  EXPECT_EQ(compiled.parameters[1].steps[2].index, 12U);
  EXPECT_EQ(compiled.parameters[1].steps[4].index, 3U);
}

TEST(SqlNamedParameters, ends_a_path_at_a_dot_that_no_step_follows) {
  const auto compiled = compile_named_parameters("SELECT :payload.x. FROM t");
  EXPECT_EQ(compiled.sql, "SELECT $1. FROM t");
  EXPECT_THAT(paths_of(compiled), ElementsAre("payload.x"));
}

TEST(SqlNamedParameters, refuses_positional_parameters_but_not_inside_literals_or_comments) {
  EXPECT_THAT(compile_error("SELECT :id, $1"), HasSubstr("positional parameter $1"));
  EXPECT_THAT(compile_error("SELECT $12"), HasSubstr("positional parameter $12"));
  EXPECT_NO_THROW(compile_named_parameters("SELECT '$1', \"$2\" -- $3\n /* $4 */"));
}

TEST(SqlNamedParameters, says_where_the_problem_is) {
  EXPECT_THAT(compile_error("SELECT 1,\n  x = $2"), HasSubstr("line 2, column 7"));
}

TEST(SqlNamedParameters, refuses_a_first_step_that_is_not_an_envelope_field) {
  EXPECT_THAT(compile_error("SELECT :paylaod.x"), HasSubstr("the envelope has no field 'paylaod'"));
  EXPECT_THAT(compile_error("SELECT arr[:n]"), HasSubstr("no field 'n'"));
  EXPECT_THAT(compile_error("SELECT :source.comit_lsn"), HasSubstr("source has no field 'comit_lsn'"));
  EXPECT_NO_THROW(compile_named_parameters(
      "SELECT :headers.trace_id, :after.id, :before.id, :op, :source.unchanged_toast, :source"));
}

TEST(SqlNamedParameters, refuses_a_path_written_both_with_and_without_the_optional_mark) {
  EXPECT_THAT(compile_error("SELECT :payload.x?, :payload.x"),
              HasSubstr(":payload.x is written both with and without '?'"));
}

TEST(SqlNamedParameters, refuses_a_step_mixing_digits_and_letters) {
  EXPECT_THAT(compile_error("SELECT :payload.0abc"), HasSubstr("identifier or digits"));
}

TEST(SqlNamedParameters, refuses_unterminated_literals_identifiers_comments_and_dollar_quotes) {
  EXPECT_THAT(compile_error("SELECT 'abc"), HasSubstr("unterminated string literal"));
  EXPECT_THAT(compile_error("SELECT E'abc\\'"), HasSubstr("unterminated string literal"));
  EXPECT_THAT(compile_error("SELECT \"abc"), HasSubstr("unterminated quoted identifier"));
  EXPECT_THAT(compile_error("SELECT /* a /* b */"), HasSubstr("unterminated /* comment"));
  EXPECT_THAT(compile_error("SELECT $tag$ body $other$"),
              HasSubstr("unterminated dollar-quoted string $tag$"));
}

// --- Construction and routing ---

TEST(SqlProjectionRouting, wants_only_its_topics_and_the_types_it_has_handlers_for) {
  const SqlProjection projection(projection_config(
      {{{"MessageSent", "MessageEdited"}, {"SELECT :id"}}, {{"ConversationClosed"}, {"SELECT :id"}}}));
  EXPECT_EQ(projection.name(), "conversation_summary");
  EXPECT_THAT(projection.topics(), ElementsAre(kTopic, "app.public.messages"));
  EXPECT_TRUE(projection.wants(kTopic, "MessageSent"));
  EXPECT_TRUE(projection.wants(kTopic, "MessageEdited"));
  EXPECT_TRUE(projection.wants("app.public.messages", "ConversationClosed"));
  EXPECT_FALSE(projection.wants(kTopic, "MessageDeleted"));
  EXPECT_FALSE(projection.wants(kTopic, ""));
  EXPECT_FALSE(projection.wants("app.events.other", "MessageSent"));
}

TEST(SqlProjectionRouting, a_truncate_applies_once_from_its_copy_on_partition_zero) {
  SqlProjection projection(projection_config({{{"public.items.truncated"}, {"DELETE FROM counts WHERE k = :op"}}}));
  FakeSession session;
  session.types["DELETE FROM counts WHERE k = $1"] = {oid::kText};
  projection.setup(session);
  json truncate = envelope("public.items.truncated", nullptr);
  truncate["op"] = "t";
  // The producer publishes one copy per partition of the table's topic.
  const auto sink = plan_batch(projection, session, {truncate, truncate, truncate}, {2, 0, 1});
  ASSERT_EQ(sink.added.size(), 1U);
  EXPECT_THAT(sink.added.at(0).events, ElementsAre(1));
  EXPECT_THAT(sink.skipped, ElementsAre(0, 2));
}

TEST(SqlProjectionRouting, a_compile_error_names_the_projection_the_handler_types_and_the_statement) {
  try {
    SqlProjection projection(projection_config(
        {{{"A"}, {"SELECT 1"}}, {{"MessageSent", "MessageEdited"}, {"SELECT 1", "SELECT $1"}}}));
    FAIL() << "constructed";
  } catch (const std::invalid_argument& error) {
    EXPECT_THAT(error.what(), HasSubstr("projection conversation_summary, handler 2 (types MessageSent, "
                                        "MessageEdited), statement 2: positional parameter $1"));
  }
}

TEST(SqlProjectionRouting, refuses_a_config_that_could_never_apply_anything) {
  EXPECT_THROW(SqlProjection(projection_config({})), std::invalid_argument);
  EXPECT_THROW(SqlProjection(projection_config({{{}, {"SELECT 1"}}})), std::invalid_argument);
  EXPECT_THROW(SqlProjection(projection_config({{{"A"}, {}}})), std::invalid_argument);
  EXPECT_THROW(SqlProjection(projection_config({{{"A"}, {"  \n"}}})), std::invalid_argument);
  EXPECT_THROW(SqlProjection(projection_config({{{"A", "A"}, {"SELECT 1"}}})), std::invalid_argument);
  auto no_topics = projection_config({{{"A"}, {"SELECT 1"}}});
  no_topics.topics.clear();
  EXPECT_THROW(SqlProjection(std::move(no_topics)), std::invalid_argument);
}

// --- setup() ---

TEST(SqlProjectionSetup, prepares_every_statement_once_and_plan_reuses_the_types) {
  SqlProjection projection(projection_config(
      {{{"MessageSent"},
        {"INSERT INTO m VALUES (:payload.id)", "UPDATE s SET n = n + 1 WHERE id = :aggregate_id"}}}));
  FakeSession session;
  session.types["INSERT INTO m VALUES ($1)"] = {oid::kText};
  session.types["UPDATE s SET n = n + 1 WHERE id = $1"] = {oid::kText};
  projection.setup(session);
  EXPECT_EQ(session.prepared["INSERT INTO m VALUES ($1)"], 1);
  EXPECT_EQ(session.prepared["UPDATE s SET n = n + 1 WHERE id = $1"], 1);

  const auto payload = json{{"id", "m-1"}};
  const auto sink =
      plan_batch(projection, session, {envelope("MessageSent", payload), envelope("MessageSent", payload)});
  EXPECT_EQ(sink.added.size(), 4U);
  EXPECT_EQ(session.prepared["INSERT INTO m VALUES ($1)"], 1);

  projection.setup(session);  // a reconnect: the tables may have changed
  EXPECT_EQ(session.prepared["INSERT INTO m VALUES ($1)"], 2);
}

TEST(SqlProjectionSetup, lets_a_statement_that_does_not_prepare_fail_start_up_saying_which_one) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT 1", "INSERT INTO missing VALUES (:id)"}}}));
  FakeSession session;
  session.types["SELECT 1"] = {};
  try {
    projection.setup(session);
    FAIL() << "setup succeeded";
  } catch (const pg::PgError& error) {
    EXPECT_EQ(error.sqlstate(), "42P01");
    EXPECT_THAT(error.what(), HasSubstr("projection conversation_summary, handler 1 (types A), statement 2: "
                                        "relation does not exist"));
    EXPECT_THAT(error.what(), ::testing::EndsWith(")) [SQLSTATE 42P01]"));
  }
}

TEST(SqlProjectionSetup, runs_the_setup_sql_on_the_connection_only_when_there_is_some) {
  SqlProjection with_setup(
      projection_config({{{"A"}, {"SELECT 1"}}}, "CREATE TABLE IF NOT EXISTS t (id text)"));
  FakeSession session;
  session.types["SELECT 1"] = {};
  EXPECT_THROW(with_setup.setup(session), ConnectionUsed);

  SqlProjection without_setup(projection_config({{{"A"}, {"SELECT 1"}}}));
  EXPECT_NO_THROW(without_setup.setup(session));
}

TEST(SqlProjectionSetup, refuses_a_statement_where_postgres_counts_other_parameters_than_the_compiler) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT :id"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {oid::kText, oid::kText};
  EXPECT_THROW(projection.setup(session), pg::PgError);
}

// --- plan() ---

TEST(SqlProjectionPlan, binds_envelope_fields_into_the_statement_for_the_event) {
  SqlProjection projection(
      projection_config({{{"MessageSent"},
                          {"INSERT INTO m VALUES (:payload.conversation_id, :occurred_at, "
                           ":source.commit_lsn, :source.seq, :payload.items.1.id)"}}}));
  FakeSession session;
  session.types["INSERT INTO m VALUES ($1, $2, $3, $4, $5)"] = {oid::kText, oid::kTimestamptz, oid::kPgLsn,
                                                                oid::kInt8, oid::kUuid};
  projection.setup(session);
  const auto sink = plan_batch(
      projection, session,
      {envelope("MessageSent",
                {{"conversation_id", "c-42"}, {"items", json::array({{{"id", "a"}}, {{"id", "b"}}})}})});
  ASSERT_EQ(sink.added.size(), 1U);
  EXPECT_TRUE(sink.rejected.empty());
  EXPECT_EQ(sink.added[0].sql, "INSERT INTO m VALUES ($1, $2, $3, $4, $5)");
  EXPECT_THAT(sink.added[0].params, ElementsAre("c-42", "2026-11-22T10:00:00.123Z", "0/16B3800", "3", "b"));
  EXPECT_THAT(sink.added[0].events, ElementsAre(0U));
}

TEST(SqlProjectionPlan, adds_an_events_statements_in_config_order_and_events_in_batch_order) {
  SqlProjection projection(
      projection_config({{{"MessageSent"}, {"INSERT INTO a VALUES (:id)", "UPDATE b SET x = :id"}}}));
  FakeSession session;
  session.types["INSERT INTO a VALUES ($1)"] = {oid::kText};
  session.types["UPDATE b SET x = $1"] = {oid::kText};
  projection.setup(session);
  auto first = envelope("MessageSent", json::object());
  auto second = envelope("MessageSent", json::object());
  second["id"] = "e-2";
  const auto sink = plan_batch(projection, session, {first, second});
  ASSERT_EQ(sink.added.size(), 4U);
  EXPECT_EQ(sink.added[0].sql, "INSERT INTO a VALUES ($1)");
  EXPECT_EQ(sink.added[1].sql, "UPDATE b SET x = $1");
  EXPECT_EQ(sink.added[2].sql, "INSERT INTO a VALUES ($1)");
  EXPECT_EQ(sink.added[3].sql, "UPDATE b SET x = $1");
  EXPECT_THAT(sink.added[0].params, ElementsAre("e-1"));
  EXPECT_THAT(sink.added[3].params, ElementsAre("e-2"));
  EXPECT_THAT(sink.added[3].events, ElementsAre(1U));
  // The executor keys its prepared statements by this string: it is the projection's own, every time.
  EXPECT_EQ(sink.added[0].sql_address, sink.added[2].sql_address);
}

TEST(SqlProjectionPlan, runs_the_statements_of_every_handler_listing_a_type_in_config_order) {
  SqlProjection projection(
      projection_config({{{"MessageSent", "MessageEdited"}, {"SELECT 'first', :id"}},
                         {{"ConversationClosed"}, {"SELECT 'other', :id"}},
                         {{"MessageSent"}, {"SELECT 'second', :id", "SELECT 'third', :id"}}}));
  FakeSession session;
  for (const char* sql :
       {"SELECT 'first', $1", "SELECT 'other', $1", "SELECT 'second', $1", "SELECT 'third', $1"}) {
    session.types[sql] = {oid::kText};
  }
  projection.setup(session);
  const auto sink =
      plan_batch(projection, session, {envelope("MessageSent", {}), envelope("MessageEdited", {})});
  std::vector<std::string> sqls;
  for (const auto& added : sink.added) sqls.push_back(added.sql);
  EXPECT_THAT(sqls, ElementsAre("SELECT 'first', $1", "SELECT 'second', $1", "SELECT 'third', $1",
                                "SELECT 'first', $1"));
}

TEST(SqlProjectionPlan, rejects_an_event_missing_a_required_path_with_a_reason_naming_it) {
  SqlProjection projection(projection_config(
      {{{"MessageSent"}, {"SELECT :id", "INSERT INTO s VALUES (:payload.conversation_id)"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {oid::kText};
  session.types["INSERT INTO s VALUES ($1)"] = {oid::kText};
  projection.setup(session);
  const auto sink = plan_batch(projection, session, {envelope("MessageSent", {{"other", 1}})});
  // All or nothing: the first statement bound fine, but is not added either.
  EXPECT_TRUE(sink.added.empty());
  ASSERT_EQ(sink.rejected.count(0), 1U);
  EXPECT_EQ(sink.rejected.at(0),
            "projection conversation_summary, type MessageSent, statement 2: missing JSON path "
            "payload.conversation_id");
}

TEST(SqlProjectionPlan, treats_a_path_through_a_scalar_or_past_an_array_end_as_missing) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT :payload.items.2?, :payload.name.first?"}}}));
  FakeSession session;
  session.types["SELECT $1, $2"] = {oid::kText, oid::kText};
  projection.setup(session);
  const auto sink = plan_batch(projection, session, {envelope("A", {{"items", {1, 2}}, {"name", "x"}})});
  ASSERT_EQ(sink.added.size(), 1U);
  EXPECT_THAT(sink.added[0].params, ElementsAre(std::nullopt, std::nullopt));
}

TEST(SqlProjectionPlan, binds_null_for_an_absent_optional_path_and_for_json_null) {
  SqlProjection projection(
      projection_config({{{"A"}, {"SELECT :payload.note?, :payload.count, :headers?"}}}));
  FakeSession session;
  session.types["SELECT $1, $2, $3"] = {oid::kText, oid::kInt8, oid::kJsonb};
  projection.setup(session);
  const auto sink = plan_batch(projection, session, {envelope("A", {{"count", nullptr}})});
  ASSERT_EQ(sink.added.size(), 1U);
  EXPECT_THAT(sink.added[0].params, ElementsAre(std::nullopt, std::nullopt, std::nullopt));
}

TEST(SqlProjectionPlan, rejects_a_type_mismatch_with_a_reason_naming_the_parameter_and_the_value) {
  SqlProjection projection(projection_config({{{"MessageSent"}, {"UPDATE s SET n = n + :payload.count"}}}));
  FakeSession session;
  session.types["UPDATE s SET n = n + $1"] = {oid::kInt8};
  projection.setup(session);
  const auto sink = plan_batch(projection, session, {envelope("MessageSent", {{"count", {{"a", 1}}}})});
  EXPECT_TRUE(sink.added.empty());
  EXPECT_EQ(
      sink.rejected.at(0),
      "projection conversation_summary, type MessageSent, statement 1: parameter :payload.count expects "
      "bigint, got object {\"a\":1}");
}

TEST(SqlProjectionPlan, shortens_a_long_value_in_a_reason) {
  const std::string reason = mismatch_reason({{"text", std::string(500, 'x')}}, oid::kInt8);
  EXPECT_THAT(reason, HasSubstr("got object {\"text\":\"xxx"));
  EXPECT_THAT(reason, HasSubstr("..."));
  EXPECT_LT(reason.size(), 250U);
}

TEST(SqlProjectionPlan, rejects_only_the_failing_event_of_a_batch) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT :payload.n"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {oid::kInt4};
  projection.setup(session);
  const auto sink =
      plan_batch(projection, session,
                 {envelope("A", {{"n", 1}}), envelope("A", {{"n", "x"}}), envelope("A", {{"n", 3}})});
  ASSERT_EQ(sink.added.size(), 2U);
  EXPECT_THAT(sink.added[0].events, ElementsAre(0U));
  EXPECT_THAT(sink.added[1].events, ElementsAre(2U));
  EXPECT_EQ(sink.rejected.size(), 1U);
  EXPECT_THAT(sink.rejected.at(1), HasSubstr("parameter :payload.n expects integer, got string \"x\""));
}

TEST(SqlProjectionPlan, names_the_handler_in_a_reason_when_several_handlers_list_the_type) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT :id"}}, {{"A", "B"}, {"SELECT :payload.x"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {oid::kText};
  projection.setup(session);
  const auto sink =
      plan_batch(projection, session, {envelope("A", json::object()), envelope("B", json::object())});
  EXPECT_TRUE(sink.added.empty());
  EXPECT_EQ(sink.rejected.at(0),
            "projection conversation_summary, type A, handler 2, statement 1: missing JSON path payload.x");
  EXPECT_EQ(sink.rejected.at(1),
            "projection conversation_summary, type B, statement 1: missing JSON path payload.x");
}

TEST(SqlProjectionPlan, skips_an_event_of_a_type_it_has_no_handler_for) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT :id"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {oid::kText};
  projection.setup(session);
  const auto sink = plan_batch(projection, session, {envelope("Other", {})});
  EXPECT_TRUE(sink.added.empty());
  EXPECT_THAT(sink.skipped, ElementsAre(0U));
}

TEST(SqlProjectionPlan, asks_the_session_for_types_when_setup_has_not_run) {
  SqlProjection projection(projection_config({{{"A"}, {"SELECT :id"}}}));
  FakeSession session;
  session.types["SELECT $1"] = {oid::kText};
  const auto sink = plan_batch(projection, session, {envelope("A", {}), envelope("A", {})});
  EXPECT_EQ(sink.added.size(), 2U);
  EXPECT_EQ(session.prepared["SELECT $1"], 1);
}

// --- Conversions by parameter type ---

TEST(SqlProjectionConversion, binds_json_null_as_sql_null_whatever_the_type) {
  for (const Oid type : {oid::kBool, oid::kInt8, oid::kNumeric, oid::kJsonb, oid::kTextArray, oid::kText}) {
    EXPECT_EQ(bound_text(nullptr, type), std::nullopt) << type;
  }
}

TEST(SqlProjectionConversion, binds_booleans_and_their_postgres_spellings_to_bool) {
  EXPECT_EQ(bound_text(true, oid::kBool), "true");
  EXPECT_EQ(bound_text(false, oid::kBool), "false");
  for (const char* text : {"true", "false", "t", "f"}) EXPECT_EQ(bound_text(text, oid::kBool), text);
  EXPECT_THAT(mismatch_reason("yes", oid::kBool), HasSubstr("expects boolean, got string \"yes\""));
  EXPECT_THAT(mismatch_reason(1, oid::kBool), HasSubstr("expects boolean, got integer 1"));
}

TEST(SqlProjectionConversion, binds_json_integers_and_integer_strings_to_integer_types_within_range) {
  EXPECT_EQ(bound_text(42, oid::kInt4), "42");
  EXPECT_EQ(bound_text(-7, oid::kInt2), "-7");
  EXPECT_EQ(bound_text("123", oid::kInt8), "123");
  EXPECT_EQ(bound_text("-9223372036854775808", oid::kInt8), "-9223372036854775808");
  EXPECT_EQ(bound_text(json(9223372036854775807LL), oid::kInt8), "9223372036854775807");
  EXPECT_EQ(bound_text(32767, oid::kInt2), "32767");
  EXPECT_THAT(mismatch_reason(32768, oid::kInt2), HasSubstr("expects smallint, got integer 32768"));
  EXPECT_THAT(mismatch_reason(2147483648LL, oid::kInt4), HasSubstr("expects integer"));
  EXPECT_THAT(mismatch_reason(json(18446744073709551615ULL), oid::kInt8), HasSubstr("expects bigint"));
  EXPECT_THAT(mismatch_reason("9223372036854775808", oid::kInt8), HasSubstr("expects bigint"));
  EXPECT_THAT(mismatch_reason(1.5, oid::kInt8), HasSubstr("expects bigint, got number 1.5"));
  EXPECT_THAT(mismatch_reason("1.5", oid::kInt8), HasSubstr("got string \"1.5\""));
  EXPECT_THAT(mismatch_reason("", oid::kInt8), HasSubstr("expects bigint"));
  EXPECT_THAT(mismatch_reason("12a", oid::kInt4), HasSubstr("expects integer"));
  EXPECT_THAT(mismatch_reason(true, oid::kInt4), HasSubstr("got boolean true"));
}

TEST(SqlProjectionConversion, binds_any_json_number_or_numeric_string_exactly_to_numeric_and_floats) {
  EXPECT_EQ(bound_text(1.5, oid::kNumeric), "1.5");
  EXPECT_EQ(bound_text(json(18446744073709551615ULL), oid::kNumeric), "18446744073709551615");
  EXPECT_EQ(bound_text(json(-9223372036854775807LL - 1), oid::kNumeric), "-9223372036854775808");
  EXPECT_EQ(bound_text("12345678901234567890.123456789", oid::kNumeric), "12345678901234567890.123456789");
  EXPECT_EQ(bound_text(0.1, oid::kFloat8), "0.1");
  EXPECT_EQ(bound_text(3, oid::kFloat4), "3");
  for (const char* text : {"-1", "+.5", "1.", "1e-3", "2.5E+10", "NaN", "Infinity", "-infinity"}) {
    EXPECT_EQ(bound_text(text, oid::kNumeric), text);
  }
  for (const char* text : {"", ".", "1e", "abc", "1.2.3", "1 "}) {
    EXPECT_THAT(mismatch_reason(text, oid::kNumeric), HasSubstr("expects numeric")) << text;
  }
  EXPECT_THAT(mismatch_reason(json::array({1}), oid::kFloat8),
              HasSubstr("expects double precision, got array [1]"));
}

TEST(SqlProjectionConversion, binds_the_compact_json_text_of_any_value_to_json_and_jsonb) {
  EXPECT_EQ(bound_text({{"b", 1}, {"a", {true, nullptr}}}, oid::kJsonb), R"({"a":[true,null],"b":1})");
  EXPECT_EQ(bound_text("x", oid::kJsonb), R"("x")");
  EXPECT_EQ(bound_text(5, oid::kJson), "5");
  EXPECT_EQ(bound_text(false, oid::kJson), "false");
}

TEST(SqlProjectionConversion, builds_escaped_array_literals_for_text_arrays) {
  EXPECT_EQ(bound_text({"a", "b\"c", "d\\e", nullptr, "NULL", "", "x,y {z}"}, oid::kTextArray),
            R"({"a","b\"c","d\\e",NULL,"NULL","","x,y {z}"})");
  EXPECT_EQ(bound_text(json::array(), oid::kVarcharArray), "{}");
  EXPECT_EQ(bound_text({1, true}, oid::kTextArray), R"({"1","true"})");
  EXPECT_EQ(bound_text({"0b9e1b5c-3a6c-4f0e-9a55-7d3c8a1e2f00"}, oid::kUuidArray),
            R"({"0b9e1b5c-3a6c-4f0e-9a55-7d3c8a1e2f00"})");
  EXPECT_THAT(mismatch_reason("a", oid::kTextArray), HasSubstr("expects text[], got string \"a\""));
  EXPECT_THAT(mismatch_reason(json::array({"a", {{"k", 1}}}), oid::kTextArray),
              HasSubstr("expects text[], got object {\"k\":1} at element [1]"));
}

TEST(SqlProjectionConversion, applies_the_element_rules_inside_typed_arrays) {
  EXPECT_EQ(bound_text({1, "2", nullptr}, oid::kInt8Array), R"({"1","2",NULL})");
  EXPECT_EQ(bound_text({{1, 2}, {3, 4}}, oid::kInt4Array), R"({{"1","2"},{"3","4"}})");
  EXPECT_EQ(bound_text({1.5, "2.25"}, oid::kNumericArray), R"({"1.5","2.25"})");
  EXPECT_EQ(bound_text({true, "f"}, oid::kBoolArray), R"({"true","f"})");
  EXPECT_THAT(mismatch_reason({1, 2.5}, oid::kInt8Array),
              HasSubstr("expects bigint[], got number 2.5 at element [1]"));
  EXPECT_THAT(mismatch_reason({{1}, {"x"}}, oid::kInt4Array), HasSubstr("at element [1][0]"));
}

TEST(SqlProjectionConversion, dumps_each_element_of_a_jsonb_array) {
  EXPECT_EQ(bound_text({{{"a", 1}}, "x", {1, 2}, nullptr}, oid::kJsonbArray),
            R"({"{\"a\":1}","\"x\"","[1,2]",NULL})");
}

TEST(SqlProjectionConversion, passes_strings_as_they_are_and_scalars_as_json_text_to_other_types) {
  EXPECT_EQ(bound_text("hello 'world'", oid::kText), "hello 'world'");
  EXPECT_EQ(bound_text("2026-11-22T10:00:00.123Z", oid::kTimestamptz), "2026-11-22T10:00:00.123Z");
  EXPECT_EQ(bound_text("0/16B3800", oid::kPgLsn), "0/16B3800");
  EXPECT_EQ(bound_text(42, oid::kVarchar), "42");
  EXPECT_EQ(bound_text(1.25, oid::kText), "1.25");
  EXPECT_EQ(bound_text(true, oid::kUnknown), "true");
  EXPECT_EQ(bound_text("1 day", 1186), "1 day");  // interval: not special-cased
  EXPECT_THAT(mismatch_reason({{"a", 1}}, oid::kText), HasSubstr("expects text, got object"));
  EXPECT_THAT(mismatch_reason({1}, 1186), HasSubstr("expects type oid 1186, got array [1]"));
}

TEST(SqlProjectionConversion, refuses_a_string_with_a_nul_that_libpq_would_cut_short) {
  EXPECT_THAT(mismatch_reason(std::string("a\0b", 3), oid::kText), HasSubstr("NUL"));
}

TEST(SqlProjectionConversion, decodes_the_producers_base64_into_bytea_hex) {
  EXPECT_EQ(bound_text("3q2+7w==", oid::kBytea), "\\xdeadbeef");
  EXPECT_EQ(bound_text("AAEC", oid::kBytea), "\\x000102");
  EXPECT_EQ(bound_text("AAE", oid::kBytea), "\\x0001");
  EXPECT_EQ(bound_text("", oid::kBytea), "\\x");
  EXPECT_EQ(bound_text("\\x0a0b", oid::kBytea), "\\x0a0b");
  EXPECT_THAT(mismatch_reason("not base64!", oid::kBytea), HasSubstr("expects bytea"));
  EXPECT_THAT(mismatch_reason(12, oid::kBytea), HasSubstr("expects bytea"));
}

}  // namespace
}  // namespace syncline::pg_projector

namespace syncline::pg_projector {
namespace {

// --- The {{schema}} placeholder ---

TEST(SqlSchemaPlaceholder, is_replaced_everywhere_by_the_quoted_schema) {
  EXPECT_EQ(expand_schema_placeholder("INSERT INTO {{schema}}.t SELECT * FROM {{schema}}.u", "rm__resync"),
            "INSERT INTO \"rm__resync\".t SELECT * FROM \"rm__resync\".u");
  EXPECT_EQ(expand_schema_placeholder("SELECT 1", ""), "SELECT 1");
  EXPECT_EQ(expand_schema_placeholder("{{schema}}", "a\"b"), "\"a\"\"b\"");
}

TEST(SqlSchemaPlaceholder, without_a_schema_is_an_error) {
  EXPECT_THROW(expand_schema_placeholder("UPDATE {{schema}}.t SET n = 1", ""), std::invalid_argument);
}

TEST(SqlSchemaPlaceholder, is_detected_in_the_setup_or_any_statement) {
  SqlProjectionConfig config;
  config.handlers = {{{"A"}, {"SELECT 1", "UPDATE {{schema}}.t SET n = n + 1"}}};
  EXPECT_TRUE(uses_schema_placeholder(config));
  config.handlers = {{{"A"}, {"SELECT 1"}}};
  EXPECT_FALSE(uses_schema_placeholder(config));
  config.setup = "CREATE TABLE {{schema}}.t (n int)";
  EXPECT_TRUE(uses_schema_placeholder(config));
}

TEST(SqlSchemaPlaceholder, compiles_the_same_projection_against_another_schema) {
  SqlProjectionConfig config;
  config.name = "counters";
  config.topics = {"app.events.counter"};
  config.schema = "counters__resync";
  config.handlers = {{{"Incremented"}, {"INSERT INTO {{schema}}.c (id) VALUES (:aggregate_id)"}}};
  SqlProjection projection(config);
  FakeSession session;
  session.types["INSERT INTO \"counters__resync\".c (id) VALUES ($1)"] = {oid::kText};
  const auto sink = plan_batch(projection, session, {envelope("Incremented", json::object())});
  ASSERT_EQ(sink.added.size(), 1u) << (sink.rejected.empty() ? "" : sink.rejected.begin()->second);
  EXPECT_EQ(sink.added[0].sql, "INSERT INTO \"counters__resync\".c (id) VALUES ($1)");
}

TEST(SqlSchemaPlaceholder, a_projection_writing_it_without_a_schema_is_refused_naming_the_projection) {
  SqlProjectionConfig config;
  config.name = "counters";
  config.topics = {"app.events.counter"};
  config.handlers = {{{"Incremented"}, {"UPDATE {{schema}}.c SET n = n + 1"}}};
  try {
    SqlProjection projection(config);
    ADD_FAILURE() << "constructed";
  } catch (const std::invalid_argument& error) {
    EXPECT_THAT(error.what(), HasSubstr("projection counters"));
    EXPECT_THAT(error.what(), HasSubstr("'schema'"));
  }
}

}  // namespace
}  // namespace syncline::pg_projector
