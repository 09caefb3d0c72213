// The fault checker (Jepsen-style): a seeded workload of every kind of change the pipeline carries,
// faults at random moments (SIGKILLs, failpoints, crashes of the services), then a drain and a
// checker that compares every sink with the write database and the event history. See docs/CHAOS.md.
//
// SYNCLINE_FAULTS_SEED=S repeats a run; SYNCLINE_FAULTS_MINUTES=N (scripts/soak) draws faults for
// N minutes instead of the bounded schedule (every fault kind once).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/dead_letter.hpp"
#include "common/envelope.hpp"
#include "common/kafka.hpp"
#include "common/http_client.hpp"
#include "common/pg.hpp"
#include "tests/faults/fault_plan.hpp"
#include "tests/faults/fault_workload.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/reconnecting.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_source_dir.hpp"
#include "syncline_test_binaries.hpp"

namespace syncline::test::faults {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

constexpr int kPrefillRows = 60000;  // the initial snapshot's table (bulk): several chunks
constexpr int kKilled = 128 + SIGKILL;
// What the es-projector's reason says when it refuses an event it cannot order (document_planner.cpp).
constexpr std::string_view kUnorderedReason = "events of different keys are not ordered";

// key -> the row's values as one line; built from a query whose first column is the key.
using Rows = std::map<std::string, std::string>;

Rows rows_of(pg::PgConnection& db, const std::string& sql, bool multiset = false) {
  Rows rows;
  const auto result = db.exec(sql);
  for (int row = 0; row < result.rows(); ++row) {
    std::string line;
    for (int column = 1; column < result.columns(); ++column) {
      line += (column > 1 ? " | " : "") +
              (result.is_null(row, column) ? std::string("NULL") : std::string(result.value(row, column)));
    }
    std::string key(result.value(row, 0));
    if (multiset) {  // a keyless table: the key is the whole row, the value its count
      key += " | " + line;
      rows[key] = std::to_string(rows.contains(key) ? std::stoll(rows[key]) + 1 : 1);
    } else {
      rows[key] = line;
    }
  }
  return rows;
}

// The first differences (at most 5), "" when equal.
std::string differences(const Rows& expected, const Rows& actual, const std::string& what) {
  std::string out;
  int shown = 0;
  int total = 0;
  for (const auto& [key, row] : expected) {
    const auto it = actual.find(key);
    if (it == actual.end()) {
      if (shown++ < 5) out += fmt::format("  {} {}: missing, expected [{}]\n", what, key, row.substr(0, 300));
      ++total;
    } else if (it->second != row) {
      if (shown++ < 5)
        out += fmt::format("  {} {}: [{}], expected [{}]\n", what, key, it->second.substr(0, 300), row.substr(0, 300));
      ++total;
    }
  }
  for (const auto& [key, row] : actual) {
    if (expected.contains(key)) continue;
    if (shown++ < 5) out += fmt::format("  {} {}: extra [{}]\n", what, key, row.substr(0, 300));
    ++total;
  }
  if (total > 5) out += fmt::format("  {}: {} differing keys in all\n", what, total);
  return out;
}

struct Binary {
  const char* name;
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  int self_exits = 0;
  int failpoint_kills = 0;
};

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_stack());
    name_ = unique_name("faults");
    const auto& env = stack_env();
    write_ = std::make_unique<Reconnecting>(env.write_pg_dsn);
    read_ = std::make_unique<Reconnecting>(env.read_pg_dsn);
    create_write_schema(env.write_pg_dsn, name_, kPrefillRows);
    created_ = true;
    config_ = write_run_config(name_);
    binaries_.push_back({"producer", make_binary(SYNCLINE_PRODUCER_BIN, "producer"), config_.producer_port});
    binaries_.push_back({"pg-projector", make_binary(SYNCLINE_PG_PROJECTOR_BIN, "pg"), config_.pg_port});
    binaries_.push_back({"es-projector", make_binary(SYNCLINE_ES_PROJECTOR_BIN, "es"), config_.es_port});
    targets_.snapshot_tables = {name_ + ".bulk", name_ + ".items", name_ + ".kv"};
    targets_.pg_projections = {"accounts", "mirror"};
    targets_.es_projections = {name_ + "_items", name_ + "_mixed"};
  }

  void TearDown() override {
    // A search restart killed half-way leaves an engine running that scripts/stack no longer
    // tracks (its pid file is written late): let it finish.
    if (search_restart_) (void)search_restart_->wait(240s);
    search_restart_.reset();
    if (workload_) workload_->stop();
    binaries_.clear();
    if (!created_) return;
    ChildProcess up(std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack", {"up"}, log_path("stack"));
    up.start();
    (void)up.wait(240s);
    try {  // the slot must go, or the write database keeps WAL for it
      pg::PgConnection db(stack_env().write_pg_dsn, 5s);
      db.exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
              {pg::Param(name_)});
      if (!HasFailure()) {
        db.exec(fmt::format("DROP SCHEMA {0} CASCADE; DROP TABLE public.{0}_outbox; DROP PUBLICATION IF EXISTS {0}",
                            name_));
        pg::PgConnection read(stack_env().read_pg_dsn, 5s);
        for (const char* suffix : {"_mirror", "_acct", "_mirror__resync", "_acct__resync"})
          read.exec(fmt::format("DROP SCHEMA IF EXISTS {}{} CASCADE", name_, suffix));
      }
    } catch (const std::exception& e) {
      std::cout << "[faults] clean-up: " << e.what() << "\n";
    }
    if (!HasFailure()) {
      for (const char* log : {"producer", "pg", "es", "ctl", "stack"}) std::remove(log_path(log).c_str());
      std::remove(config_.path.c_str());
    }
  }

  std::string log_path(const char* what) const { return fmt::format("/tmp/{}.{}.log", name_, what); }
  std::unique_ptr<ChildProcess> make_binary(const char* program, const char* log) {
    return std::make_unique<ChildProcess>(program, std::vector<std::string>{"--config", config_.path}, log_path(log));
  }
  Binary& producer() { return binaries_[0]; }
  Binary& pg_projector() { return binaries_[1]; }
  Binary& es_projector() { return binaries_[2]; }

  void note(const std::string& line) {
    std::cout << fmt::format("[faults {:6.1f}s] {}\n", seconds_since(started_), line) << std::flush;
  }

  // --- supervision: a binary that exits is started again, as a restart policy would ------------

  void supervise() {
    for (auto& binary : binaries_) {
      if (binary.process->running()) continue;
      const auto status = binary.process->wait(0ms).value_or(-1);
      if (binary.process->pid() > 0 && std::string(binary.name) == "producer" && status == 3) {
        refused_ = true;  // source refused: never expected here (the checker changes no identity)
      }
      if (status == kKilled) {
        ++binary.failpoint_kills;
      } else if (binary.process->pid() > 0) {
        ++binary.self_exits;
        note(fmt::format("{} exited by itself (status {}); restarting", binary.name, status));
      }
      binary.process->set_env("SYNCLINE_FAILPOINTS", "");
      binary.process->start();
    }
    if (search_restart_ && !search_restart_->running()) {
      EXPECT_EQ(search_restart_->wait(0ms), 0) << search_restart_->log_tail(20);
      search_restart_.reset();
      note("search back");
    }
  }

  // Supervises until `done()` or the deadline.
  ::testing::AssertionResult supervise_until(const std::function<bool()>& done, std::chrono::milliseconds deadline,
                                             const std::string& what) {
    return poll_until(
        [&] {
          supervise();
          if (refused_) return true;
          return done();
        },
        deadline, what);
  }

  // The fault's random moment: the pipeline runs (supervised) for `delay`.
  void run_for(std::chrono::milliseconds delay) {
    const auto until = Clock::now() + delay;
    (void)supervise_until([&] { return Clock::now() >= until; }, delay + 5s, "the fault's moment");
  }

  ::testing::AssertionResult stack(const std::vector<std::string>& args) {
    ChildProcess script(std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack", args, log_path("stack"));
    script.start();
    const auto what = fmt::format("scripts/stack {} {}", args[0], args[1]);
    if (auto done = supervise_until([&] { return !script.running(); }, 240s, what); !done) return done;
    if (const auto status = script.wait(0ms); status != 0)
      return ::testing::AssertionFailure() << what << " exited with " << status.value_or(-1) << "\n"
                                           << script.log_tail(20);
    return ::testing::AssertionSuccess();
  }

  // Restarts `binary` with `failpoint` armed; waits until the failpoint kills it (or kills it after
  // `fallback`), then starts it again unarmed. `before_wait` runs once it is started (e.g. asks the
  // workload for a big transaction).
  ::testing::AssertionResult failpoint_run(Binary& binary, const std::string& failpoint,
                                           std::chrono::milliseconds fallback,
                                           const std::function<void()>& before_wait = {}) {
    binary.process->stop(SIGKILL, 30s);
    binary.process->set_env("SYNCLINE_FAILPOINTS", failpoint);
    binary.process->start();
    if (before_wait) before_wait();
    const auto until = Clock::now() + fallback;
    bool fired = false;
    (void)poll_until(
        [&] {
          if (!binary.process->running()) {
            fired = binary.process->wait(0ms) == kKilled;
            return true;
          }
          return Clock::now() >= until;
        },
        fallback + 5s, "the failpoint");
    if (binary.process->running()) binary.process->stop(SIGKILL, 30s);
    ++(fired ? binary.failpoint_kills : kills_by_hand_);
    note(fmt::format("  {} {} (failpoint {})", binary.name, fired ? "killed by its failpoint" : "killed by hand",
                     failpoint));
    binary.process->set_env("SYNCLINE_FAILPOINTS", "");
    binary.process->start();
    return ::testing::AssertionSuccess();
  }

  // `syncline-ctl resync ...` killed (failpoint, else after `fallback`), then run again to the end.
  ::testing::AssertionResult ctl_killed_then_done(std::vector<std::string> args, const std::string& failpoint,
                                                  std::chrono::milliseconds fallback) {
    args.insert(args.begin(), {"--config", config_.path});
    {
      ChildProcess ctl(SYNCLINE_CTL_BIN, args, log_path("ctl"));
      ctl.set_env("SYNCLINE_FAILPOINTS", failpoint);
      ctl.start();
      const auto until = Clock::now() + fallback;
      (void)supervise_until([&] { return !ctl.running() || Clock::now() >= until; }, fallback + 5s, "ctl");
      const auto status = ctl.running() ? ctl.stop(SIGKILL, 30s) : ctl.wait(0ms);
      note(fmt::format("  syncline-ctl {} {}: exit {}", args[2], args[3], status.value_or(-1)));
    }
    for (const bool restart : {false, true}) {
      auto again = args;
      if (restart) again.push_back("--restart");
      ChildProcess ctl(SYNCLINE_CTL_BIN, again, log_path("ctl"));
      ctl.start();
      if (auto done = supervise_until([&] { return !ctl.running(); }, 300s, "syncline-ctl " + args[2]); !done)
        return done;
      const auto status = ctl.wait(0ms);
      note(fmt::format("  syncline-ctl {} {} again{}: exit {}", args[2], args[3], restart ? " --restart" : "",
                       status.value_or(-1)));
      if (status == 0) return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "syncline-ctl " << args[2] << " " << args[3]
                                         << " did not finish after its kill\n"
                                         << ChildProcess(SYNCLINE_CTL_BIN, {}, log_path("ctl")).log_tail(20);
  }

  ::testing::AssertionResult inject(const Fault& fault) {
    switch (fault.kind) {
      case FaultKind::producer_kill:
      case FaultKind::pg_projector_kill:
      case FaultKind::es_projector_kill: {
        auto& binary = fault.kind == FaultKind::producer_kill       ? producer()
                       : fault.kind == FaultKind::pg_projector_kill ? pg_projector()
                                                                    : es_projector();
        run_for(fault.delay);
        if (!binary.process->stop(SIGKILL, 30s)) return ::testing::AssertionFailure() << binary.name << " survived";
        ++kills_by_hand_;
        binary.process->start();
        return ::testing::AssertionSuccess();
      }
      case FaultKind::producer_split_kill:
        return failpoint_run(producer(), fault.failpoint, fault.delay + 20s, [&] { workload_->big_transaction(); });
      case FaultKind::producer_failpoint:
        return failpoint_run(producer(), fault.failpoint, fault.delay + 10s);
      case FaultKind::pg_projector_failpoint:
        return failpoint_run(pg_projector(), fault.failpoint, fault.delay + 10s);
      case FaultKind::es_projector_failpoint:
        return failpoint_run(es_projector(), fault.failpoint, fault.delay + 10s);
      case FaultKind::ctl_snapshot_kill:
        return ctl_killed_then_done({"resync", "snapshot", "--table", fault.target, "--chunk-rows", "2000"},
                                    fault.failpoint, fault.delay + 20s);
      case FaultKind::ctl_pg_replay_kill:
        return ctl_killed_then_done({"resync", "replay", "--projection", fault.target, "--sink", "pg", "--grace", "0"},
                                    fault.failpoint, fault.failpoint.empty() ? fault.delay : 120s);
      case FaultKind::ctl_es_replay_kill:
        // The replay needs the search engine, which a search kill restarts in the background.
        if (auto back = supervise_until([&] { return !search_restart_; }, 240s, "search back"); !back) return back;
        return ctl_killed_then_done({"resync", "replay", "--projection", fault.target, "--sink", "es", "--grace", "0"},
                                    fault.failpoint, fault.failpoint.empty() ? fault.delay : 120s);
      case FaultKind::write_pg_crash:
        if (auto crashed = stack({"crash", "write-pg"}); !crashed) return crashed;
        return stack({"up", "write-pg"});
      case FaultKind::read_pg_kill:
        if (auto killed = stack({"kill", "read-pg"}); !killed) return killed;
        return stack({"up", "read-pg"});
      case FaultKind::kafka_kill:
        if (auto killed = stack({"kill", "kafka"}); !killed) return killed;
        return stack({"up", "kafka"});
      case FaultKind::search_kill: {
        // ~40 s to start: restarted in the background while the next faults go on.
        if (auto back = supervise_until([&] { return !search_restart_; }, 240s, "search back"); !back) return back;
        if (auto killed = stack({"kill", "search"}); !killed) return killed;
        search_restart_ = std::make_unique<ChildProcess>(std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack",
                                                         std::vector<std::string>{"up", "search"}, log_path("stack"));
        search_restart_->start();
        return ::testing::AssertionSuccess();
      }
    }
    return ::testing::AssertionFailure() << "unknown fault";
  }

  // --- progress ---------------------------------------------------------------------------------

  std::int64_t write_events() {
    try {
      return std::stoll(std::string(
          write_->get().exec(fmt::format("SELECT count(*) FROM {}.ledger", name_)).value(0, 0)));
    } catch (const std::exception&) {
      write_->reset();
      return -1;
    }
  }
  std::int64_t projected_events() {
    try {
      return std::stoll(std::string(
          read_->get().exec(fmt::format("SELECT count(DISTINCT event_id) FROM {}_acct.event_log", name_)).value(0, 0)));
    } catch (const std::exception&) {
      read_->reset();
      return -1;
    }
  }
  // Events committed before the fault reached the SQL projection: the pipeline moves again.
  ::testing::AssertionResult moving_again(std::int64_t before, const std::string& what) {
    return supervise_until([&] { return projected_events() >= before; }, 240s,
                           "events committed before the " + what + " in read PostgreSQL");
  }

  // --- the checker ------------------------------------------------------------------------------

  std::string mirror_differences() {
    auto& w = write_->get();
    auto& r = read_->get();
    std::string out;
    out += differences(
        rows_of(w, fmt::format("SELECT id, name, qty, price::text, extract(epoch FROM updated_at)::text, "
                               "to_jsonb(tags)::text, doc::text, coalesce(md5(big), 'NULL') FROM {}.items",
                               name_)),
        rows_of(r, fmt::format("SELECT id, name, qty, price::numeric::text, extract(epoch FROM "
                               "updated_at::timestamptz)::text, to_jsonb(tags)::text, doc::text, "
                               "coalesce(md5(big), 'NULL') FROM {}_mirror.items",
                               name_)),
        "pg mirror items");
    out += differences(rows_of(w, fmt::format("SELECT k, v, flag FROM {}.kv", name_)),
                       rows_of(r, fmt::format("SELECT k, v, flag FROM {}_mirror.kv", name_)), "pg mirror kv");
    out += differences(rows_of(w, fmt::format("SELECT id, grp, v FROM {}.bulk", name_)),
                       rows_of(r, fmt::format("SELECT id, grp, v FROM {}_mirror.bulk", name_)), "pg mirror bulk");
    out += differences(rows_of(w, fmt::format("SELECT n, note FROM {}.log", name_), true),
                       rows_of(r, fmt::format("SELECT n, note FROM {}_mirror.log", name_), true),
                       "pg mirror log (no primary key)");
    return out;
  }

  // Counters of the SQL projection against the ledger (the event history), and each event once.
  std::string projection_differences() {
    auto& w = write_->get();
    auto& r = read_->get();
    std::string out = differences(
        rows_of(w, fmt::format("SELECT account_id, count(*) FILTER (WHERE type = 'AccountOpened'), count(*) FILTER "
                               "(WHERE type = 'Deposited'), coalesce(sum(amount) FILTER (WHERE type = 'Deposited'), "
                               "0), count(*) FILTER (WHERE type = 'Renamed'), count(*) FILTER (WHERE type = "
                               "'TransferNoted') FROM {}.ledger GROUP BY account_id",
                               name_)),
        rows_of(r, fmt::format("SELECT account_id, opened, deposits, deposited, renames, transfers FROM "
                               "{}_acct.account_totals",
                               name_)),
        "account_totals");
    out += differences(rows_of(w, fmt::format("SELECT event_id, type, 1 FROM {}.ledger", name_)),
                       rows_of(r, fmt::format("SELECT event_id, min(type), count(*) FROM {}_acct.event_log GROUP "
                                              "BY event_id",
                                              name_)),
                       "event_log (event id: type | times applied)");
    return out;
  }

  std::map<std::string, json> documents(const std::string& index) {
    std::map<std::string, json> out;
    search_.post(fmt::format("/{}/_refresh", index), "");
    auto response = search_.post(fmt::format("/{}/_search?scroll=1m", index), R"({"size": 2000, "sort": ["_doc"]})");
    while (true) {
      if (response.status != 200) throw std::runtime_error("scrolling " + index + ": " + response.body.substr(0, 300));
      const auto page = json::parse(response.body);
      const auto& hits = page["hits"]["hits"];
      for (const auto& hit : hits) out[hit["_id"].get<std::string>()] = hit["_source"];
      const auto scroll_id = page["_scroll_id"].get<std::string>();
      if (hits.empty()) {
        search_.del("/_search/scroll/" + scroll_id);
        return out;
      }
      response = search_.post("/_search/scroll", json{{"scroll", "1m"}, {"scroll_id", scroll_id}}.dump());
    }
  }

  static std::string field(const json& document, const char* name) {
    if (!document.contains(name) || document[name].is_null()) return "NULL";
    return document[name].is_string() ? document[name].get<std::string>() : document[name].dump();
  }

  std::string search_differences() {
    auto& w = write_->get();
    std::string out;
    // Both sides as name | qty | price | tags | doc | md5(big), JSON through nlohmann's dump.
    Rows expected;
    const auto items = w.exec(fmt::format(
        "SELECT id, name, qty, price::text, to_jsonb(tags)::text, doc::text, md5(big) FROM {}.items", name_));
    const auto text = [&](int row, int column) {
      return items.is_null(row, column) ? std::string("NULL") : std::string(items.value(row, column));
    };
    const auto json_text = [](const std::string& value) {
      return value == "NULL" ? value : json::parse(value).dump();
    };
    for (int row = 0; row < items.rows(); ++row) {
      expected[text(row, 0)] = fmt::format("{} | {} | {} | {} | {} | {}", text(row, 1), text(row, 2), text(row, 3),
                                           json_text(text(row, 4)), json_text(text(row, 5)), text(row, 6));
    }
    Rows actual;
    for (const auto& [id, doc] : documents(name_ + "_items")) {
      const auto big = field(doc, "big");
      const auto hash =
          big == "NULL" ? big : std::string(w.exec("SELECT md5($1)", {pg::Param(big)}).value(0, 0));
      const auto dumped = [&](const char* name) {
        return doc.contains(name) && !doc[name].is_null() ? doc[name].dump() : std::string("NULL");
      };
      actual[id] = fmt::format("{} | {} | {} | {} | {} | {}", field(doc, "name"), field(doc, "qty"),
                               field(doc, "price"), dumped("tags"), dumped("doc"), hash);
    }
    out += differences(expected, actual, "search items");

    // The mixed index: kv mirror documents and account documents (mappings) side by side. An
    // account's fields come from events of two Kafka keys (the account's and each transfer's),
    // which nobody orders against each other: the projector dead-letters an event it cannot order
    // (docs/ES_PROJECTOR.md). Each field holds the value of its latest event that was not
    // dead-lettered, or of a dead-lettered one newer than that (one applied, then re-delivered
    // after a crash and refused); absent only if every event for it was dead-lettered.
    Rows expected_mixed = rows_of(w, fmt::format("SELECT k, 'kv', v, flag FROM {}.kv", name_));
    Rows actual_mixed;
    auto mixed = documents(name_ + "_mixed");
    for (const auto& [id, doc] : mixed) {
      if (doc.contains("k")) {
        actual_mixed[id] = fmt::format("kv | {} | {}", field(doc, "v"), field(doc, "flag") == "true" ? "t" : "f");
      } else {
        actual_mixed[id] = fmt::format("account | {} | {} | {}", field(doc, "owner"), field(doc, "last_deposit"),
                                       field(doc, "last_transfer"));
      }
    }
    const auto ledger = w.exec(fmt::format(
        "SELECT account_id, event_id::text, type, coalesce(owner, 'NULL'), coalesce(amount::text, 'NULL'), "
        "coalesce(transfer_id, 'NULL') FROM {}.ledger ORDER BY account_id, n",
        name_));
    struct Event {
      std::string id, type;
      std::array<std::string, 3> values;  // owner, last_deposit, last_transfer
    };
    std::map<std::string, std::vector<Event>> by_account;
    for (int row = 0; row < ledger.rows(); ++row) {
      by_account[std::string(ledger.value(row, 0))].push_back(
          {std::string(ledger.value(row, 1)), std::string(ledger.value(row, 2)),
           {std::string(ledger.value(row, 3)), std::string(ledger.value(row, 4)), std::string(ledger.value(row, 5))}});
    }
    static constexpr std::array<std::array<const char*, 3>, 3> kFields = {{{"owner", "AccountOpened", "Renamed"},
                                                                          {"last_deposit", "Deposited", ""},
                                                                          {"last_transfer", "TransferNoted", ""}}};
    for (const auto& [account, events] : by_account) {
      const auto rejected = [&](const Event& event) { return dead_letters_.unordered.contains(event.id); };
      const auto doc = mixed.find(account);
      if (doc == mixed.end() && std::ranges::all_of(events, rejected)) continue;
      std::vector<std::string> wanted;
      bool acceptable = doc != mixed.end();
      for (std::size_t f = 0; f < kFields.size(); ++f) {
        std::set<std::string> values;
        bool applied = false;
        for (auto event = events.rbegin(); event != events.rend() && !applied; ++event) {
          if (event->type != kFields[f][1] && event->type != kFields[f][2]) continue;
          values.insert(event->values[f]);
          applied = !rejected(*event);
        }
        if (!applied) values.insert("NULL");
        if (doc != mixed.end() && !values.contains(field(doc->second, kFields[f][0]))) acceptable = false;
        wanted.push_back(values.size() == 1 ? *values.begin() : fmt::format("one of {}", fmt::join(values, ", ")));
      }
      expected_mixed[account] = acceptable ? actual_mixed[account] : fmt::format("account | {}", fmt::join(wanted, " | "));
    }
    out += differences(expected_mixed, actual_mixed, "search mixed");
    return out;
  }

  // The dead-letter topics of this run (every `<name>.dlq.*`), re-read when their record count
  // changed: the events the es-projector refused because nobody ordered them (by event id), and
  // every other dead letter (each one a checker failure: no bad input is written).
  struct DeadLetters {
    std::int64_t count = 0;
    std::set<std::string> unordered;
    std::vector<std::string> other;
  };
  void refresh_dead_letters() {
    kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
    std::vector<std::string> topics;
    std::int64_t count = 0;
    for (const auto& topic : admin.list_topics(20s)) {
      if (!topic.name.starts_with(name_ + ".dlq.")) continue;
      topics.push_back(topic.name);
      for (const auto& partition : topic.partitions) {
        const auto marks = admin.watermark_offsets(topic.name, partition.id, 20s);
        count += marks.high - marks.low;
      }
    }
    if (count == dead_letters_.count) return;
    DeadLetters fresh;
    fresh.count = count;
    consume_committed_records(topics, static_cast<std::size_t>(count), 120s, [&](const ConsumedRecord& record) {
      std::string reason = "(no reason header)";
      for (const auto& header : record.headers) {
        if (header.key == consumer_dlq_header::reason) reason = header.value;
      }
      const auto envelope = json::parse(record.value, nullptr, false);
      if (record.topic.ends_with(".es-projector") && reason.find(kUnorderedReason) != std::string::npos &&
          envelope.is_object() && envelope.contains("id") && envelope["id"].is_string()) {
        fresh.unordered.insert(envelope["id"].get<std::string>());
      } else {
        fresh.other.push_back(
            fmt::format("{} {}:{}: {}", record.topic, record.partition, record.offset, reason.substr(0, 300)));
      }
    });
    dead_letters_ = std::move(fresh);
  }
  std::string dead_letter_differences() {
    std::string out;
    for (std::size_t i = 0; i < dead_letters_.other.size() && i < 5; ++i)
      out += "  dead letter " + dead_letters_.other[i] + "\n";
    if (dead_letters_.other.size() > 5) out += fmt::format("  {} other dead letters in all\n", dead_letters_.other.size());
    return out;
  }

  std::string all_differences() {
    try {
      refresh_dead_letters();  // the search check accepts the refusals among them
      return mirror_differences() + projection_differences() + search_differences() + dead_letter_differences();
    } catch (const std::exception& e) {
      write_->reset();
      read_->reset();
      return std::string("  (comparing: ") + e.what() + ")\n";
    }
  }

  // Kafka: each event id exactly once over the event topics, and per key the records' source
  // positions strictly increasing in offset order (snapshot rows and truncate copies excepted:
  // a resync snapshot re-publishes older versions on purpose). A record equal to one already seen
  // for its key is a re-delivery: counted, not an order violation.
  std::string kafka_differences(std::int64_t& records, std::int64_t& redelivered) {
    std::string out;
    const auto events = write_events();
    std::int64_t bulk = 0;
    try {
      bulk = std::stoll(std::string(write_->get().exec(fmt::format("SELECT count(*) FROM {}.bulk", name_)).value(0, 0)));
    } catch (const std::exception&) {
    }
    std::vector<std::string> topics = {name_ + ".events.account", name_ + ".events.transfer"};
    for (const char* table : {"items", "kv", "bulk", "log"}) topics.push_back(fmt::format("{}.{}.{}", name_, name_, table));
    std::map<std::string, int> ids;
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> published_order;  // event ids, first copy
    std::map<std::pair<std::string, std::string>, std::pair<std::uint64_t, std::uint64_t>> last;
    std::set<std::string> seen_exact;
    int violations = 0;
    records = static_cast<std::int64_t>(consume_committed_records(
        topics, static_cast<std::size_t>(std::max<std::int64_t>(0, events + bulk)), 180s, [&](const ConsumedRecord& rec) {
          const auto envelope = json::parse(rec.value);
          const auto op = envelope.value("op", json()).is_string() ? envelope["op"].get<std::string>() : "";
          if (rec.topic.find(".events.") != std::string::npos) {
            const auto id = envelope["id"].get<std::string>();
            if (ids[id]++ == 0 && rec.key) published_order[{rec.topic, *rec.key}].push_back(id);
          }
          if (op == "r" || op == "t" || !rec.key) return;
          const std::uint64_t version = source_version_of(envelope);
          const std::uint64_t seq = envelope["source"]["seq"].get<std::uint64_t>();
          const auto exact = fmt::format("{}/{}/{}/{}", rec.topic, *rec.key, version, seq);
          if (!seen_exact.insert(exact).second) {
            ++redelivered;
            return;
          }
          const auto key = std::make_pair(rec.topic, *rec.key);
          const auto it = last.find(key);
          const auto now = std::make_pair(version, seq);
          if (it != last.end() && !(it->second < now) && violations++ < 5) {
            out += fmt::format("  kafka order {} key {}: ({}, {}) at offset {}:{} after ({}, {})\n", rec.topic,
                               *rec.key, version, seq, rec.partition, rec.offset, it->second.first,
                               it->second.second);
          }
          if (it == last.end() || it->second < now) last[key] = now;
        }));
    if (violations > 5) out += fmt::format("  kafka order: {} violations in all\n", violations);
    Rows expected;
    Rows actual;
    for (const auto& [id, type] : rows_of(write_->get(), fmt::format("SELECT event_id, 1 FROM {}.ledger", name_)))
      expected[id] = type;
    for (const auto& [id, count] : ids) actual[id] = std::to_string(count);
    out += differences(expected, actual, "kafka event id (times published)");
    // Per key, the events in offset order are the events in the write database's commit order
    // (the ledger's n: one workload connection commits them one after another).
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> committed_order;
    const auto ledger = write_->get().exec(fmt::format(
        "SELECT aggregate_type, aggregate_id, event_id::text FROM {}.ledger ORDER BY n", name_));
    for (int row = 0; row < ledger.rows(); ++row) {
      committed_order[{fmt::format("{}.events.{}", name_, ledger.value(row, 0)), std::string(ledger.value(row, 1))}]
          .push_back(std::string(ledger.value(row, 2)));
    }
    int misordered = 0;
    for (const auto& [key, order] : committed_order) {
      const auto found = published_order.find(key);
      // A missing or doubled event is reported above.
      if (found == published_order.end() || found->second.size() != order.size() || found->second == order) continue;
      if (misordered++ < 5) {
        out += fmt::format("  kafka order {} key {}: events in offset order [{}], committed as [{}]\n", key.first,
                           key.second, fmt::join(found->second, ", "), fmt::join(order, ", "));
      }
    }
    if (misordered > 5) out += fmt::format("  kafka order against commits: {} keys in all\n", misordered);
    return out;
  }

  std::string status_of_binaries() {
    std::string out;
    for (auto& binary : binaries_)
      out += fmt::format("\n--- {} ---\n{}", binary.name, binary.process->log_tail(15));
    return out;
  }

  std::string name_;
  RunConfig config_;
  bool created_ = false;
  bool refused_ = false;
  int kills_by_hand_ = 0;
  PlanTargets targets_;
  Clock::time_point started_ = Clock::now();
  std::unique_ptr<Reconnecting> write_;
  std::unique_ptr<Reconnecting> read_;
  std::vector<Binary> binaries_;
  std::unique_ptr<Workload> workload_;
  std::unique_ptr<ChildProcess> search_restart_;
  DeadLetters dead_letters_;
  http::HttpClient search_{
      http::ClientOptions{.base_url = stack_env().search_url, .request_timeout = std::chrono::seconds(20)}};
};

TEST_F(Faults, every_sink_equals_the_write_database_after_random_faults) {
  const char* seed_text = std::getenv("SYNCLINE_FAULTS_SEED");
  const std::uint64_t seed = seed_text != nullptr ? std::stoull(seed_text) : std::random_device{}() % 1000000;
  const char* minutes_text = std::getenv("SYNCLINE_FAULTS_MINUTES");
  const double minutes = minutes_text != nullptr ? std::stod(minutes_text) : 0;
  RecordProperty("seed", std::to_string(seed));
  note(fmt::format("seed {} (SYNCLINE_FAULTS_SEED={} repeats the schedule); logs /tmp/{}.*.log", seed, seed, name_));
  std::vector<std::string> schedule;

  // 1. The start, on a fresh slot: killed right after the slot is created, then in its snapshot.
  const auto start = plan_start(seed);
  schedule.push_back(start.describe());
  note("start faults: " + start.describe());
  pg_projector().process->start();
  es_projector().process->start();
  ASSERT_TRUE(failpoint_run(producer(), "producer.after_slot_created", start.early_kill + 30s));
  ASSERT_TRUE(failpoint_run(producer(), fmt::format("producer.snapshot_chunk_committed@{}", start.snapshot_chunk),
                            start.snapshot_kill + 30s));
  for (auto& binary : binaries_) {
    ASSERT_TRUE(supervise_until([&] { return http_get_status(binary.port, "/readyz") == 200; }, 120s,
                                fmt::format("{} ready", binary.name)))
        << binary.process->log_tail();
  }

  // 2. The workload, then the faults.
  workload_ = std::make_unique<Workload>(stack_env().write_pg_dsn, name_, seed, 40.0, kPrefillRows);
  workload_->start();
  ASSERT_TRUE(supervise_until([&] { return projected_events() >= 20; }, 120s, "the first events in read PostgreSQL"))
      << status_of_binaries();

  const auto faults_started = Clock::now();
  std::vector<Fault> plan;
  if (minutes > 0) {
    for (std::size_t i = 0; seconds_since(faults_started) < minutes * 60 || plan.empty(); ++i) {
      plan = {plan_soak_fault(seed, i, targets_)};
      const auto& fault = plan[0];
      schedule.push_back(fault.describe());
      note(fmt::format("fault {}: {}", i + 1, fault.describe()));
      run_for(fault.gap);  // the workload runs; the fault comes at a seeded moment
      const auto before = write_events();
      ASSERT_TRUE(inject(fault)) << "schedule:\n" << fmt::format("{}", fmt::join(schedule, "\n")) << status_of_binaries();
      ASSERT_FALSE(refused_) << "the producer exited with 3 (source refused)\n" << producer().process->log_tail();
      ASSERT_TRUE(moving_again(before, name_of(fault.kind))) << status_of_binaries();
    }
  } else {
    plan = plan_bounded(seed, targets_);
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const auto& fault = plan[i];
      schedule.push_back(fault.describe());
      note(fmt::format("fault {}/{}: {}", i + 1, plan.size(), fault.describe()));
      run_for(fault.gap);  // the workload runs; the fault comes at a seeded moment
      const auto before = write_events();
      ASSERT_TRUE(inject(fault)) << "schedule:\n" << fmt::format("{}", fmt::join(schedule, "\n")) << status_of_binaries();
      ASSERT_FALSE(refused_) << "the producer exited with 3 (source refused)\n" << producer().process->log_tail();
      ASSERT_TRUE(moving_again(before, name_of(fault.kind))) << status_of_binaries();
    }
  }
  // A big transaction the workload was asked for is committed before the drain.
  ASSERT_TRUE(supervise_until([&] { return !workload_->big_pending(); }, 120s, "the 21,000-row transaction"));
  ASSERT_TRUE(supervise_until([&] { return !search_restart_; }, 240s, "search back"));
  const auto faults_seconds = seconds_since(faults_started);

  // 3. Drain, then the checker.
  workload_->stop();
  const auto drain_started = Clock::now();
  std::string last;
  const bool drained = static_cast<bool>(supervise_until(
      [&] {
        last = all_differences();
        return last.empty();
      },
      // Bounded run: scripts/test gives the whole test 360 s, and a failure must still print.
      minutes > 0 ? 240s : 150s, "every sink equal to the write database"));
  const auto drain_seconds = seconds_since(drain_started);
  std::int64_t records = 0;
  std::int64_t redelivered = 0;
  const auto kafka = kafka_differences(records, redelivered);

  const auto counts = workload_->counts();
  std::string figures = fmt::format("\n=== fault checker ===\nseed {}\nschedule:\n", seed);
  for (const auto& line : schedule) figures += "  " + line + "\n";
  figures += "workload (committed / failed by a fault):\n";
  std::set<std::string> commands;
  for (const auto& [command, n] : counts.ok) commands.insert(command);
  for (const auto& [command, n] : counts.failed) commands.insert(command);
  for (const auto& command : commands) {
    figures += fmt::format("  {:<30} {:>7} / {}{}\n", command, counts.ok.contains(command) ? counts.ok.at(command) : 0,
                           counts.failed.contains(command) ? counts.failed.at(command) : 0,
                           counts.first_error.contains(command)
                               ? " (first: " + counts.first_error.at(command).substr(0, 160) + ")"
                               : "");
  }
  figures += fmt::format("  21,000-row transactions        {:>7}\n", workload_->big_done());
  figures += fmt::format("kills: by hand {}, by failpoint {} (producer {}, pg {}, es {}); self-exits {} / {} / {}\n",
                         kills_by_hand_, producer().failpoint_kills + pg_projector().failpoint_kills +
                                             es_projector().failpoint_kills,
                         producer().failpoint_kills, pg_projector().failpoint_kills, es_projector().failpoint_kills,
                         producer().self_exits, pg_projector().self_exits, es_projector().self_exits);
  figures += fmt::format("kafka records read {}, re-delivered {}\n", records, redelivered);
  figures += fmt::format("dead letters {}: {} events of two unordered keys refused by the es-projector, {} other\n",
                         dead_letters_.count, dead_letters_.unordered.size(), dead_letters_.other.size());
  figures += fmt::format("faults phase {:.1f} s, drain {:.1f} s{}, total {:.1f} s\n", faults_seconds, drain_seconds,
                         drained ? "" : " (not drained)", seconds_since(started_));
  std::cout << figures << std::flush;

  EXPECT_TRUE(drained) << "seed " << seed << ": first differences after the drain:\n" << last << status_of_binaries();
  EXPECT_EQ(kafka, "") << "seed " << seed << ": Kafka:\n" << kafka;
  EXPECT_FALSE(refused_);
  EXPECT_GT(workload_->big_done(), 0) << "no 20,000+ row transaction ran";
}

}  // namespace
}  // namespace syncline::test::faults
