// syncline-ctl resync replay of search-index projections against the real stack: a replay while a
// workload runs and readers query the aliases (no failed or empty query; the alias ends on
// <name>_v2, <name>_v1 deleted, the documents equal the source state), and an interrupted replay
// that leaves the alias alone and resumes.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/config.hpp"
#include "common/http_client.hpp"
#include "common/shutdown.hpp"
#include "consumers/es/bulk_action.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "tools/ctl/es_replay.hpp"
#include "tools/ctl/projections.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Row changes of one table (mirrored) and conversation events (mapped), keyed, one commit LSN per
// transaction; the expected final documents are kept for the comparison.
struct Workload {
  std::string table;
  std::string row_topic;
  std::string event_topic;
  std::map<std::string, json> rows;      // _id -> expected document fields (absent: deleted)
  std::map<std::string, json> messages;  // _id -> expected document fields
  std::set<std::string> row_ids;         // every _id ever written
  std::set<std::string> message_ids;
  std::uint64_t lsn = 0x10000;
  std::uint64_t counter = 0;
  std::uint64_t message_events = 0;
  std::mt19937 random{7};

  void transaction(EventPublisher& publisher, int events) {
    lsn += 0x100;
    publisher.begin();
    for (int i = 0; i < events; ++i) {
      ++counter;
      if (random() % 2 == 0) {
        const int id = static_cast<int>(random() % 200);
        const std::string key = std::to_string(id);
        const bool remove = rows.contains(key) && random() % 5 == 0;
        const char op = remove ? 'd' : 'u';
        const json after = remove ? json{{"id", id}} : json{{"id", id}, {"n", counter}};
        publisher.send(row_topic, json{{"id", id}}.dump(), row_change(table, op, after, lsn, counter).dump(),
                       fmt::format("public.{}.{}", table, op));
        row_ids.insert(key);
        if (remove) {
          rows.erase(key);
        } else {
          rows[key] = {{"id", id}, {"n", counter}};
        }
      } else {
        const int k = static_cast<int>(random() % 150);
        const std::string id = fmt::format("m-{}", k);
        const std::string conversation = fmt::format("c-{}", k % 10);
        const auto choice = random() % 5;
        std::string type;
        json payload{{"message_id", id}};
        if (!messages.contains(id) || choice >= 3) {
          type = "MessageSent";
          payload["text"] = fmt::format("text {}", counter);
          payload["author"] = fmt::format("a{}", counter % 7);
          messages[id] = {{"body", payload["text"]}, {"author", payload["author"]}};
        } else if (choice == 0) {
          type = "MessageDeleted";
          messages.erase(id);
        } else {
          type = "MessageEdited";
          payload["text"] = fmt::format("edited {}", counter);
          messages[id]["body"] = payload["text"];
        }
        message_ids.insert(id);
        ++message_events;
        publisher.send(event_topic, conversation,
                       domain_event(fmt::format("e{}", counter), type, "conversation", conversation, payload,
                                    lsn, counter)
                           .dump(),
                       type);
      }
    }
    publisher.commit();
  }
};

class CtlEsReplay : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_search());
    shutdown::reset_for_testing();
  }
  void TearDown() override {
    shutdown::reset_for_testing();
    for (const auto& alias : aliases_)
      for (int version = 1; version <= 3; ++version) search_.del(fmt::format("/{}_v{}", alias, version));
  }

  std::string alias(std::string_view name) {
    aliases_.push_back(unique_name(name));
    return aliases_.back();
  }
  // Every document of the index as _id -> _source without Syncline's bookkeeping fields.
  std::map<std::string, json> documents(const std::string& index) {
    search_.post("/" + index + "/_refresh", "");
    const auto response = search_.post(
        "/" + index + "/_search", json{{"size", 10000}, {"query", {{"match_all", json::object()}}}}.dump());
    std::map<std::string, json> out;
    if (response.status != 200) return out;
    const json body = json::parse(response.body);
    for (const auto& hit : body["hits"]["hits"]) {
      json source = hit["_source"];
      for (const auto field : es_projector::kBookkeepingFields) source.erase(std::string(field));
      out[hit["_id"].get<std::string>()] = source;
    }
    return out;
  }
  std::int64_t count(const std::string& index) {
    const auto response = search_.get("/" + index + "/_count");
    return response.status == 200 ? json::parse(response.body)["count"].get<std::int64_t>() : -1;
  }
  // The indices the alias points to.
  std::vector<std::string> alias_targets(const std::string& name) {
    const auto response = search_.get("/_alias/" + name);
    std::vector<std::string> out;
    if (response.status != 200) return out;
    const json body = json::parse(response.body);
    for (const auto& [index, ignored] : body.items()) out.push_back(index);
    return out;
  }
  bool exists(const std::string& index) { return search_.get("/" + index).status == 200; }

  static std::string projector_yaml(const std::string& table, const std::string& users,
                                    const std::string& messages, int bulk = 200) {
    return fmt::format(
        "  bulk_max_actions: {3}\n"
        "  indices:\n"
        "    - name: {1}\n      settings: {{number_of_replicas: 0}}\n"
        "    - name: {2}\n      settings: {{number_of_replicas: 0}}\n"
        "      mappings: {{properties: {{body: {{type: text}}, author: {{type: keyword}}}}}}\n"
        "  mirror:\n    - table: public.{0}\n      index: {1}\n"
        "  mappings:\n    - index: {2}\n      aggregate_types: [conversation]\n      events:\n"
        "        - {{types: MessageSent, id: payload.message_id, fields: {{body: payload.text, author: "
        "payload.author}}}}\n"
        "        - {{types: MessageEdited, action: update, id: payload.message_id, fields: {{body: "
        "payload.text}}}}\n"
        "        - {{types: MessageDeleted, action: delete, id: payload.message_id}}\n",
        table, users, messages, bulk);
  }

  ::testing::AssertionResult equals(const std::map<std::string, json>& expected, const std::string& index) {
    const auto actual = documents(index);
    int wrong = 0;
    std::string first;
    for (const auto& [id, doc] : expected) {
      const auto found = actual.find(id);
      if (found == actual.end() || found->second != doc) {
        if (wrong++ == 0)
          first = fmt::format("{}: expected {}, found {}", id, doc.dump(),
                              found == actual.end() ? "nothing" : found->second.dump());
      }
    }
    for (const auto& [id, doc] : actual) {
      if (!expected.contains(id) && wrong++ == 0) first = fmt::format("{}: unexpected {}", id, doc.dump());
    }
    if (wrong == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << index << ": " << wrong << " document(s) differ (" << actual.size()
                                         << " found, " << expected.size() << " expected); first: " << first;
  }

  http::HttpClient search_{http::ClientOptions{.base_url = stack_env().search_url}};
  std::vector<std::string> aliases_;
};

ctl::EsReplayResult replay(const Config& config, const std::string& name,
                           std::chrono::milliseconds grace = 0ms) {
  const auto projections = ctl::list_projections(config);
  const auto& projection = ctl::find_projection(projections, name, ctl::Sink::es);
  ctl::Progress progress("events replayed into " + name, false, 2s);
  ctl::EsReplayOptions options;
  options.grace = grace;
  return ctl::replay_es_index(config, projection, options, progress);
}

TEST_F(CtlEsReplay,
       replaying_both_indices_during_a_workload_never_fails_a_reader_and_ends_equal_to_the_source) {
  const std::string users = alias("esr_users");
  const std::string messages = alias("esr_msgs");
  Workload workload;
  workload.table = unique_name("esr_t");
  PgProjectorHarness live("esr_live", "", projector_yaml(workload.table, users, messages), {},
                          ProjectorKind::es);
  workload.row_topic = live.prefix() + ".public." + workload.table;
  workload.event_topic = live.event_topic("conversation");
  EventPublisher::create_topics({workload.row_topic, workload.event_topic}, 3);
  {
    EventPublisher publisher;
    for (int i = 0; i < 400; ++i) workload.transaction(publisher, 40);  // 16,000 events of history
  }
  live.start();
  ASSERT_TRUE(live.wait_ready());
  ASSERT_TRUE(poll_until([&] { return live.caught_up() && count(users) > 0 && count(messages) > 0; }, 90s,
                         "the live projector caught up with the history"))
      << live.process().log_tail();

  // Readers query both aliases all the time; any failure or empty answer is recorded.
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::atomic<long> queries{0};
  std::thread reader([&] {
    http::HttpClient client(http::ClientOptions{.base_url = stack_env().search_url});
    while (!stop) {
      for (const auto& index : {users, messages}) {
        const auto counted = client.get("/" + index + "/_count");
        const auto searched = client.post(
            "/" + index + "/_search", json{{"size", 3}, {"query", {{"match_all", json::object()}}}}.dump());
        std::string problem;
        if (counted.status != 200) {
          problem = fmt::format("_count {}: {}", counted.status, counted.body.substr(0, 200));
        } else if (json::parse(counted.body)["count"].get<std::int64_t>() == 0) {
          problem = "_count 0";
        } else if (searched.status != 200) {
          problem = fmt::format("_search {}: {}", searched.status, searched.body.substr(0, 200));
        } else if (json::parse(searched.body)["hits"]["hits"].empty()) {
          problem = "_search without hits";
        }
        ++queries;
        if (!problem.empty()) {
          const std::lock_guard lock(mutex);
          failures.push_back(index + ": " + problem);
        }
      }
    }
  });
  // The workload keeps writing while both replays run.
  std::atomic<bool> stop_writing{false};
  std::thread writer([&] {
    EventPublisher publisher;
    while (!stop_writing) workload.transaction(publisher, 20);
  });
  const auto stop_threads = [&] {
    stop_writing = true;
    if (writer.joinable()) writer.join();
    stop = true;
    if (reader.joinable()) reader.join();
  };

  const Config config = load_config(live.config_path());
  ctl::EsReplayResult results[2];
  try {
    results[0] = replay(config, users);
    results[1] = replay(config, messages);
  } catch (...) {
    stop_threads();
    throw;
  }
  const long queries_during_replay = queries;
  stop_threads();

  for (const auto& result : results) {
    EXPECT_TRUE(result.swapped) << result.alias;
    EXPECT_FALSE(result.interrupted) << result.alias;
    EXPECT_FALSE(result.resumed) << result.alias;
    EXPECT_EQ(result.old_index, result.alias + "_v1");
    EXPECT_EQ(result.new_index, result.alias + "_v2");
    EXPECT_EQ(result.old_index_state, "deleted");
    EXPECT_GT(result.events, 7000U) << result.alias;
    EXPECT_EQ(alias_targets(result.alias), std::vector<std::string>{result.alias + "_v2"});
    EXPECT_FALSE(exists(result.alias + "_v1")) << result.alias;
    std::printf("replay of %s: %llu events in %.1f s\n", result.alias.c_str(),
                static_cast<unsigned long long>(result.events), result.seconds);
  }
  EXPECT_GT(queries_during_replay, 20);
  {
    const std::lock_guard lock(mutex);
    EXPECT_TRUE(failures.empty()) << failures.size() << " failed reader queries of " << queries_during_replay
                                  << "; first: " << failures.front();
  }
  std::printf("%ld reader queries, %zu failed; %llu events published\n", queries_during_replay,
              failures.size(), static_cast<unsigned long long>(workload.counter));

  // The live projector, now writing to the new indices, catches up: the documents are the source's.
  ASSERT_TRUE(poll_until([&] { return equals(workload.rows, users) && equals(workload.messages, messages); },
                         90s, "the live projector caught up"))
      << equals(workload.rows, users).message() << "\n"
      << equals(workload.messages, messages).message() << "\n"
      << live.process().log_tail();
  EXPECT_EQ(live.stop(), 0);
}

TEST_F(CtlEsReplay, an_interrupted_replay_leaves_the_alias_alone_and_the_next_run_resumes_it) {
  const std::string users = alias("esr_ri_users");
  const std::string messages = alias("esr_ri_msgs");
  Workload workload;
  workload.table = unique_name("esr_ri_t");
  // Small bulks: the replay takes a few seconds, long enough to be interrupted mid-build.
  PgProjectorHarness live("esr_ri", "", projector_yaml(workload.table, users, messages, 50), {},
                          ProjectorKind::es);
  workload.row_topic = live.prefix() + ".public." + workload.table;
  workload.event_topic = live.event_topic("conversation");
  EventPublisher::create_topics({workload.row_topic, workload.event_topic}, 3);
  {
    EventPublisher publisher;
    for (int i = 0; i < 600; ++i) workload.transaction(publisher, 50);  // 30,000 events
  }
  live.start();
  ASSERT_TRUE(live.wait_ready());
  ASSERT_TRUE(poll_until([&] { return equals(workload.messages, messages); }, 120s,
                         "the live projector caught up with the history"))
      << equals(workload.messages, messages).message() << "\n"
      << live.process().log_tail();
  const Config config = load_config(live.config_path());
  const std::string group = config.es_projector.group_id + ".resync." + messages + ".v2";

  // Interrupted as SIGINT would (the same flag), once the replay has committed its first bulks.
  ctl::EsReplayResult first;
  std::exception_ptr failure;
  std::thread run([&] {
    try {
      first = replay(config, messages);
    } catch (...) {
      failure = std::current_exception();
    }
  });
  const bool building = poll_until([&] { return committed_offsets(group, workload.event_topic) > 0; }, 60s,
                                   "the replay's first commit");
  shutdown::request();
  run.join();
  shutdown::reset_for_testing();
  if (failure) std::rethrow_exception(failure);
  ASSERT_TRUE(building);
  EXPECT_TRUE(first.interrupted);
  EXPECT_FALSE(first.swapped);
  EXPECT_LT(first.events, workload.message_events) << "the replay finished before the interrupt";
  EXPECT_EQ(alias_targets(messages), std::vector<std::string>{messages + "_v1"});
  EXPECT_TRUE(exists(messages + "_v2"));
  EXPECT_TRUE(equals(workload.messages, messages)) << "the live index changed";
  // The interrupted run committed what it had applied.
  EXPECT_GT(committed_offsets(group, workload.event_topic), 0);

  // Through the run_es_replay entry point, as the CLI calls it: --json on stdout.
  const auto projections = ctl::list_projections(config);
  ctl::Progress progress("events replayed", false, 2s);
  ctl::EsReplayOptions options;
  options.grace = 0ms;
  options.json = true;
  ::testing::internal::CaptureStdout();
  const int code = ctl::run_es_replay(config, ctl::find_projection(projections, messages, ctl::Sink::es),
                                      options, progress);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0) << out;
  const json result = json::parse(out);
  EXPECT_EQ(result["projection"], messages);
  EXPECT_EQ(result["sink"], "es");
  EXPECT_EQ(result["resumed"], true);
  EXPECT_EQ(result["old_index"], messages + "_v1");
  EXPECT_EQ(result["new_index"], messages + "_v2");
  EXPECT_LE(result["events"].get<std::uint64_t>(), workload.message_events - first.events + 200)
      << "it started over";
  EXPECT_TRUE(result["seconds"].is_number());
  EXPECT_EQ(alias_targets(messages), std::vector<std::string>{messages + "_v2"});
  EXPECT_FALSE(exists(messages + "_v1"));
  EXPECT_TRUE(equals(workload.messages, messages));
  std::printf("interrupted replay: %llu of %llu events, then the resumed run %llu\n",
              static_cast<unsigned long long>(first.events),
              static_cast<unsigned long long>(workload.message_events),
              static_cast<unsigned long long>(result["events"].get<std::uint64_t>()));
  // The shadow group is gone once the hand-over is done.
  EXPECT_EQ(committed_offsets(group, workload.event_topic), 0);
  EXPECT_EQ(live.stop(), 0);
}

TEST_F(CtlEsReplay,
       an_index_retired_with_a_grace_period_is_deleted_by_a_later_run_once_the_grace_has_passed) {
  const std::string users = alias("esr_gr_users");
  const std::string messages = alias("esr_gr_msgs");
  Workload workload;
  workload.table = unique_name("esr_gr_t");
  PgProjectorHarness live("esr_gr", "", projector_yaml(workload.table, users, messages), {},
                          ProjectorKind::es);
  workload.row_topic = live.prefix() + ".public." + workload.table;
  workload.event_topic = live.event_topic("conversation");
  EventPublisher::create_topics({workload.row_topic, workload.event_topic}, 3);
  {
    EventPublisher publisher;
    for (int i = 0; i < 50; ++i) workload.transaction(publisher, 40);
  }
  live.start();
  ASSERT_TRUE(live.wait_ready());
  ASSERT_TRUE(poll_until([&] { return equals(workload.rows, users); }, 90s, "the live projector caught up"))
      << equals(workload.rows, users).message() << "\n"
      << live.process().log_tail();
  const Config config = load_config(live.config_path());

  // A replay with an hour of grace, stopped (as by SIGINT) once the alias has moved: it finishes
  // the hand-over, marks the old index and leaves it.
  ctl::EsReplayResult first;
  std::exception_ptr failure;
  std::thread run([&] {
    try {
      first = replay(config, users, 1h);
    } catch (...) {
      failure = std::current_exception();
    }
  });
  const bool swapped =
      poll_until([&] { return alias_targets(users) == std::vector<std::string>{users + "_v2"}; }, 60s,
                 "the alias on _v2");
  shutdown::request();
  run.join();
  shutdown::reset_for_testing();
  if (failure) std::rethrow_exception(failure);
  ASSERT_TRUE(swapped);
  EXPECT_TRUE(first.swapped);
  EXPECT_EQ(first.old_index_state, "retiring");
  ASSERT_TRUE(first.delete_after.has_value());
  const auto mapping = search_.get("/" + users + "_v1/_mapping");
  ASSERT_EQ(mapping.status, 200) << "the old index is kept during its grace period";
  const json meta = json::parse(mapping.body)[users + "_v1"]["mappings"]["_meta"]["syncline_retired"];
  EXPECT_EQ(meta["delete_after"], *first.delete_after);
  EXPECT_EQ(meta["replaced_by"], users + "_v2");

  // Its grace is over (as if an hour had passed): the next replay deletes it first.
  json over = meta;
  over["delete_after"] = "2000-01-01T00:00:00.000Z";
  ASSERT_EQ(search_
                .send({.method = "PUT",
                       .path = "/" + users + "_v1/_mapping",
                       .body = json{{"_meta", {{"syncline_retired", over}}}}.dump()})
                .status,
            200);
  const auto second = replay(config, users);
  EXPECT_FALSE(exists(users + "_v1"));
  EXPECT_EQ(second.old_index, users + "_v2");
  EXPECT_EQ(second.new_index, users + "_v3");
  EXPECT_EQ(second.old_index_state, "deleted");
  EXPECT_FALSE(exists(users + "_v2"));
  EXPECT_EQ(alias_targets(users), std::vector<std::string>{users + "_v3"});
  EXPECT_TRUE(equals(workload.rows, users));
  EXPECT_EQ(live.stop(), 0);
}

TEST_F(CtlEsReplay, the_cli_stops_on_sigint_before_the_swap_and_the_next_run_resumes_and_says_so) {
  const std::string users = alias("esr_cli_users");
  const std::string messages = alias("esr_cli_msgs");
  Workload workload;
  workload.table = unique_name("esr_cli_t");
  PgProjectorHarness live("esr_cli", "", projector_yaml(workload.table, users, messages, 50), {},
                          ProjectorKind::es);
  workload.row_topic = live.prefix() + ".public." + workload.table;
  workload.event_topic = live.event_topic("conversation");
  EventPublisher::create_topics({workload.row_topic, workload.event_topic}, 3);
  {
    EventPublisher publisher;
    for (int i = 0; i < 600; ++i) workload.transaction(publisher, 50);
  }
  live.start();
  ASSERT_TRUE(live.wait_ready());
  ASSERT_TRUE(poll_until([&] { return equals(workload.messages, messages); }, 120s,
                         "the live projector caught up with the history"))
      << equals(workload.messages, messages).message() << "\n"
      << live.process().log_tail();
  const std::string group =
      load_config(live.config_path()).es_projector.group_id + ".resync." + messages + ".v2";
  const std::vector<std::string> command{"--config", live.config_path(), "resync", "replay",  "--projection",
                                         messages,   "--sink",           "es",     "--grace", "0"};

  CtlProcess first(command);
  first.start();
  ASSERT_TRUE(
      poll_until([&] { return committed_offsets(group, workload.event_topic) > 0 || !first.running(); }, 60s,
                 "the replay's first commit"));
  const auto stopped = first.stop(SIGINT, 60s);
  EXPECT_EQ(stopped.exit_code, 1) << stopped.describe();
  EXPECT_NE(stopped.out.find("interrupted"), std::string::npos) << stopped.describe();
  EXPECT_EQ(alias_targets(messages), std::vector<std::string>{messages + "_v1"});
  EXPECT_TRUE(exists(messages + "_v2"));

  auto json_command = command;
  json_command.push_back("--json");
  const auto second = run_ctl(json_command, 120s);
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  EXPECT_NE(second.err.find("resuming the replay into " + messages + "_v2"), std::string::npos)
      << second.describe();
  const json out = json::parse(second.out);
  EXPECT_EQ(out["projection"], messages);
  EXPECT_EQ(out["sink"], "es");
  EXPECT_EQ(out["resumed"], true);
  EXPECT_EQ(out["old_index"], messages + "_v1");
  EXPECT_EQ(out["new_index"], messages + "_v2");
  EXPECT_LT(out["events"].get<std::uint64_t>(), workload.message_events);
  EXPECT_EQ(alias_targets(messages), std::vector<std::string>{messages + "_v2"});
  EXPECT_FALSE(exists(messages + "_v1"));
  EXPECT_TRUE(equals(workload.messages, messages));
  EXPECT_EQ(live.stop(), 0);
}

}  // namespace
}  // namespace syncline::test
