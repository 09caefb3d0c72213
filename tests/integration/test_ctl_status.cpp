// syncline-ctl status against the real stack: exact lag per group and partition while the
// projectors are stopped, zero once they caught up, the freshness both projectors record, the
// exit rule (--max-lag, the slot, an unreachable store), --json against schemas/status.schema.json
// and --watch.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/http_client.hpp"
#include "common/json_schema.hpp"
#include "common/lsn.hpp"
#include "common/pg.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Every violation of schemas/status.schema.json, as readable strings (empty: valid).
std::vector<std::string> schema_violations(const json& document) {
  static const JsonSchema schema =
      JsonSchema::load(std::filesystem::path(SYNCLINE_SOURCE_DIR) / "schemas" / "status.schema.json");
  std::vector<std::string> violations;
  for (const auto& violation : schema.validate(document))
    violations.push_back(format_json_path(violation.path) + ": " + violation.message);
  return violations;
}

// `status --json` (plus `extra`), parsed and validated; the exit code in `exit_code`.
json status(const std::string& config, int& exit_code, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--config", config, "status", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto result = run_ctl(args);
  exit_code = result.exit_code;
  EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 1) << result.describe();
  const auto document = json::parse(result.out, nullptr, false);
  EXPECT_FALSE(document.is_discarded()) << result.describe();
  if (document.is_discarded()) return json::object();
  EXPECT_EQ(schema_violations(document), std::vector<std::string>{}) << document.dump(2);
  return document;
}

const json& group_of(const json& document, const std::string& group) {
  for (const auto& entry : document["groups"])
    if (entry["group"] == group) return entry;
  static const json none = json::object();
  ADD_FAILURE() << "no group " << group << " in " << document.dump(2);
  return none;
}

const json& projection_of(const json& document, const std::string& sink) {
  for (const auto& entry : document["projections"])
    if (entry["sink"] == sink) return entry;
  static const json none = json::object();
  ADD_FAILURE() << "no " << sink << " projection in " << document.dump(2);
  return none;
}

class CtlStatus : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_read_pg());
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_search());
  }

  std::string write_config(const std::string& name, const std::string& body) {
    const std::string path = fmt::format("/tmp/{}.yaml", unique_name(name));
    std::ofstream(path) << body;
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& file : files_) std::filesystem::remove(file);
  }

  std::vector<std::string> files_;
};

TEST_F(CtlStatus, shows_exact_lag_per_group_while_projectors_are_stopped_and_none_once_they_caught_up) {
  const std::string table = unique_name("ctl_status_t");
  const std::string schema = unique_name("ctl_status_mirror");
  const std::string alias = unique_name("ctl_status_idx");
  PgProjectorHarness pg("ctl_status_pg", "", fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", schema, table));
  PgProjectorHarness es("ctl_status_es", pg.prefix(),
                        fmt::format("  mirror:\n    - table: public.{}\n      index: {}\n", table, alias), {},
                        ProjectorKind::es);
  http::HttpClient search(http::ClientOptions{.base_url = stack_env().search_url});
  struct Cleanup {
    PgProjectorHarness& pg;
    http::HttpClient& search;
    std::string schema, alias;
    ~Cleanup() {
      try {
        pg.read_db().exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
        search.del("/" + alias + "_v1");
      } catch (const std::exception&) {
        // Leftovers under unique names harm no other test.
      }
    }
  } cleanup{pg, search, schema, alias};

  const std::string topic = pg.prefix() + ".public." + table;
  EventPublisher::create_topics({topic}, 1);
  const auto& env = stack_env();
  const std::string config = write_config(
      "ctl_status", fmt::format("log:\n  level: warn\nkafka:\n  bootstrap_servers: {}\n  topic_prefix: {}\n"
                                "read_db:\n  dsn: {}\nsearch:\n  url: {}\n"
                                "pg_projector:\n  group_id: {}\n  mirror:\n    schema: {}\n    tables: [public.{}]\n"
                                "es_projector:\n  group_id: {}\n  mirror:\n    - table: public.{}\n      index: {}\n",
                                env.kafka_bootstrap, pg.prefix(), env.read_pg_dsn, env.search_url, pg.name(), schema,
                                table, es.name(), table, alias));

  EventPublisher publisher;
  const auto publish = [&](int first, int count, std::uint64_t commit_lsn) {
    publisher.begin();
    for (int id = first; id < first + count; ++id) {
      publisher.send(topic, json{{"id", id}}.dump(),
                     row_change(table, 'c', {{"id", id}, {"name", fmt::format("n{}", id)}}, commit_lsn,
                                static_cast<std::uint64_t>(id))
                         .dump(),
                     fmt::format("public.{}.c", table));
    }
    publisher.commit();
  };
  // 5 events in one transaction: offsets 0-4, the commit marker at 5, the end at 6.
  publish(1, 5, 0x1000);

  int exit_code = -1;
  auto report = status(config, exit_code);
  EXPECT_EQ(exit_code, 0) << report.dump(2);
  for (const auto* group : {&pg.name(), &es.name()}) {
    const auto& entry = group_of(report, *group);
    ASSERT_EQ(entry["partitions"].size(), 1U) << entry.dump(2);
    EXPECT_EQ(entry["partitions"][0]["held"], nullptr) << entry.dump(2);  // never ran: everything is pending
    EXPECT_EQ(entry["partitions"][0]["high"], 6);
    EXPECT_EQ(entry["partitions"][0]["lag"], 6);
    EXPECT_EQ(entry["lag"], 6);
  }
  EXPECT_EQ(projection_of(report, "pg")["last_commit_lsn"], nullptr);
  EXPECT_EQ(report["slot"]["configured"], false);  // no write_db in this config: not checked, no problem
  for (const auto& dead : report["dead_letters"]) EXPECT_EQ(dead["messages"], 0) << dead.dump();
  (void)status(config, exit_code, {"--max-lag", "5"});
  EXPECT_EQ(exit_code, 1);
  (void)status(config, exit_code, {"--max-lag", "6"});
  EXPECT_EQ(exit_code, 0);

  pg.start();
  es.start();
  ASSERT_TRUE(pg.wait_ready());
  ASSERT_TRUE(es.wait_ready());
  ASSERT_TRUE(poll_until([&] { return pg.caught_up() && es.caught_up(); }, 60s, "both projectors caught up"))
      << pg.process().log_tail() << es.process().log_tail();
  // Past the trailing marker too: the held offsets reach the end.
  ASSERT_TRUE(poll_until(
      [&] {
        report = status(config, exit_code, {"--max-lag", "0"});
        return exit_code == 0;
      },
      30s, "status --max-lag 0 exiting 0"))
      << report.dump(2);
  for (const auto* group : {&pg.name(), &es.name()}) {
    const auto& entry = group_of(report, *group);
    EXPECT_EQ(entry["partitions"][0]["held"], 6) << entry.dump(2);
    EXPECT_EQ(entry["lag"], 0);
  }
  // Freshness: pg from syncline.offsets, es from its commits' metadata.
  EXPECT_EQ(projection_of(report, "pg")["last_commit_lsn"], Lsn(0x1000).to_string()) << report.dump(2);
  EXPECT_EQ(projection_of(report, "es")["last_commit_lsn"], Lsn(0x1000).to_string()) << report.dump(2);
  EXPECT_EQ(projection_of(report, "es")["last_commit_ts"], "2026-11-22T10:00:00.000Z");
  EXPECT_TRUE(projection_of(report, "pg")["age_seconds"].is_number());

  EXPECT_EQ(pg.stop(), 0);
  EXPECT_EQ(es.stop(), 0);
  // 3 more in one transaction: offsets 6-8, marker 9, end 10; 6 held, 4 pending.
  publish(6, 3, 0x2000);
  report = status(config, exit_code, {"--max-lag", "3"});
  EXPECT_EQ(exit_code, 1);
  for (const auto* group : {&pg.name(), &es.name()}) {
    const auto& entry = group_of(report, *group);
    EXPECT_EQ(entry["partitions"][0]["held"], 6) << entry.dump(2);
    EXPECT_EQ(entry["partitions"][0]["high"], 10);
    EXPECT_EQ(entry["lag"], 4);
  }
  ASSERT_EQ(report["problems"].size(), 2U) << report.dump(2);  // one per group
  EXPECT_NE(report["problems"][0].get<std::string>().find("over --max-lag 3"), std::string::npos);
  (void)status(config, exit_code, {"--max-lag", "4"});
  EXPECT_EQ(exit_code, 0);

  // The human report says the same.
  const auto human = run_ctl({"--config", config, "status", "--max-lag", "3"});
  EXPECT_EQ(human.exit_code, 1) << human.describe();
  for (const std::string& expected : std::vector<std::string>{"Consumer groups", pg.name(), es.name(),
                                                              "Replication slot", "not checked", "Freshness",
                                                              "0/1000", "Dead letters", "2 problem(s):"}) {
    EXPECT_NE(human.out.find(expected), std::string::npos) << expected << "\n" << human.describe();
  }

  // Only the pg-projector catches up again: its group reaches zero, the es group still lags.
  pg.start();
  ASSERT_TRUE(pg.wait_ready());
  ASSERT_TRUE(poll_until(
      [&] {
        report = status(config, exit_code);
        return group_of(report, pg.name())["lag"] == 0;
      },
      60s, "the pg group at lag 0"))
      << report.dump(2) << pg.process().log_tail();
  EXPECT_EQ(group_of(report, pg.name())["partitions"][0]["held"], 10);
  EXPECT_EQ(projection_of(report, "pg")["last_commit_lsn"], Lsn(0x2000).to_string());
  EXPECT_EQ(group_of(report, es.name())["lag"], 4);
  EXPECT_EQ(pg.stop(), 0);

  // The es group's position moved back to the beginning (once its stopped static member left):
  // status then shows everything pending for it again.
  CtlResult reset;
  ASSERT_TRUE(poll_until(
      [&] {
        reset = run_ctl({"--config", config, "offsets", "reset", "--projection", alias, "--sink", "es", "--to-earliest"});
        return reset.exit_code != 2;
      },
      30s, "the es group empty"))
      << reset.describe();
  ASSERT_EQ(reset.exit_code, 0) << reset.describe();
  report = status(config, exit_code);
  EXPECT_EQ(group_of(report, es.name())["partitions"][0]["held"], 0) << report.dump(2);
  EXPECT_EQ(group_of(report, es.name())["lag"], 10);
  EXPECT_EQ(projection_of(report, "es")["last_commit_lsn"], nullptr);  // a reset commit carries no position
}

TEST_F(CtlStatus, a_missing_or_inactive_slot_and_an_unreachable_store_are_problems_reported_in_their_section) {
  ASSERT_TRUE(require_write_pg());
  const auto& env = stack_env();
  const std::string prefix = unique_name("ctl_status_slot");
  const std::string slot = unique_name("ctl_status_slot");
  pg::PgConnection write_db(env.write_pg_dsn);
  write_db.exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {slot});
  struct DropSlot {
    pg::PgConnection& db;
    std::string slot;
    ~DropSlot() {
      try {
        db.exec("SELECT pg_drop_replication_slot($1)", {slot});
      } catch (const std::exception&) {
        // Already gone.
      }
    }
  } drop{write_db, slot};

  const auto config_with = [&](const std::string& slot_name, const std::string& read_dsn) {
    return write_config("ctl_status_slot",
                        fmt::format("kafka:\n  bootstrap_servers: {}\n  topic_prefix: {}\nwrite_db:\n  dsn: {}\n"
                                    "read_db:\n  dsn: {}\nproducer:\n  slot: {}\n"
                                    "pg_projector:\n  group_id: {}\n  mirror:\n    tables: [public.t]\n",
                                    env.kafka_bootstrap, prefix, env.write_pg_dsn, read_dsn, slot_name, prefix));
  };

  int exit_code = -1;
  auto report = status(config_with(slot, env.read_pg_dsn), exit_code);
  EXPECT_EQ(exit_code, 1);
  EXPECT_EQ(report["slot"]["exists"], true) << report.dump(2);
  EXPECT_EQ(report["slot"]["active"], false);
  EXPECT_TRUE(report["slot"]["retained_wal_bytes"].is_number_integer()) << report.dump(2);
  ASSERT_EQ(report["problems"].size(), 1U) << report.dump(2);
  EXPECT_NE(report["problems"][0].get<std::string>().find("is not active"), std::string::npos);
  // Its topic does not exist: nothing published, nothing pending, no problem.
  EXPECT_EQ(group_of(report, prefix)["missing_topics"].size(), 1U);

  report = status(config_with(slot + "_missing", env.read_pg_dsn), exit_code);
  EXPECT_EQ(exit_code, 1);
  EXPECT_EQ(report["slot"]["exists"], false);
  ASSERT_EQ(report["problems"].size(), 1U) << report.dump(2);
  EXPECT_NE(report["problems"][0].get<std::string>().find("does not exist"), std::string::npos);

  // The read database unreachable: its group carries the error, the rest of the report is there,
  // and the DSN's password is never printed.
  const auto unreachable = config_with(slot, "postgresql://syncline:s3cret-pw@127.0.0.1:1/nowhere");
  const auto result = run_ctl({"--config", unreachable, "status", "--json"});
  EXPECT_EQ(result.exit_code, 1) << result.describe();
  EXPECT_EQ(result.out.find("s3cret-pw"), std::string::npos) << result.describe();
  EXPECT_EQ(result.err.find("s3cret-pw"), std::string::npos) << result.describe();
  report = json::parse(result.out, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << result.describe();
  EXPECT_EQ(schema_violations(report), std::vector<std::string>{}) << report.dump(2);
  EXPECT_TRUE(group_of(report, prefix)["error"].is_string()) << report.dump(2);
  EXPECT_EQ(group_of(report, prefix)["lag"], nullptr);
  EXPECT_EQ(report["slot"]["exists"], true);
  EXPECT_EQ(report["dead_letters"].size(), 2U);
}

TEST_F(CtlStatus, watch_prints_one_report_per_interval_until_interrupted) {
  const auto& env = stack_env();
  const std::string config = write_config(
      "ctl_status_watch", fmt::format("kafka:\n  bootstrap_servers: {}\n  topic_prefix: {}\n", env.kafka_bootstrap,
                                      unique_name("ctl_status_watch")));
  CtlProcess watch({"--config", config, "status", "--watch", "0.2", "--json"});
  watch.start();
  const auto lines = [&] {
    const auto out = watch.out_so_far();
    return std::count(out.begin(), out.end(), '\n');
  };
  ASSERT_TRUE(poll_until([&] { return lines() >= 3 || !watch.running(); }, 30s, "3 reports"))
      << watch.err_so_far();
  ASSERT_TRUE(watch.running()) << watch.err_so_far();
  const auto result = watch.stop(SIGINT, 10s);
  EXPECT_EQ(result.exit_code, 0) << result.describe();
  std::size_t start = 0;
  int documents = 0;
  while (start < result.out.size()) {
    const auto end = result.out.find('\n', start);
    const auto document = json::parse(result.out.substr(start, end - start), nullptr, false);
    ASSERT_FALSE(document.is_discarded()) << result.describe();
    EXPECT_EQ(schema_violations(document), std::vector<std::string>{});
    EXPECT_EQ(document["ok"], true);
    ++documents;
    start = end == std::string::npos ? result.out.size() : end + 1;
  }
  EXPECT_GE(documents, 3);
}

}  // namespace
}  // namespace syncline::test
