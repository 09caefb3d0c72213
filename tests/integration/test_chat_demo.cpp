// The chat demo (examples/chat) end to end against the real stack: the shipped schema.sql and
// syncline.yaml (with this test's unique names substituted), the real producer, both projectors and
// syncline-chat-workload; then every read model is compared with the write database and
// syncline-ctl verify must find nothing.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/http_client.hpp"
#include "common/kafka.hpp"
#include "common/pg.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Rows = std::map<std::string, std::string>;  // key -> the row's columns as text

// Replaces every `from` in `text`; fails the test when there is none, so a change of the example
// config that this test no longer adapts is noticed instead of running against shared names.
void substitute(std::string& text, const std::string& from, const std::string& to) {
  std::size_t count = 0;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()), ++count) {
    text.replace(at, from.size(), to);
  }
  if (count == 0) ADD_FAILURE() << "examples/chat/syncline.yaml no longer contains '" << from << "'";
}

Rows rows_of(pg::PgConnection& db, const std::string& sql) {
  Rows rows;
  const auto result = db.exec(sql);
  for (int row = 0; row < result.rows(); ++row) {
    std::string columns;
    for (int column = 1; column < result.columns(); ++column) {
      columns += (column > 1 ? " | " : "") + (result.is_null(row, column) ? std::string("NULL") : std::string(result.value(row, column)));
    }
    rows[std::string(result.value(row, 0))] = columns;
  }
  return rows;
}

// "" when equal, else the first differences (for the failure message).
std::string differences(const Rows& expected, const Rows& actual, const std::string& what) {
  std::string out;
  int shown = 0;
  for (const auto& [key, row] : expected) {
    const auto it = actual.find(key);
    if (it == actual.end()) {
      if (shown++ < 5) out += fmt::format("  {} {}: missing, expected [{}]\n", what, key, row);
    } else if (it->second != row) {
      if (shown++ < 5) out += fmt::format("  {} {}: [{}], expected [{}]\n", what, key, it->second, row);
    }
  }
  for (const auto& [key, row] : actual) {
    if (!expected.contains(key) && shown++ < 5) out += fmt::format("  {} {}: extra [{}]\n", what, key, row);
  }
  if (shown > 0) out = fmt::format("{}: {} difference(s) in {} expected rows\n", what, shown, expected.size()) + out;
  return out;
}

// The sum of the dead-letter counters a binary reports on /metrics (-1 when it does not answer).
double dead_letters(int port) {
  http::HttpClient client{http::ClientOptions{.base_url = fmt::format("http://127.0.0.1:{}", port)}};
  const auto response = client.get("/metrics");
  if (response.status != 200) return -1;
  double sum = 0;
  std::istringstream lines(response.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto name = line.substr(0, line.find_first_of("{ "));
    if (name.find("dead_letter") != std::string::npos && name.ends_with("_total")) {
      sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return sum;
}

class ChatDemo : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_write_pg());
    ASSERT_TRUE(require_read_pg());
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_search());
    name_ = unique_name("chat");
    const auto& env = stack_env();
    // The example config reads the stack's addresses from these variables, as scripts/stack sets them.
    setenv("SYNCLINE_WRITE_PG_DSN", env.write_pg_dsn.c_str(), 0);
    setenv("SYNCLINE_READ_PG_DSN", env.read_pg_dsn.c_str(), 0);
    setenv("SYNCLINE_KAFKA_BOOTSTRAP", env.kafka_bootstrap.c_str(), 0);
    setenv("SYNCLINE_SEARCH_URL", env.search_url.c_str(), 0);
    write_ = std::make_unique<pg::PgConnection>(env.write_pg_dsn);
    read_ = std::make_unique<pg::PgConnection>(env.read_pg_dsn);
    // Timestamps compared as text: the same zone on both sides.
    write_->exec("SET TimeZone = 'UTC'");
    read_->exec("SET TimeZone = 'UTC'");
    write_config();
    created_ = true;

    ChildProcess setup(SYNCLINE_CHAT_WORKLOAD_BIN, {"--config", config_path_, "--schema", name_, "--setup-only"},
                       fmt::format("/tmp/{}.setup.log", name_));
    setup.start();
    ASSERT_EQ(setup.wait(60s), 0) << setup.log_tail();

    producer_ = std::make_unique<ChildProcess>(SYNCLINE_PRODUCER_BIN, std::vector<std::string>{"--config", config_path_},
                                               fmt::format("/tmp/{}.producer.log", name_));
    pg_ = std::make_unique<ChildProcess>(SYNCLINE_PG_PROJECTOR_BIN, std::vector<std::string>{"--config", config_path_},
                                         fmt::format("/tmp/{}.pg.log", name_));
    es_ = std::make_unique<ChildProcess>(SYNCLINE_ES_PROJECTOR_BIN, std::vector<std::string>{"--config", config_path_},
                                         fmt::format("/tmp/{}.es.log", name_));
    for (auto* process : {producer_.get(), pg_.get(), es_.get()}) process->start();
    for (const auto& [process, port] : {std::pair{producer_.get(), producer_port_}, std::pair{pg_.get(), pg_port_},
                                        std::pair{es_.get(), es_port_}}) {
      ASSERT_TRUE(poll_until([&] { return http_get_status(port, "/readyz") == 200; }, 60s,
                             fmt::format("{} ready", process->log_path())))
          << process->log_tail();
    }
  }

  void TearDown() override {
    producer_.reset();
    pg_.reset();
    es_.reset();
    if (!created_) return;
    try {
      pg::PgConnection write(stack_env().write_pg_dsn);
      (void)poll_until(
          [&] {
            return write.exec("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active",
                              {pg::Param(name_)})
                       .get(0, 0) == "0";
          },
          30s, "slot inactive");
      write.exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                 {pg::Param(name_)});
      write.exec(fmt::format("DROP PUBLICATION IF EXISTS {}", name_));
      write.exec(fmt::format("DROP TABLE IF EXISTS public.{}_outbox", name_));
      write.exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", name_));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "clean-up of the write database failed: " << e.what();
    }
    try {
      pg::PgConnection read(stack_env().read_pg_dsn);
      for (const char* suffix : {"_mirror", "_summary", "_activity", "_summary__resync", "_activity__resync"}) {
        read.exec(fmt::format("DROP SCHEMA IF EXISTS {}{} CASCADE", name_, suffix));
      }
      read.exec("DELETE FROM syncline.offsets WHERE consumer_group IN ($1, $2)",
                {pg::Param(name_ + "_pg"), pg::Param(name_ + "_es")});
      read.exec("DELETE FROM syncline.mirror_tombstones WHERE mirror_schema = $1", {pg::Param(name_ + "_mirror")});
    } catch (const std::exception& e) {
      ADD_FAILURE() << "clean-up of the read database failed: " << e.what();
    }
    for (const char* index : {"_messages", "_users"}) {
      for (const char* version : {"_v1", "_v2", "_v3"}) search_.del(fmt::format("/{}{}{}", name_, index, version));
    }
    try {
      kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
      std::vector<std::string> ours;
      for (const auto& topic : admin.list_topics(10s)) {
        if (topic.name.rfind(name_ + ".", 0) == 0) ours.push_back(topic.name);
      }
      if (!ours.empty()) admin.delete_topics(ours, 30s);
    } catch (const std::exception&) {
      // Topics of a unique prefix left behind harm no other test.
    }
    std::remove(config_path_.c_str());
    if (!HasFailure()) {  // the logs are kept for a failure's post-mortem only
      for (const char* log : {"setup", "producer", "pg", "es", "workload"}) {
        std::remove(fmt::format("/tmp/{}.{}.log", name_, log).c_str());
      }
    }
  }

  // examples/chat/syncline.yaml with this test's names and ports.
  void write_config() {
    std::ifstream in(std::string(SYNCLINE_SOURCE_DIR) + "/examples/chat/syncline.yaml");
    ASSERT_TRUE(in) << "examples/chat/syncline.yaml";
    std::stringstream text;
    text << in.rdbuf();
    auto yaml = text.str();
    producer_port_ = free_port();
    pg_port_ = free_port();
    es_port_ = free_port();
    substitute(yaml, "topic_prefix: chat", "topic_prefix: " + name_);
    substitute(yaml, "slot: chat\n", "slot: " + name_ + "\n");
    substitute(yaml, "publication: chat\n", "publication: " + name_ + "\n");
    substitute(yaml, "message_prefix: chat", "message_prefix: " + name_);
    substitute(yaml, "outbox_table: public.outbox", fmt::format("outbox_table: public.{}_outbox", name_));
    substitute(yaml, "chat.users", name_ + ".users");
    substitute(yaml, "chat_mirror", name_ + "_mirror");
    substitute(yaml, "schema: chat_summary", fmt::format("schema: {}_summary", name_));
    substitute(yaml, "schema: chat_activity", fmt::format("schema: {}_activity", name_));
    substitute(yaml, "group_id: chat-pg-projector", fmt::format("group_id: {}_pg", name_));
    substitute(yaml, "group_id: chat-es-projector", fmt::format("group_id: {}_es", name_));
    substitute(yaml, "name: messages", fmt::format("name: {}_messages", name_));
    substitute(yaml, "index: messages", fmt::format("index: {}_messages", name_));
    substitute(yaml, "index: users", fmt::format("index: {}_users", name_));
    substitute(yaml, "    port: 9631\n", fmt::format("    port: {}\n", producer_port_));
    substitute(yaml, "    port: 9632\n", fmt::format("    port: {}\n", pg_port_));
    substitute(yaml, "    port: 9633\n", fmt::format("    port: {}\n", es_port_));
    substitute(yaml, "port: 9634 }", fmt::format("port: {} }}", free_port()));
    config_path_ = fmt::format("/tmp/{}.yaml", name_);
    std::ofstream(config_path_) << yaml;
  }

  std::string s() const { return name_; }  // the write schema

  std::string summary_differences() {
    const auto expected = rows_of(*write_, fmt::format(
        "SELECT c.id, c.title, (SELECT array_agg(p.user_id ORDER BY p.user_id) FROM {0}.participants p "
        "WHERE p.conversation_id = c.id), (SELECT count(*) FROM {0}.messages m WHERE m.conversation_id = c.id "
        "AND m.deleted_at IS NULL), l.id, l.sent_at, left(l.body, 80) FROM {0}.conversations c LEFT JOIN LATERAL "
        "(SELECT id, sent_at, body FROM {0}.messages m WHERE m.conversation_id = c.id AND m.deleted_at IS NULL "
        "ORDER BY sent_at DESC, id DESC LIMIT 1) l ON true", s()));
    Rows actual;
    try {
      actual = rows_of(*read_, fmt::format(
          "SELECT conversation_id, title, (SELECT array_agg(x ORDER BY x) FROM unnest(participants) x), "
          "message_count, last_message_id, last_message_at, last_message_preview "
          "FROM {}_summary.conversation_summary", s()));
    } catch (const pg::PgError& e) {
      return std::string("conversation_summary unreadable: ") + e.what();
    }
    return differences(expected, actual, "conversation_summary");
  }

  std::string activity_differences() {
    const auto expected = rows_of(*write_, fmt::format(
        "SELECT u.id, u.handle, (SELECT count(*) FROM {0}.messages m WHERE m.author_id = u.id), "
        "(SELECT count(*) FROM {0}.participants p WHERE p.user_id = u.id), greatest(u.registered_at, "
        "(SELECT max(sent_at) FROM {0}.messages m WHERE m.author_id = u.id), "
        "(SELECT max(edited_at) FROM {0}.messages m WHERE m.author_id = u.id), "
        "(SELECT max(joined_at) FROM {0}.participants p WHERE p.user_id = u.id)) FROM {0}.users u", s()));
    Rows actual;
    try {
      actual = rows_of(*read_, fmt::format("SELECT user_id, handle, messages_sent, conversations_joined, "
                                           "last_active_at FROM {}_activity.user_activity", s()));
    } catch (const pg::PgError& e) {
      return std::string("user_activity unreadable: ") + e.what();
    }
    return differences(expected, actual, "user_activity");
  }

  std::string mirror_differences() {
    const auto expected = rows_of(*write_, fmt::format("SELECT id, handle, display_name FROM {}.users", s()));
    Rows actual;
    try {
      actual = rows_of(*read_, fmt::format("SELECT id, handle, display_name FROM {}_mirror.users", s()));
    } catch (const pg::PgError& e) {
      return std::string("users mirror unreadable: ") + e.what();
    }
    return differences(expected, actual, "users mirror");
  }

  std::int64_t index_count(const std::string& index) {
    search_.post(fmt::format("/{}_{}/_refresh", name_, index), "");
    const auto response = search_.get(fmt::format("/{}_{}/_count", name_, index));
    return response.status == 200 ? json::parse(response.body)["count"].get<std::int64_t>() : -1;
  }
  std::int64_t write_count(const std::string& sql) {
    return std::stoll(std::string(write_->exec(sql).value(0, 0)));
  }
  std::string index_differences() {
    const auto messages = write_count(fmt::format("SELECT count(*) FROM {}.messages WHERE deleted_at IS NULL", s()));
    const auto users = write_count(fmt::format("SELECT count(*) FROM {}.users", s()));
    const auto indexed_messages = index_count("messages");
    const auto indexed_users = index_count("users");
    if (indexed_messages == messages && indexed_users == users) return "";
    return fmt::format("index messages: {} documents, {} visible messages; index users: {} documents, {} users\n",
                       indexed_messages, messages, indexed_users, users);
  }
  std::string all_differences() {
    return summary_differences() + activity_differences() + mirror_differences() + index_differences();
  }

  // The indexed message (_source), or null when it is not in the index.
  json indexed_message(const std::string& id) {
    const auto response = search_.get(fmt::format("/{}_messages/_doc/{}", name_, id));
    if (response.status != 200) return nullptr;
    return json::parse(response.body)["_source"];
  }

  // The workload, seeded, at 60 transactions/s for `seconds` (12 users and 4 conversations first).
  std::unique_ptr<ChildProcess> start_workload(const std::string& seconds, const std::string& seed) {
    auto workload = std::make_unique<ChildProcess>(
        SYNCLINE_CHAT_WORKLOAD_BIN,
        std::vector<std::string>{"--config", config_path_, "--schema", name_, "--rate", "60", "--duration", seconds,
                                 "--users", "12", "--conversations", "4", "--seed", seed},
        fmt::format("/tmp/{}.workload.log", name_));
    workload->start();
    return workload;
  }

  // Polls until every read model equals the write database; the milliseconds it took.
  std::int64_t wait_drained() {
    const auto started = std::chrono::steady_clock::now();
    std::string last;
    const auto drained = poll_until(
        [&] {
          last = all_differences();
          return last.empty();
        },
        120s, "read models equal to the write database");
    EXPECT_TRUE(drained) << last << "\nproducer:\n" << producer_->log_tail(15) << "\npg projector:\n"
                         << pg_->log_tail(15) << "\nes projector:\n" << es_->log_tail(15);
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  }

  std::string name_;
  std::string config_path_;
  bool created_ = false;
  int producer_port_ = 0;
  int pg_port_ = 0;
  int es_port_ = 0;
  std::unique_ptr<pg::PgConnection> write_;
  std::unique_ptr<pg::PgConnection> read_;
  std::unique_ptr<ChildProcess> producer_;
  std::unique_ptr<ChildProcess> pg_;
  std::unique_ptr<ChildProcess> es_;
  http::HttpClient search_{http::ClientOptions{.base_url = stack_env().search_url}};
};

TEST_F(ChatDemo, read_models_match_the_write_database_after_a_workload) {
  auto workload = start_workload("4", "42");
  ASSERT_EQ(workload->wait(120s), 0) << workload->log_tail();
  std::cout << workload->log_tail(10);
  const auto drain_ms = wait_drained();
  EXPECT_EQ(summary_differences(), "");
  EXPECT_EQ(activity_differences(), "");
  EXPECT_EQ(mirror_differences(), "");
  EXPECT_EQ(index_differences(), "");
  for (const auto& [process, port] : {std::pair{producer_.get(), producer_port_}, std::pair{pg_.get(), pg_port_},
                                      std::pair{es_.get(), es_port_}}) {
    EXPECT_EQ(dead_letters(port), 0) << process->log_path() << "\n" << process->log_tail(20);
  }

  const auto conversations = write_count(fmt::format("SELECT count(*) FROM {}.conversations", s()));
  const auto users = write_count(fmt::format("SELECT count(*) FROM {}.users", s()));
  const auto sent = write_count(fmt::format("SELECT count(*) FROM {}.messages", s()));
  const auto edited = write_count(fmt::format("SELECT count(*) FROM {}.messages WHERE edited_at IS NOT NULL", s()));
  const auto deleted = write_count(fmt::format("SELECT count(*) FROM {}.messages WHERE deleted_at IS NOT NULL", s()));
  std::cout << fmt::format("chat demo: {} users, {} conversations, {} messages ({} edited, {} deleted); drained in {} ms\n",
                           users, conversations, sent, edited, deleted, drain_ms);
  ASSERT_GT(sent, 50);
  ASSERT_GT(edited, 0);
  ASSERT_GT(deleted, 0);

  // A full-text search finds a known message by a word of its body, filtered by its conversation.
  const auto known = write_->exec(fmt::format(
      "SELECT id, conversation_id, body FROM {}.messages WHERE edited_at IS NULL AND deleted_at IS NULL ORDER BY id "
      "LIMIT 1", s()));
  ASSERT_EQ(known.rows(), 1);
  const std::string body(known.value(0, 2));
  const auto rare_word = body.substr(body.rfind(' ') + 1);  // the workload's one-in-16M word
  json query = json::parse(R"({"query": {"bool": {"must": {"match": {"body": ""}},
                                            "filter": {"term": {"conversation_id": ""}}}}})");
  query["query"]["bool"]["must"]["match"]["body"] = rare_word;
  query["query"]["bool"]["filter"]["term"]["conversation_id"] = std::string(known.value(0, 1));
  const auto found = search_.post(fmt::format("/{}_messages/_search", name_), query.dump());
  ASSERT_EQ(found.status, 200) << found.body;
  const auto hits = json::parse(found.body)["hits"]["hits"];
  ASSERT_FALSE(hits.empty()) << "no hit for '" << rare_word << "': " << found.body;
  EXPECT_EQ(hits[0]["_id"], std::string(known.value(0, 0)));
  EXPECT_EQ(hits[0]["_source"]["body"], body);

  // An edited (and not deleted) message carries its new body in the index.
  const auto edit = write_->exec(fmt::format(
      "SELECT id, body FROM {}.messages WHERE edited_at IS NOT NULL AND deleted_at IS NULL ORDER BY id LIMIT 1", s()));
  ASSERT_EQ(edit.rows(), 1) << "the workload edited no message that it did not delete";
  const auto document = indexed_message(std::string(edit.value(0, 0)));
  ASSERT_TRUE(document.is_object()) << "edited message " << edit.value(0, 0) << " not indexed";
  EXPECT_EQ(document["body"], std::string(edit.value(0, 1)));
  EXPECT_TRUE(document.contains("edited_at"));
  // Every deleted message is gone from the index.
  const auto gone = write_->exec(fmt::format("SELECT id FROM {}.messages WHERE deleted_at IS NOT NULL", s()));
  for (int row = 0; row < gone.rows(); ++row) {
    EXPECT_TRUE(indexed_message(std::string(gone.value(row, 0))).is_null())
        << "deleted message " << gone.value(row, 0) << " still indexed";
  }

  // The mirrors (read Postgres and the users index) as syncline-ctl verify sees them.
  const auto verify = run_ctl({"--config", config_path_, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.describe();
  std::cout << verify.out;
}

// Both SQL projections are written with {{schema}}, so syncline-ctl resync replay rebuilds them from
// the topics while the workload goes on, and the rebuilt ones still equal the write database.
TEST_F(ChatDemo, resync_replay_rebuilds_the_sql_projections_under_load) {
  auto first = start_workload("2", "7");
  ASSERT_EQ(first->wait(120s), 0) << first->log_tail();
  wait_drained();
  // A hand edit a rebuild must undo.
  read_->exec(fmt::format("UPDATE {}_summary.conversation_summary SET message_count = message_count + 100", s()));
  read_->exec(fmt::format("DELETE FROM {}_activity.user_activity", s()));

  auto second = start_workload("4", "8");
  for (const char* projection : {"conversation_summary", "user_activity"}) {
    const auto replay =
        run_ctl({"--config", config_path_, "resync", "replay", "--projection", projection, "--grace", "0", "--json"});
    ASSERT_EQ(replay.exit_code, 0) << replay.describe();
    const auto report = json::parse(replay.out);
    EXPECT_GT(report["events"].get<std::int64_t>(), 0) << replay.out;
    std::cout << projection << ": " << replay.out;
  }
  ASSERT_EQ(second->wait(120s), 0) << second->log_tail();
  wait_drained();
  EXPECT_EQ(summary_differences(), "");
  EXPECT_EQ(activity_differences(), "");
  EXPECT_EQ(dead_letters(pg_port_), 0) << pg_->log_tail(20);
}

// The workload alone, against the write database (no pipeline needed).
class ChatWorkload : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_write_pg());
    name_ = unique_name("chatwl");
    write_ = std::make_unique<pg::PgConnection>(stack_env().write_pg_dsn);
  }
  void TearDown() override {
    if (!write_) return;
    write_->exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", name_));
    write_->exec(fmt::format("DROP TABLE IF EXISTS public.{}_outbox", name_));
  }

  // Runs syncline-chat-workload on this test's schema and outbox; its exit code (or -1 on timeout).
  int workload(std::vector<std::string> args, ChildProcess** out = nullptr) {
    args.insert(args.begin(), {"--dsn", stack_env().write_pg_dsn, "--schema", name_, "--outbox",
                               fmt::format("public.{}_outbox", name_), "--message-prefix", name_});
    process_ = std::make_unique<ChildProcess>(SYNCLINE_CHAT_WORKLOAD_BIN, args,
                                              fmt::format("/tmp/{}.workload.log", name_));
    process_->start();
    if (out != nullptr) *out = process_.get();
    return process_->wait(60s).value_or(-1);
  }

  std::string name_;
  std::unique_ptr<pg::PgConnection> write_;
  std::unique_ptr<ChildProcess> process_;
};

TEST_F(ChatWorkload, writes_into_an_existing_outbox_that_has_no_column_defaults) {
  // The outbox contract (DESIGN.md) names the columns, not their defaults.
  write_->exec(fmt::format("CREATE TABLE public.{}_outbox (id uuid PRIMARY KEY, aggregate_type text, aggregate_id "
                           "text, event_type text, payload jsonb, occurred_at timestamptz, headers jsonb)", name_));
  ASSERT_EQ(workload({"--setup", "--transactions", "30", "--users", "3", "--conversations", "2", "--seed", "5"}), 0)
      << process_->log_tail();
  const auto counted = write_->exec(fmt::format(
      "SELECT count(*), count(*) FILTER (WHERE id IS NOT NULL AND occurred_at IS NOT NULL) FROM public.{}_outbox",
      name_));
  EXPECT_GE(std::stoll(std::string(counted.value(0, 0))), 5);  // 3 registrations, 2 conversations at least
  EXPECT_EQ(counted.value(0, 0), counted.value(0, 1));
}

TEST_F(ChatWorkload, stops_with_the_error_when_setting_up_users_keeps_failing) {
  ChildProcess* process = nullptr;
  ASSERT_EQ(workload({"--setup-only"}), 0) << process_->log_tail();
  write_->exec(fmt::format("CREATE OR REPLACE FUNCTION {}.register_user(p_handle text, p_display_name text) RETURNS bigint "
                           "LANGUAGE plpgsql "
                           "AS $$ BEGIN RAISE EXCEPTION 'registrations are closed'; END $$", name_));
  EXPECT_EQ(workload({"--duration", "5", "--users", "3", "--seed", "5"}, &process), 2) << process->log_tail();
  EXPECT_NE(process->log_tail().find("failed 10 times in a row"), std::string::npos) << process->log_tail();
  EXPECT_NE(process->log_tail().find("registrations are closed"), std::string::npos) << process->log_tail();
}

}  // namespace
}  // namespace syncline::test
