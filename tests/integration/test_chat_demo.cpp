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
#include "tests/support/chat_demo.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_test_binaries.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

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
    ASSERT_TRUE(require_stack());
    name_ = unique_name("chat");
    const auto& env = stack_env();
    write_ = std::make_unique<pg::PgConnection>(env.write_pg_dsn);
    read_ = std::make_unique<pg::PgConnection>(env.read_pg_dsn);
    // Timestamps compared as text: the same zone on both sides.
    write_->exec("SET TimeZone = 'UTC'");
    read_->exec("SET TimeZone = 'UTC'");
    config_ = write_chat_demo_config(name_);
    created_ = true;

    ChildProcess setup(SYNCLINE_CHAT_WORKLOAD_BIN, {"--config", config_.path, "--schema", name_, "--setup-only"},
                       fmt::format("/tmp/{}.setup.log", name_));
    setup.start();
    ASSERT_EQ(setup.wait(60s), 0) << setup.log_tail();

    producer_ = std::make_unique<ChildProcess>(SYNCLINE_PRODUCER_BIN, std::vector<std::string>{"--config", config_.path},
                                               fmt::format("/tmp/{}.producer.log", name_));
    pg_ = std::make_unique<ChildProcess>(SYNCLINE_PG_PROJECTOR_BIN, std::vector<std::string>{"--config", config_.path},
                                         fmt::format("/tmp/{}.pg.log", name_));
    es_ = std::make_unique<ChildProcess>(SYNCLINE_ES_PROJECTOR_BIN, std::vector<std::string>{"--config", config_.path},
                                         fmt::format("/tmp/{}.es.log", name_));
    for (auto* process : {producer_.get(), pg_.get(), es_.get()}) process->start();
    for (const auto& [process, port] : {std::pair{producer_.get(), config_.producer_port}, std::pair{pg_.get(), config_.pg_port},
                                        std::pair{es_.get(), config_.es_port}}) {
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
    drop_chat_demo(name_);
    std::remove(config_.path.c_str());
    if (!HasFailure()) {  // the logs are kept for a failure's post-mortem only
      for (const char* log : {"setup", "producer", "pg", "es", "workload"}) {
        std::remove(fmt::format("/tmp/{}.{}.log", name_, log).c_str());
      }
    }
  }

  std::string s() const { return name_; }  // the write schema

  ChatReadModels models() {
    return {name_, [this]() -> pg::PgConnection& { return *write_; },
            [this]() -> pg::PgConnection& { return *read_; }, search_};
  }
  std::string summary_differences() { return models().summary_differences(); }
  std::string activity_differences() { return models().activity_differences(); }
  std::string mirror_differences() { return models().mirror_differences(); }
  std::string index_differences() { return models().index_differences(); }
  std::string all_differences() { return models().all_differences(); }
  std::int64_t index_count(const std::string& index) { return models().index_count(index); }
  std::int64_t write_count(const std::string& sql) { return models().write_count(sql); }

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
        std::vector<std::string>{"--config", config_.path, "--schema", name_, "--rate", "60", "--duration", seconds,
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
  ChatDemoConfig config_;
  bool created_ = false;
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
  for (const auto& [process, port] : {std::pair{producer_.get(), config_.producer_port}, std::pair{pg_.get(), config_.pg_port},
                                      std::pair{es_.get(), config_.es_port}}) {
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
  const auto verify = run_ctl({"--config", config_.path, "verify"});
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
        run_ctl({"--config", config_.path, "resync", "replay", "--projection", projection, "--grace", "0", "--json"});
    ASSERT_EQ(replay.exit_code, 0) << replay.describe();
    const auto report = json::parse(replay.out);
    EXPECT_GT(report["events"].get<std::int64_t>(), 0) << replay.out;
    std::cout << projection << ": " << replay.out;
  }
  ASSERT_EQ(second->wait(120s), 0) << second->log_tail();
  wait_drained();
  EXPECT_EQ(summary_differences(), "");
  EXPECT_EQ(activity_differences(), "");
  EXPECT_EQ(dead_letters(config_.pg_port), 0) << pg_->log_tail(20);
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
