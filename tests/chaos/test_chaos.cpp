// The chaos run: the chat demo (examples/chat) under a steady workload while every component is
// SIGKILLed and restarted in a seeded random order; then drain and compare every read model with the
// write database, counting events lost and effects doubled (both must be 0). See docs/CHAOS.md.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/http_client.hpp"
#include "common/kafka.hpp"
#include "common/pg.hpp"
#include "tests/support/chat_demo.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/reconnecting.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_source_dir.hpp"
#include "syncline_test_binaries.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What is killed. The Syncline binaries are killed by this test; the services through scripts/stack.
enum class Target { producer, pg_projector, es_projector, kafka, read_pg, search, write_pg };
constexpr Target kTargets[] = {Target::producer, Target::pg_projector, Target::es_projector, Target::kafka,
                               Target::read_pg,  Target::search,       Target::write_pg};

const char* name_of(Target target) {
  switch (target) {
    case Target::producer:
      return "producer";
    case Target::pg_projector:
      return "pg-projector";
    case Target::es_projector:
      return "es-projector";
    case Target::kafka:
      return "kafka";
    case Target::read_pg:
      return "read-pg";
    case Target::search:
      return "search";
    case Target::write_pg:
      return "write-pg";
  }
  return "?";
}

// How often each is killed (32 kills). Kafka takes ~25 s to be back in use and the search engine
// ~40 s on this 2-core machine, which bounds the run's duration (and CI's: it runs in scripts/test).
int planned_kills(Target target) {
  switch (target) {
    case Target::kafka:
    case Target::search:
      return 4;
    case Target::write_pg:
      return 4;
    default:
      return 5;
  }
}

// A Syncline binary as docker-compose's restart policy would run it: restarted whenever it exits.
struct Supervised {
  const char* name;
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  int self_exits = 0;
};

class Chaos : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_stack());
    name_ = unique_name("chaos");
    const auto& env = stack_env();
    write_ = std::make_unique<Reconnecting>(env.write_pg_dsn);
    read_ = std::make_unique<Reconnecting>(env.read_pg_dsn);
    config_ = write_chat_demo_config(name_);
    created_ = true;

    ChildProcess setup(SYNCLINE_CHAT_WORKLOAD_BIN,
                       {"--config", config_.path, "--schema", name_, "--setup-only"}, log_path("setup"));
    setup.start();
    ASSERT_EQ(setup.wait(60s), 0) << setup.log_tail();

    binaries_.push_back({"producer", make_binary(SYNCLINE_PRODUCER_BIN, "producer"), config_.producer_port});
    binaries_.push_back({"pg-projector", make_binary(SYNCLINE_PG_PROJECTOR_BIN, "pg"), config_.pg_port});
    binaries_.push_back({"es-projector", make_binary(SYNCLINE_ES_PROJECTOR_BIN, "es"), config_.es_port});
    for (auto& binary : binaries_) binary.process->start();
    for (auto& binary : binaries_) {
      ASSERT_TRUE(poll_until([&] { return http_get_status(binary.port, "/readyz") == 200; }, 60s,
                             fmt::format("{} ready", binary.name)))
          << binary.process->log_tail();
    }
  }

  void TearDown() override {
    search_restart_.reset();
    workload_.reset();
    binaries_.clear();
    if (!created_) return;
    // The stack must be whole again for the clean-up (a failure may have left a service down).
    ChildProcess up(std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack", {"up"}, log_path("stack"));
    up.start();
    (void)up.wait(240s);
    drop_chat_demo(name_);
    std::remove(config_.path.c_str());
    if (!HasFailure()) {  // the logs are kept for a failure's post-mortem only
      for (const char* log : {"setup", "producer", "pg", "es", "workload", "stack"}) {
        std::remove(log_path(log).c_str());
      }
    }
  }

  std::string log_path(const char* what) const { return fmt::format("/tmp/{}.{}.log", name_, what); }

  std::unique_ptr<ChildProcess> make_binary(const char* program, const char* log) {
    return std::make_unique<ChildProcess>(program, std::vector<std::string>{"--config", config_.path},
                                          log_path(log));
  }

  std::string s() const { return name_; }  // the write schema

  // --- supervision ------------------------------------------------------------------------------

  // The paced workload; each (re)start gets its own seed, derived from the run's.
  void start_workload() {
    workload_ = std::make_unique<ChildProcess>(
        SYNCLINE_CHAT_WORKLOAD_BIN,
        std::vector<std::string>{"--config", config_.path, "--schema", name_, "--rate", "100", "--duration",
                                 "3600", "--users", "40", "--conversations", "12", "--seed",
                                 std::to_string(seed_ * 1000 + workload_starts_), "--json"},
        log_path("workload"));
    workload_->start();
    ++workload_starts_;
  }

  // Called on every poll: restarts what exited by itself, as a restart policy would.
  void supervise() {
    for (auto& binary : binaries_) {
      if (binary.process->running()) continue;
      ++binary.self_exits;
      std::cout << fmt::format("[chaos] {} exited by itself (status {}); restarting\n", binary.name,
                               binary.process->wait(0ms).value_or(-1))
                << std::flush;
      binary.process->start();
    }
    if (workload_wanted_ && workload_ && !workload_->running()) start_workload();
  }

  // Whether the search engine is up (no background restart under way). The restart's failure fails
  // the test.
  bool search_back() {
    if (!search_restart_) return true;
    if (search_restart_->running()) return false;
    const auto status = search_restart_->wait(0ms);
    EXPECT_EQ(status, 0) << "scripts/stack up search\n" << search_restart_->log_tail(20);
    std::cout << fmt::format("[chaos]     search back after {:.1f} s\n", seconds_since(search_killed_at_))
              << std::flush;
    search_restart_.reset();
    return true;
  }

  ::testing::AssertionResult wait_search_back() {
    return poll_until(
        [&] {
          supervise();
          return search_back();
        },
        240s, "scripts/stack up search");
  }

  // Runs scripts/stack with `args` to completion, supervising meanwhile.
  ::testing::AssertionResult stack(const std::vector<std::string>& args) {
    ChildProcess script(std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack", args, log_path("stack"));
    script.start();
    const auto what = fmt::format("scripts/stack {} {}", args[0], args[1]);
    auto done = poll_until(
        [&] {
          supervise();
          return !script.running();
        },
        240s, what);
    if (!done) return done;
    const auto status = script.wait(0ms);
    if (status != 0) {
      return ::testing::AssertionFailure() << what << " exited with " << status.value_or(-1) << "\n"
                                           << script.log_tail(20);
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult kill_and_restart(Target target) {
    ++kills_[target];
    switch (target) {
      case Target::producer:
      case Target::pg_projector:
      case Target::es_projector: {
        auto& binary = binaries_[target == Target::producer ? 0 : target == Target::pg_projector ? 1 : 2];
        if (!binary.process->stop(SIGKILL, 30s))
          return ::testing::AssertionFailure() << binary.name << " survived SIGKILL";
        binary.process->start();
        return ::testing::AssertionSuccess();
      }
      case Target::search: {
        // The engine takes ~40 s to start: it restarts in the background while the next kills go on
        // (their progress is then checked in read Postgres only). One restart at a time.
        if (auto back = wait_search_back(); !back) return back;
        auto killed = stack({"kill", "search"});
        if (!killed) return killed;
        search_killed_at_ = Clock::now();
        search_restart_ =
            std::make_unique<ChildProcess>(std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack",
                                           std::vector<std::string>{"up", "search"}, log_path("stack"));
        search_restart_->start();
        return ::testing::AssertionSuccess();
      }
      case Target::kafka:
      case Target::read_pg: {
        auto killed = stack({"kill", name_of(target)});
        if (!killed) return killed;
        return stack({"up", name_of(target)});
      }
      case Target::write_pg: {  // a restart (clean stop), not a crash: the write database is the truth
        auto stopped = stack({"down", "write-pg"});
        if (!stopped) return stopped;
        return stack({"up", "write-pg"});
      }
    }
    return ::testing::AssertionFailure() << "unknown target";
  }

  // --- progress ---------------------------------------------------------------------------------

  struct Position {
    std::string last_message_id;  // the newest message committed in the write database
    std::string now;              // the write database's clock then (ISO 8601, UTC)
  };

  Position position() {
    Position at;
    const auto read = poll_until(
        [&] {
          supervise();
          try {
            const auto result =
                write_->exec(fmt::format("SELECT coalesce(max(id), 0), to_char(now() AT TIME ZONE 'UTC', "
                                         "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                                         "FROM {}.messages",
                                         s()));
            at = {std::string(result.value(0, 0)), std::string(result.value(0, 1))};
            return true;
          } catch (const std::exception&) {
            return false;
          }
        },
        60s, "the write database's newest message");
    EXPECT_TRUE(read);
    return at;
  }

  // Messages committed after `since` reached read Postgres and the index (read Postgres only while
  // the search engine restarts): the whole pipeline moves.
  bool progressed(const Position& since) {
    supervise();
    try {
      const auto applied = read_->exec(
          fmt::format("SELECT count(*) FROM {}_summary.conversation_messages WHERE message_id > {}", s(),
                      since.last_message_id));
      if (applied.value(0, 0) == "0") {
        stalled_ = "read Postgres";
        return false;
      }
      if (!search_back()) return true;
      json query;
      query["query"]["range"]["sent_at"]["gt"] = since.now;
      const auto indexed = search_.post(fmt::format("/{}_messages/_count", name_), query.dump());
      stalled_ = "the messages index";
      return indexed.status == 200 && json::parse(indexed.body)["count"].get<std::int64_t>() > 0;
    } catch (const std::exception& e) {
      stalled_ = e.what();
      return false;
    }
  }

  // --- comparison with the write database -------------------------------------------------------

  ChatReadModels models() {
    return {name_, [this]() -> pg::PgConnection& { return write_->get(); },
            [this]() -> pg::PgConnection& { return read_->get(); }, search_};
  }
  std::string summary_differences() { return models().summary_differences(); }
  std::string activity_differences() { return models().activity_differences(); }
  Rows expected_users() { return models().expected_users(); }
  Rows mirrored_users() { return models().mirrored_users(); }
  std::int64_t count_of(const std::string& index) { return models().index_count(index); }
  std::int64_t write_count(const std::string& sql) { return models().write_count(sql); }
  std::string all_differences() { return models().all_differences(); }


  // Every document of the messages index: id -> body (a scroll over the whole index).
  std::map<std::string, std::string> indexed_bodies() {
    std::map<std::string, std::string> bodies;
    search_.post(fmt::format("/{}_messages/_refresh", name_), "");
    auto response = search_.post(fmt::format("/{}_messages/_search?scroll=1m", name_),
                                 R"({"size": 5000, "_source": ["body"], "sort": ["_doc"]})");
    while (true) {
      if (response.status != 200) throw std::runtime_error("scrolling the messages index: " + response.body);
      const auto page = json::parse(response.body);
      const auto& hits = page["hits"]["hits"];
      for (const auto& hit : hits) bodies[hit["_id"].get<std::string>()] = hit["_source"].value("body", "");
      const auto scroll_id = page["_scroll_id"].get<std::string>();
      if (hits.empty()) {
        search_.del("/_search/scroll/" + scroll_id);
        return bodies;
      }
      response = search_.post("/_search/scroll", json{{"scroll", "1m"}, {"scroll_id", scroll_id}}.dump());
    }
  }

  // Lost and doubled effects over every counter, row and document of the read models.
  struct Tally {
    std::int64_t lost = 0;
    std::int64_t doubled = 0;
    std::vector<std::string> examples;  // the first few, for the failure message
    void add(std::int64_t expected, std::int64_t actual, const std::string& what) {
      if (expected > actual) lost += expected - actual;
      if (actual > expected) doubled += actual - expected;
      if (expected == actual) return;
      if (examples.size() < 10)
        examples.push_back(fmt::format("{}: {}, expected {}", what, actual, expected));
    }
  };

  // key -> numbers, from a query whose first column is the key.
  static std::map<std::string, std::vector<std::int64_t>> numbers_of(pg::PgConnection& db,
                                                                     const std::string& sql) {
    std::map<std::string, std::vector<std::int64_t>> out;
    const auto result = db.exec(sql);
    for (int row = 0; row < result.rows(); ++row) {
      auto& numbers = out[std::string(result.value(row, 0))];
      for (int column = 1; column < result.columns(); ++column) {
        numbers.push_back(std::stoll(std::string(result.value(row, column))));
      }
    }
    return out;
  }

  // Compares per-key counters; a missing row loses its row plus its counters, an extra one doubles.
  static void compare(Tally& tally, const std::map<std::string, std::vector<std::int64_t>>& expected,
                      const std::map<std::string, std::vector<std::int64_t>>& actual, const std::string& what,
                      const std::vector<std::string>& counters) {
    for (const auto& [key, numbers] : expected) {
      const auto it = actual.find(key);
      tally.add(1, it == actual.end() ? 0 : 1, fmt::format("{} {} row", what, key));
      for (std::size_t i = 0; i < numbers.size(); ++i) {
        tally.add(numbers[i], it == actual.end() ? 0 : it->second[i],
                  fmt::format("{} {} {}", what, key, counters[i]));
      }
    }
    for (const auto& [key, numbers] : actual) {
      if (!expected.contains(key))
        tally.add(0, 1, fmt::format("{} {} row (not in the write database)", what, key));
    }
  }

  Tally count_lost_and_doubled() {
    Tally tally;
    compare(tally,
            numbers_of(write_->get(), fmt::format("SELECT c.id, (SELECT count(*) FROM {0}.messages m WHERE "
                                                  "m.conversation_id = c.id AND m.deleted_at IS "
                                                  "NULL), (SELECT count(*) FROM {0}.participants p WHERE "
                                                  "p.conversation_id = c.id) FROM {0}.conversations c",
                                                  s())),
            numbers_of(read_->get(),
                       fmt::format("SELECT conversation_id, message_count, cardinality(participants) FROM "
                                   "{}_summary.conversation_summary",
                                   s())),
            "conversation", {"message_count", "participants"});
    compare(
        tally,
        numbers_of(write_->get(), fmt::format("SELECT u.id, (SELECT count(*) FROM {0}.messages m WHERE "
                                              "m.author_id = u.id), (SELECT count(*) FROM "
                                              "{0}.participants p WHERE p.user_id = u.id) FROM {0}.users u",
                                              s())),
        numbers_of(read_->get(), fmt::format("SELECT user_id, messages_sent, conversations_joined FROM "
                                             "{}_activity.user_activity",
                                             s())),
        "user", {"messages_sent", "conversations_joined"});

    const auto users = expected_users();
    const auto mirrored = mirrored_users();
    for (const auto& [id, row] : users) {
      const auto it = mirrored.find(id);
      tally.add(1, it == mirrored.end() ? 0 : 1, fmt::format("users mirror {}", id));
      if (it != mirrored.end() && it->second != row)
        tally.add(1, 0, fmt::format("users mirror {} [{}]", id, it->second));
    }
    for (const auto& [id, row] : mirrored) {
      if (!users.contains(id))
        tally.add(0, 1, fmt::format("users mirror {} (not in the write database)", id));
    }
    tally.add(static_cast<std::int64_t>(users.size()), count_of("users"), "users index documents");

    // Each visible message indexed with its latest body; a deleted one absent.
    std::map<std::string, std::string> visible;
    std::set<std::string> deleted;
    const auto messages =
        write_->exec(fmt::format("SELECT id, body, deleted_at IS NOT NULL FROM {}.messages", s()));
    for (int row = 0; row < messages.rows(); ++row) {
      if (messages.value(row, 2) == "t") {
        deleted.insert(std::string(messages.value(row, 0)));
      } else {
        visible[std::string(messages.value(row, 0))] = std::string(messages.value(row, 1));
      }
    }
    const auto documents = indexed_bodies();
    for (const auto& [id, body] : visible) {
      const auto it = documents.find(id);
      tally.add(1, it == documents.end() ? 0 : 1, fmt::format("message document {}", id));
      if (it != documents.end() && it->second != body) {
        tally.add(1, 0, fmt::format("message document {} body [{}] (an edit lost)", id, it->second));
      }
    }
    for (const auto& [id, body] : documents) {
      if (visible.contains(id)) continue;
      if (deleted.contains(id)) {
        tally.add(1, 0, fmt::format("message document {} still indexed (a delete lost)", id));
      } else {
        tally.add(0, 1, fmt::format("message document {} (not in the write database)", id));
      }
    }
    return tally;
  }

  // The edits and deletes the workload's runs counted (the database keeps only each message's last
  // edit): the sum over the JSON summaries in its log.
  std::map<std::string, std::int64_t> workload_counts() const {
    std::map<std::string, std::int64_t> ok;
    std::ifstream log(log_path("workload"));
    std::string line;
    std::string block;
    bool in_block = false;
    while (std::getline(log, line)) {
      if (line == "{") in_block = true;
      if (in_block) block += line + "\n";
      if (in_block && line == "}") {
        in_block = false;
        try {
          const auto summary = json::parse(block);
          for (const auto& [command, tally] : summary["commands"].items()) {
            ok[command] += tally["ok"].get<std::int64_t>();
            ok[command + ".failed"] += tally["failed"].get<std::int64_t>();
          }
        } catch (const std::exception&) {
          // A run killed while printing; its figures are missing from the table, nothing else.
        }
        block.clear();
      }
    }
    return ok;
  }

  std::string logs_tail() {
    std::string out;
    for (auto& binary : binaries_) {
      std::string status;  // shows a stalled binary (lag, last applied) better than its log
      try {
        http::HttpClient client{
            http::ClientOptions{.base_url = fmt::format("http://127.0.0.1:{}", binary.port),
                                .request_timeout = std::chrono::seconds(2)}};
        status = client.get("/status").body;
      } catch (const std::exception& e) {
        status = e.what();
      }
      out += fmt::format("\n--- {} (/status: {}) ---\n{}", binary.name, status, binary.process->log_tail(15));
    }
    if (workload_) out += "\n--- workload ---\n" + workload_->log_tail(10);
    return out;
  }

  std::string name_;
  ChatDemoConfig config_;
  bool created_ = false;
  std::unique_ptr<Reconnecting> write_;
  std::unique_ptr<Reconnecting> read_;
  std::vector<Supervised> binaries_;
  std::unique_ptr<ChildProcess> workload_;
  bool workload_wanted_ = false;
  int workload_starts_ = 0;
  std::uint64_t seed_ = 0;
  std::map<Target, int> kills_;
  std::string stalled_;                           // what the last progress check was still waiting for
  std::unique_ptr<ChildProcess> search_restart_;  // `scripts/stack up search` in the background
  Clock::time_point search_killed_at_;
  http::HttpClient search_{
      http::ClientOptions{.base_url = stack_env().search_url, .request_timeout = std::chrono::seconds(10)}};
};

TEST_F(Chaos, the_chat_demo_loses_and_doubles_nothing_while_every_component_is_killed) {
  const auto started = Clock::now();
  const char* seed_text = std::getenv("SYNCLINE_CHAOS_SEED");
  seed_ = seed_text != nullptr ? std::stoull(seed_text) : std::random_device{}() % 1000000;
  std::cout << fmt::format(
                   "[chaos] seed {} (SYNCLINE_CHAOS_SEED={} repeats this order); logs /tmp/{}.*.log\n", seed_,
                   seed_, name_)
            << std::flush;
  RecordProperty("seed", std::to_string(seed_));

  std::vector<Target> plan;
  for (const auto target : kTargets) plan.insert(plan.end(), planned_kills(target), target);
  std::mt19937_64 rng(seed_);
  std::shuffle(plan.begin(), plan.end(), rng);

  workload_wanted_ = true;
  start_workload();
  // The pipeline flows end to end before the first kill.
  {
    const auto origin = position();
    ASSERT_TRUE(
        poll_until([&] { return progressed(origin); }, 120s, "the first messages in both read models"))
        << logs_tail();
  }

  const auto chaos_started = Clock::now();
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const auto target = plan[i];
    const auto before = position();
    const auto kill_started = Clock::now();
    ASSERT_TRUE(kill_and_restart(target)) << logs_tail();
    const auto restarted = seconds_since(kill_started);
    // Real progress before the next kill: messages committed after this one reached both read models.
    ASSERT_TRUE(poll_until([&] { return progressed(before); }, 180s,
                           fmt::format("messages after the kill of {} in the read models", name_of(target))))
        << "still waiting for: " << stalled_ << logs_tail();
    std::cout << fmt::format("[chaos] kill {:>2}/{}: {:<12} {}, pipeline moving again after {:5.1f} s{}\n",
                             i + 1, plan.size(), name_of(target),
                             target == Target::search ? "restarting in the background"
                                                      : fmt::format("back in {:5.1f} s", restarted),
                             seconds_since(kill_started),
                             search_restart_ ? " (read Postgres; search restarting)" : "")
              << std::flush;
  }
  ASSERT_TRUE(wait_search_back());
  {
    const auto end = position();
    ASSERT_TRUE(
        poll_until([&] { return progressed(end); }, 180s, "messages in both read models after the last kill"))
        << logs_tail();
  }
  const auto chaos_seconds = seconds_since(chaos_started);

  workload_wanted_ = false;
  ASSERT_TRUE(workload_->stop(SIGTERM, 60s).has_value()) << workload_->log_tail();
  const auto drain_started = Clock::now();
  std::string last;
  const bool drained = poll_until(
      [&] {
        supervise();
        last = all_differences();
        return last.empty();
      },
      180s, "read models equal to the write database");
  const auto drain_seconds = seconds_since(drain_started);
  EXPECT_TRUE(drained) << last << logs_tail();

  const auto verify = run_ctl({"--config", config_.path, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.describe();

  Tally tally;
  try {
    tally = count_lost_and_doubled();
  } catch (const std::exception& e) {
    FAIL() << "counting lost and doubled effects: " << e.what() << logs_tail();
  }

  // The figures, before the verdicts.
  const auto workload = workload_counts();
  const auto count = [&](const std::string& sql) { return write_count(fmt::format(fmt::runtime(sql), s())); };
  const auto users = count("SELECT count(*) FROM {}.users");
  const auto conversations = count("SELECT count(*) FROM {}.conversations");
  const auto joins = count("SELECT count(*) FROM {}.participants") - conversations;
  const auto sent = count("SELECT count(*) FROM {}.messages");
  const auto edited = count("SELECT count(*) FROM {}.messages WHERE edited_at IS NOT NULL");
  const auto deleted = count("SELECT count(*) FROM {}.messages WHERE deleted_at IS NOT NULL");
  const auto get = [&](const std::string& key) { return workload.contains(key) ? workload.at(key) : 0; };
  std::ostringstream out;
  out << "\n=== chaos run ===\n";
  out << fmt::format("seed                  {}\n", seed_);
  out << "events written (write database)\n";
  out << fmt::format("  users registered    {}\n", users);
  out << fmt::format("  conversations       {}\n", conversations);
  out << fmt::format("  joins               {}\n", joins);
  out << fmt::format("  messages sent       {}\n", sent);
  out << fmt::format("  messages edited     {} (edits counted by the workload: {})\n", edited,
                     get("edit_message"));
  out << fmt::format("  messages deleted    {} (deletes counted by the workload: {})\n", deleted,
                     get("delete_message"));
  out << fmt::format("  total               {}\n",
                     users + conversations + joins + sent + get("edit_message") + deleted);
  out << fmt::format("workload runs         {} (commands failed by a kill: {})\n", workload_starts_,
                     get("send_message.failed") + get("edit_message.failed") + get("delete_message.failed") +
                         get("join_conversation.failed") + get("register_user.failed") +
                         get("start_conversation.failed"));
  int total_kills = 0;
  out << "kills\n";
  for (const auto target : kTargets) {
    out << fmt::format("  {:<18}  {}\n", name_of(target), kills_[target]);
    total_kills += kills_[target];
  }
  out << fmt::format("  total               {}\n", total_kills);
  out << "exited by themselves (restarted)\n";
  for (const auto& binary : binaries_) out << fmt::format("  {:<18}  {}\n", binary.name, binary.self_exits);
  out << fmt::format("events lost           {}\n", tally.lost);
  out << fmt::format("doubled effects       {}\n", tally.doubled);
  out << fmt::format("time to drain         {:.1f} s\n", drain_seconds);
  out << fmt::format("chaos phase           {:.1f} s\n", chaos_seconds);
  out << fmt::format("total duration        {:.1f} s\n", seconds_since(started));
  out << fmt::format("syncline-ctl verify   exit {}\n", verify.exit_code);
  std::cout << out.str() << std::flush;

  std::string examples;
  for (const auto& example : tally.examples) examples += "  " + example + "\n";
  EXPECT_EQ(tally.lost, 0) << examples;
  EXPECT_EQ(tally.doubled, 0) << examples;
  EXPECT_GE(total_kills, 30);
  EXPECT_GT(sent, 1000) << "the workload hardly ran";
  EXPECT_GT(deleted, 0);
  EXPECT_GT(edited, 0);
}

}  // namespace
}  // namespace syncline::test
