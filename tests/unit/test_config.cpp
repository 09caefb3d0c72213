// Unit tests of config loading: ${ENV} substitution, defaults, validation errors with key and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/config.hpp"
#include "syncline_source_dir.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;

LoadOptions with_env(std::map<std::string, std::string> variables) {
  LoadOptions options;
  options.env = [variables = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    const auto it = variables.find(name);
    if (it == variables.end()) return std::nullopt;
    return it->second;
  };
  return options;
}

// The message of the ConfigError that loading `yaml` throws; fails the test if it loads.
std::string load_error(const std::string& yaml, const LoadOptions& options = with_env({})) {
  try {
    config_from_string(yaml, "test.yaml", options);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
  return {};
}

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& variables) {
    for (const auto& [name, value] : variables) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old != nullptr ? std::optional<std::string>(old) : std::nullopt;
      ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST(Config, a_minimal_file_gets_sane_defaults) {
  const auto config =
      config_from_string("kafka:\n  bootstrap_servers: localhost:9092\n", "min.yaml", with_env({}));
  EXPECT_EQ(config.source, "min.yaml");
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.log.format, log::Format::text);
  EXPECT_EQ(config.kafka.bootstrap_servers, "localhost:9092");
  EXPECT_EQ(config.kafka.client_id, "syncline");
  EXPECT_EQ(config.kafka.topic_prefix, "syncline");
  EXPECT_TRUE(config.kafka.properties.empty());
  EXPECT_FALSE(config.write_db.has_value());
  EXPECT_FALSE(config.read_db.has_value());
  EXPECT_FALSE(config.search.has_value());
  EXPECT_EQ(config.producer.http.host, "127.0.0.1");
  EXPECT_EQ(config.producer.http.port, 9631);
  EXPECT_EQ(config.pg_projector.http.port, 9632);
  EXPECT_EQ(config.es_projector.http.port, 9633);
  EXPECT_EQ(config.ctl.http.port, 9634);
}

TEST(Config, a_missing_section_a_binary_needs_is_an_error_naming_it) {
  const auto config = config_from_string("kafka: {bootstrap_servers: k:9092}\n", "min.yaml", with_env({}));
  EXPECT_THROW(
      {
        try {
          config.require_write_db();
        } catch (const ConfigError& e) {
          EXPECT_THAT(e.what(), HasSubstr("min.yaml"));
          EXPECT_THAT(e.what(), HasSubstr("write_db"));
          throw;
        }
      },
      ConfigError);
  EXPECT_THROW(config.require_read_db(), ConfigError);
  EXPECT_THROW(config.require_search(), ConfigError);
}

TEST(Config, search_defaults_apply_when_the_section_is_present) {
  const auto config = config_from_string(
      "kafka: {bootstrap_servers: k:9092}\nsearch: {url: 'http://es:9200'}\n", "t.yaml", with_env({}));
  const auto& search = config.require_search();
  EXPECT_EQ(search.url, "http://es:9200");
  EXPECT_TRUE(search.verify_tls);
  EXPECT_EQ(search.request_timeout, std::chrono::milliseconds(30'000));
  EXPECT_TRUE(search.username.empty());
}

TEST(Config, substitutes_environment_variables_and_defaults) {
  const auto config = config_from_string(
      R"(kafka:
  bootstrap_servers: ${BOOTSTRAP}
  client_id: ${CLIENT:-fallback}
  topic_prefix: ${EMPTY:-from-default}
write_db:
  dsn: "host=${HOST} password=$$ecret"
producer:
  http:
    port: ${PORT}
)",
      "t.yaml",
      with_env({{"BOOTSTRAP", "k1:9092,k2:9092"}, {"HOST", "db"}, {"EMPTY", ""}, {"PORT", "8080"}}));
  EXPECT_EQ(config.kafka.bootstrap_servers, "k1:9092,k2:9092");
  EXPECT_EQ(config.kafka.client_id, "fallback");
  EXPECT_EQ(config.kafka.topic_prefix, "from-default");
  EXPECT_EQ(config.require_write_db().dsn, "host=db password=$ecret");
  // A plain scalar is typed after substitution, so a port from the environment is an integer.
  EXPECT_EQ(config.producer.http.port, 8080);
}

TEST(Config, a_substituted_secret_may_contain_yaml_syntax_without_breaking_the_file) {
  const auto config = config_from_string(
      "kafka:\n  bootstrap_servers: ${BOOTSTRAP}\nwrite_db:\n  dsn: '${DSN}'\n", "t.yaml",
      with_env({{"BOOTSTRAP", "a: b # not a comment"}, {"DSN", "password='p#: \"w' host=db"}}));
  EXPECT_EQ(config.kafka.bootstrap_servers, "a: b # not a comment");
  EXPECT_EQ(config.require_write_db().dsn, "password='p#: \"w' host=db");
}

TEST(Config, a_variable_inside_a_flow_mapping_gets_a_hint_to_use_block_style) {
  const auto error =
      load_error("kafka: {bootstrap_servers: ${BOOTSTRAP}}\n", with_env({{"BOOTSTRAP", "k:1"}}));
  EXPECT_THAT(error, HasSubstr("test.yaml:1: invalid YAML"));
  EXPECT_THAT(error, HasSubstr("block style"));
}

TEST(Config, variables_in_comments_are_ignored) {
  EXPECT_NO_THROW(
      config_from_string("# uses ${UNSET_IN_COMMENT}\nkafka: {bootstrap_servers: k:1}  # ${ALSO_UNSET}\n",
                         "t.yaml", with_env({})));
}

TEST(Config, an_unset_variable_without_default_is_an_error_naming_variable_file_and_line) {
  const auto error = load_error("log:\n  level: info\nkafka:\n  bootstrap_servers: ${SYNCLINE_NOT_SET}\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:4: kafka.bootstrap_servers:"));
  EXPECT_THAT(error, HasSubstr("SYNCLINE_NOT_SET"));
  EXPECT_THAT(error, HasSubstr("not set"));
}

TEST(Config, an_unknown_key_is_an_error_naming_the_key_and_its_line) {
  const auto error = load_error("kafka:\n  bootstrap_servers: k:9092\n  bootstrap_server: typo:9092\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:3: kafka.bootstrap_server: unknown key"));
  // Listing the known keys makes the typo obvious.
  EXPECT_THAT(error, HasSubstr("bootstrap_servers"));
}

TEST(Config, a_delete_horizon_shorter_than_the_snapshot_age_is_an_error_naming_both_keys) {
  const auto pg = load_error(
      "kafka: {bootstrap_servers: k:9092}\nproducer:\n  snapshot_max_age_ms: 600000\npg_projector:\n  mirror:\n"
      "    tables: [public.users]\n    tombstone_retention_ms: 60000\n");
  EXPECT_THAT(pg, HasSubstr("pg_projector.mirror.tombstone_retention_ms (60000) is below "
                            "producer.snapshot_max_age_ms (600000)"));
  const auto es = load_error("kafka: {bootstrap_servers: k:9092}\nes_projector:\n  delete_retention_ms: 300000\n");
  EXPECT_THAT(es, HasSubstr("es_projector.delete_retention_ms (300000) is below producer.snapshot_max_age_ms (600000)"));
}

TEST(Config, an_unknown_section_is_an_error_too) {
  const auto error = load_error("kafka: {bootstrap_servers: k:9092}\n\nproducr:\n  http: {port: 1}\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:3: producr: unknown key"));
}

TEST(Config, a_value_of_the_wrong_type_is_an_error_naming_key_line_and_expected_type) {
  const auto error = load_error("kafka: {bootstrap_servers: k:9092}\nproducer:\n  http:\n    port: eighty\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:4: producer.http.port: expected integer, got string"));
}

TEST(Config, a_quoted_number_stays_a_string_and_is_rejected_where_an_integer_is_required) {
  const auto error =
      load_error("kafka: {bootstrap_servers: k:9092}\nproducer:\n  http:\n    port: \"8080\"\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:4: producer.http.port: expected integer, got string"));
}

TEST(Config, out_of_range_and_enum_violations_name_key_and_line) {
  const auto error =
      load_error("log:\n  level: verbose\nkafka: {bootstrap_servers: k:9092}\nctl:\n  http: {port: 70000}\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:2: log.level: must be one of: trace, debug, info"));
  EXPECT_THAT(error, HasSubstr("test.yaml:5: ctl.http.port: must be at most 65535"));
}

TEST(Config, a_missing_required_key_is_reported_at_its_section) {
  const auto error = load_error("kafka: {bootstrap_servers: k:9092}\n\nwrite_db:\n  dns: typo\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:3: write_db.dsn: missing (required)"));
  EXPECT_THAT(error, HasSubstr("test.yaml:4: write_db.dns: unknown key"));
}

TEST(Config, a_file_without_kafka_section_is_rejected) {
  EXPECT_THAT(load_error("log: {level: info}\n"), HasSubstr("test.yaml:1: kafka: missing (required)"));
  EXPECT_THAT(load_error(""), HasSubstr("expected object, got null"));
}

TEST(Config, a_duplicate_key_is_an_error_instead_of_a_silent_override) {
  EXPECT_THAT(load_error("kafka:\n  bootstrap_servers: a:1\n  bootstrap_servers: b:1\n"),
              HasSubstr("test.yaml:3: kafka.bootstrap_servers: duplicate key"));
}

TEST(Config, invalid_yaml_is_reported_with_its_line) {
  EXPECT_THAT(load_error("kafka:\n  bootstrap_servers: [unclosed\nlog: {}\n"), HasSubstr("invalid YAML"));
}

TEST(Config, librdkafka_properties_written_as_numbers_or_booleans_become_strings) {
  const auto config = config_from_string(
      "kafka:\n  bootstrap_servers: k:9092\n  properties:\n    linger.ms: 5\n    enable.idempotence: true\n"
      "    compression.type: zstd\n",
      "t.yaml", with_env({}));
  EXPECT_EQ(config.kafka.properties.at("linger.ms"), "5");
  EXPECT_EQ(config.kafka.properties.at("enable.idempotence"), "true");
  EXPECT_EQ(config.kafka.properties.at("compression.type"), "zstd");
}

TEST(Config, a_full_valid_file_fills_every_field) {
  const auto config = config_from_string(R"(log:
  level: debug
  format: json
kafka:
  bootstrap_servers: k1:9092
  client_id: me
  topic_prefix: app
  properties: {security.protocol: SASL_SSL}
write_db: {dsn: "postgresql://w@db/write"}
read_db: {dsn: "host=db dbname=read"}
search:
  url: https://es:9200
  username: elastic
  password: pw
  api_key: ""
  ca_file: /etc/ca.pem
  verify_tls: false
  request_timeout_ms: 5000
producer: {http: {host: 0.0.0.0, port: 1}}
pg_projector: {http: {port: 2}}
es_projector: {http: {port: 3}}
ctl: {http: {port: 0}}
)",
                                         "full.yaml", with_env({}));
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.format, log::Format::json);
  EXPECT_EQ(config.kafka.client_id, "me");
  EXPECT_EQ(config.kafka.topic_prefix, "app");
  EXPECT_EQ(config.kafka.properties.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(config.require_write_db().dsn, "postgresql://w@db/write");
  EXPECT_EQ(config.require_read_db().dsn, "host=db dbname=read");
  const auto& search = config.require_search();
  EXPECT_EQ(search.url, "https://es:9200");
  EXPECT_EQ(search.username, "elastic");
  EXPECT_EQ(search.password, "pw");
  EXPECT_EQ(search.ca_file, "/etc/ca.pem");
  EXPECT_FALSE(search.verify_tls);
  EXPECT_EQ(search.request_timeout, std::chrono::milliseconds(5000));
  EXPECT_EQ(config.producer.http.host, "0.0.0.0");
  EXPECT_EQ(config.producer.http.port, 1);
  EXPECT_EQ(config.pg_projector.http.port, 2);
  EXPECT_EQ(config.es_projector.http.port, 3);
  EXPECT_EQ(config.ctl.http.port, 0);
}

TEST(Config, reports_every_problem_not_just_the_first) {
  const auto error = load_error("kafka: {bootstrap_servers: k:9092, extra: 1}\nsearch: {url: 42}\n");
  EXPECT_THAT(error, HasSubstr("test.yaml:1: kafka.extra: unknown key"));
  EXPECT_THAT(error, HasSubstr("test.yaml:2: search.url: expected string, got integer"));
}

TEST(Config, the_example_file_loads_with_the_stack_variables) {
  const ScopedEnv env(
      {{"SYNCLINE_WRITE_PG_DSN", "postgresql://syncline:syncline-local@127.0.0.1:15432/syncline_write"},
       {"SYNCLINE_READ_PG_DSN", "postgresql://syncline:syncline-local@127.0.0.1:15433/syncline_read"},
       {"SYNCLINE_KAFKA_BOOTSTRAP", "127.0.0.1:19092"},
       {"SYNCLINE_SEARCH_URL", "http://127.0.0.1:19200"}});
  const auto config =
      load_config(std::filesystem::path(SYNCLINE_SOURCE_DIR) / "examples/syncline.example.yaml");
  EXPECT_EQ(config.kafka.bootstrap_servers, "127.0.0.1:19092");
  EXPECT_EQ(config.require_write_db().dsn,
            "postgresql://syncline:syncline-local@127.0.0.1:15432/syncline_write");
  EXPECT_EQ(config.require_read_db().dsn,
            "postgresql://syncline:syncline-local@127.0.0.1:15433/syncline_read");
  EXPECT_EQ(config.require_search().url, "http://127.0.0.1:19200");
  EXPECT_EQ(config.kafka.properties.at("socket.keepalive.enable"), "true");
}

TEST(Config, pg_projector_projections_resolve_aggregate_types_to_topics_and_default_the_dead_letter_topic) {
  const auto config = config_from_string(
      "kafka: {bootstrap_servers: 'k:9092', topic_prefix: app}\n"
      "pg_projector:\n"
      "  mirror: {tables: [public.users, billing.invoices]}\n"
      "  projections:\n"
      "    - name: summary\n"
      "      aggregate_types: [conversation, user]\n"
      "      topics: other.topic\n"
      "      setup: CREATE TABLE IF NOT EXISTS s (id text)\n"
      "      events:\n"
      "        - types: MessageSent\n"
      "          sql: [\"INSERT INTO s VALUES (:aggregate_id)\", \"SELECT 1\"]\n"
      "        - types: [A, B]\n"
      "          sql: SELECT :payload.x\n",
      "test.yaml", with_env({}));
  const auto& projector = config.pg_projector;
  EXPECT_EQ(projector.group_id, "syncline-pg-projector");
  EXPECT_EQ(projector.dead_letter_topic, "app.dlq.pg-projector");
  ASSERT_TRUE(projector.mirror.has_value());
  EXPECT_EQ(projector.mirror->schema, "mirror");
  EXPECT_EQ(projector.mirror->tables, (std::vector<TableName>{{"public", "users"}, {"billing", "invoices"}}));
  ASSERT_EQ(projector.projections.size(), 1u);
  const auto& projection = projector.projections[0];
  EXPECT_EQ(projection.topics, (std::vector<std::string>{"app.events.conversation", "app.events.user", "other.topic"}));
  ASSERT_EQ(projection.handlers.size(), 2u);
  EXPECT_EQ(projection.handlers[0].types, std::vector<std::string>{"MessageSent"});
  EXPECT_EQ(projection.handlers[0].statements.size(), 2u);
  EXPECT_EQ(projection.handlers[1].types, (std::vector<std::string>{"A", "B"}));
}

TEST(Config, pg_projector_names_used_twice_and_colliding_mirror_tables_are_errors) {
  const auto error = load_error(
      "kafka: {bootstrap_servers: 'k:9092'}\n"
      "pg_projector:\n"
      "  mirror: {tables: [public.users, audit.users]}\n"
      "  projections:\n"
      "    - {name: p, topics: t, events: [{types: A, sql: SELECT 1}]}\n"
      "    - {name: p, topics: t, events: [{types: A, sql: SELECT 1}]}\n");
  EXPECT_THAT(error, HasSubstr("mirrored as mirror.users"));
  EXPECT_THAT(error, HasSubstr("the name 'p' is used twice"));
}

TEST(Config, a_sql_projection_may_name_its_schema_and_write_the_schema_placeholder) {
  const auto config = config_from_string(
      "kafka: {bootstrap_servers: 'k:9092', topic_prefix: app}\n"
      "pg_projector:\n"
      "  projections:\n"
      "    - name: summary\n"
      "      schema: read_models\n"
      "      aggregate_types: conversation\n"
      "      setup: CREATE TABLE IF NOT EXISTS {{schema}}.s (id text)\n"
      "      events:\n"
      "        - types: MessageSent\n"
      "          sql: INSERT INTO {{schema}}.s VALUES (:aggregate_id)\n",
      "test.yaml", with_env({}));
  ASSERT_EQ(config.pg_projector.projections.size(), 1u);
  const auto& projection = config.pg_projector.projections[0];
  EXPECT_EQ(projection.schema, "read_models");
  // Kept as written: the projection replaces the placeholder when it compiles its SQL.
  EXPECT_EQ(projection.setup, "CREATE TABLE IF NOT EXISTS {{schema}}.s (id text)");
}

TEST(Config, the_schema_placeholder_without_a_schema_key_is_an_error_naming_the_projection) {
  EXPECT_THAT(load_error("kafka: {bootstrap_servers: 'k:9092'}\n"
                         "pg_projector:\n"
                         "  projections:\n"
                         "    - name: counters\n"
                         "      topics: t\n"
                         "      events: [{types: A, sql: 'UPDATE {{schema}}.c SET n = n + 1'}]\n"),
              HasSubstr("'counters' writes {{schema}} but has no 'schema' key"));
  EXPECT_THAT(load_error("kafka: {bootstrap_servers: 'k:9092'}\n"
                         "pg_projector: {projections: [{name: p, schema: Bad-Name, topics: t, "
                         "events: [{types: A, sql: SELECT 1}]}]}\n"),
              HasSubstr("schema"));
}

TEST(Config, a_pg_projection_without_topics_or_events_is_rejected) {
  EXPECT_THAT(load_error("kafka: {bootstrap_servers: 'k:9092'}\n"
                         "pg_projector: {projections: [{name: p, events: [{types: A, sql: SELECT 1}]}]}\n"),
              HasSubstr("pg_projector.projections[0]"));
  EXPECT_THAT(load_error("kafka: {bootstrap_servers: 'k:9092'}\n"
                         "pg_projector: {projections: [{name: p, topics: t}]}\n"),
              HasSubstr("events"));
}

TEST(Config, es_projector_mirror_and_mappings_are_read_and_every_written_index_gets_a_definition) {
  const auto config = config_from_string(
      "kafka: {bootstrap_servers: 'k:9092', topic_prefix: app}\n"
      "es_projector:\n"
      "  indices: [{name: messages, mappings: {properties: {body: {type: text}}}}]\n"
      "  mirror: [{table: public.users}]\n"
      "  mappings:\n"
      "    - index: messages\n"
      "      aggregate_types: conversation\n"
      "      events:\n"
      "        - {types: MessageSent, id: payload.id, fields: {body: payload.text}}\n"
      "        - {types: [MessageDeleted], action: delete, id: payload.id}\n",
      "test.yaml", with_env({}));
  const auto& projector = config.es_projector;
  EXPECT_EQ(projector.dead_letter_topic, "app.dlq.es-projector");
  ASSERT_EQ(projector.mirror.size(), 1u);
  EXPECT_EQ(projector.mirror[0].index, "users");  // default: the table name
  ASSERT_EQ(projector.mappings.size(), 1u);
  EXPECT_EQ(projector.mappings[0].topics, std::vector<std::string>{"app.events.conversation"});
  ASSERT_EQ(projector.mappings[0].events.size(), 2u);
  EXPECT_EQ(projector.mappings[0].events[0].fields,
            (std::vector<std::pair<std::string, std::string>>{{"body", "payload.text"}}));
  EXPECT_EQ(projector.mappings[0].events[1].action, EsAction::remove);
  ASSERT_EQ(projector.indices.size(), 2u);
  EXPECT_EQ(projector.indices[0].name, "messages");
  EXPECT_EQ(projector.indices[0].mappings_json, R"({"properties":{"body":{"type":"text"}}})");
  EXPECT_EQ(projector.indices[1].name, "users");
}

TEST(Config, load_config_names_a_file_it_cannot_read) {
  try {
    load_config("/nonexistent/syncline.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/syncline.yaml"));
  }
}

TEST(Config, load_config_reports_problems_with_the_file_name) {
  const auto file = std::filesystem::path(::testing::TempDir()) / "syncline_test_config.yaml";
  std::ofstream(file) << "kafka:\n  bootstrap_servers: k:1\n  nope: 1\n";
  try {
    load_config(file, with_env({}));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr(file.string() + ":3: kafka.nope: unknown key"));
  }
  std::filesystem::remove(file);
}

TEST(ExpandEnv, replaces_variables_defaults_and_escapes) {
  const auto env = with_env({{"A", "1"}, {"EMPTY", ""}}).env;
  EXPECT_EQ(expand_env("x${A}y", env), "x1y");
  EXPECT_EQ(expand_env("${UNSET:-d e f}", env), "d e f");
  EXPECT_EQ(expand_env("${EMPTY:-d}", env), "d");
  EXPECT_EQ(expand_env("${EMPTY}", env), "");
  EXPECT_EQ(expand_env("$${A}", env), "${A}");
  EXPECT_EQ(expand_env("cost: 5$ or $5", env), "cost: 5$ or $5");
}

TEST(ExpandEnv, rejects_unset_variables_and_malformed_references) {
  const auto env = with_env({}).env;
  EXPECT_THROW(expand_env("${UNSET}", env), std::invalid_argument);
  EXPECT_THROW(expand_env("${UNCLOSED", env), std::invalid_argument);
  EXPECT_THROW(expand_env("${}", env), std::invalid_argument);
  EXPECT_THROW(expand_env("${1BAD}", env), std::invalid_argument);
}

}  // namespace
}  // namespace syncline
