// syncline-ctl verify against the real stack: a write table mirrored by a running pg projector
// (mirror schema) and a running es projector (mirror index), fed by the real producer. Rows
// deleted, changed and added by hand in the read stores are found, named and repaired; a clean
// pipeline and a briefly stopped projector report nothing.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>

#include "common/http_client.hpp"
#include "common/pg.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kRows = 30;

class CtlVerify : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_stack());
    table_ = unique_name("ctlv_items");
    schema_ = unique_name("ctlv_mirror");
    alias_ = unique_name("ctlv_items_idx");
    producer_ = std::make_unique<ProducerHarness>(
        "ctlv", fmt::format("  snapshot: never\n  capture: [public.{}]\n", table_));
    producer_->write_db().exec(
        fmt::format("CREATE TABLE public.{} (id bigint PRIMARY KEY, name text, price numeric(10,2), active "
                    "boolean, tags text[], "
                    "doc jsonb, created timestamptz, data bytea)",
                    table_));
    pg_ = std::make_unique<PgProjectorHarness>(
        "ctlv_pg", producer_->prefix(),
        fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", schema_, table_));
    es_ = std::make_unique<PgProjectorHarness>(
        "ctlv_es", producer_->prefix(),
        fmt::format("  mirror:\n    - table: public.{}\n      index: {}\n", table_, alias_), std::string{},
        ProjectorKind::es);
    write_ctl_config();

    producer_->start();
    ASSERT_TRUE(producer_->wait_ready());
    write().exec(
        fmt::format("INSERT INTO public.{} SELECT g, 'name ' || g, g * 1.25, g % 2 = 0, ARRAY['t' || g], "
                    "jsonb_build_object('g', g, 'list', jsonb_build_array(g, g + 1), 'tag', 'x'), "
                    "timestamptz '2026-11-22 10:00:00.123+00' + g * interval '1 minute', "
                    "decode(lpad(to_hex(g), 4, '0'), 'hex') "
                    "FROM generate_series(1, {}) g",
                    table_, kRows));
    if (typed_mirror_) {
      // A mirror table created by hand with the write table's real types: the projector casts
      // into it, verify reads it back through the producer's mapping.
      read().exec(fmt::format("CREATE SCHEMA {}", schema_));
      read().exec(
          fmt::format("CREATE TABLE {}.{} (id bigint PRIMARY KEY, name text, price numeric(10,2), active "
                      "boolean, tags text[], "
                      "doc jsonb, created timestamptz, data bytea)",
                      schema_, table_));
    }
    pg_->start();
    es_->start();
    ASSERT_TRUE(pg_->wait_ready());
    ASSERT_TRUE(es_->wait_ready());
    ASSERT_TRUE(wait_for_rows(kRows));
  }

  void TearDown() override {
    pg_.reset();
    es_.reset();
    try {
      pg::PgConnection read(stack_env().read_pg_dsn);
      read.exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", schema_));
      read.exec("DELETE FROM syncline.mirror_tombstones WHERE mirror_schema = $1", {pg::Param(schema_)});
    } catch (const std::exception&) {
      // Nothing was created.
    }
    for (const char* version : {"_v1", "_v2", "_v3"}) search_.del("/" + alias_ + version);
    if (producer_) producer_->write_db().exec(fmt::format("DROP TABLE IF EXISTS public.{}", table_));
    producer_.reset();
    std::remove(config_path_.c_str());
  }

  pg::PgConnection& write() { return producer_->write_db(); }
  pg::PgConnection& read() { return pg_->read_db(); }
  std::string mirror_table() const { return schema_ + "." + table_; }

  std::int64_t mirror_count() {
    try {
      return std::stoll(std::string(read().exec("SELECT count(*) FROM " + mirror_table()).value(0, 0)));
    } catch (const pg::PgError&) {
      return -1;  // created with the first event
    }
  }
  std::int64_t index_count() {
    search_.post("/" + alias_ + "/_refresh", "");
    const auto response = search_.get("/" + alias_ + "/_count");
    return response.status == 200 ? json::parse(response.body)["count"].get<std::int64_t>() : -1;
  }
  ::testing::AssertionResult wait_for_rows(std::int64_t rows) {
    return poll_until(
        [&] { return mirror_count() == rows && index_count() == rows; }, 90s,
        fmt::format("{} rows in {} and {} documents in {}", rows, mirror_table(), rows, alias_));
  }

  void write_ctl_config() {
    const auto& env = stack_env();
    config_path_ = fmt::format("/tmp/{}.ctl.yaml", alias_);
    std::ofstream config(config_path_);
    config << fmt::format(
        "log:\n  level: info\nkafka:\n  bootstrap_servers: {0}\n  topic_prefix: {1}\n"
        "write_db:\n  dsn: {2}\nread_db:\n  dsn: {3}\nsearch:\n  url: {4}\n"
        "producer:\n  slot: {1}\n  publication: {1}\n  outbox_table: public.{5}\n  message_prefix: {1}\n"
        "  snapshot: never\n  capture: [public.{6}]\n"
        "pg_projector:\n  group_id: {7}\n  mirror:\n    schema: {8}\n    tables: [public.{6}]\n"
        // A SQL projection (derived data) the projector does not run: listed as not verifiable.
        "  projections:\n    - name: totals\n      schema: {8}_sql\n      aggregate_types: [thing]\n"
        "      events:\n        - types: ThingHappened\n          sql: SELECT 1\n"
        "es_projector:\n  group_id: {9}\n  mirror:\n    - table: public.{6}\n      index: {10}\n",
        env.kafka_bootstrap, producer_->prefix(), env.write_pg_dsn, env.read_pg_dsn, env.search_url,
        producer_->outbox_table(), table_, pg_->name(), schema_, es_->name(), alias_);
  }

  CtlResult verify(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--config", config_path_, "verify"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_ctl(args, 240s);
  }

  // The JSON report's table entry of projection `name`.
  static json table_of(const json& report, const std::string& name) {
    for (const auto& projection : report["projections"]) {
      if (projection["name"] == name) return projection["tables"][0];
    }
    return json();
  }

  bool typed_mirror_ = false;  // set by a derived fixture's constructor
  std::string table_;
  std::string schema_;
  std::string alias_;
  std::string config_path_;
  std::unique_ptr<ProducerHarness> producer_;
  std::unique_ptr<PgProjectorHarness> pg_;
  std::unique_ptr<PgProjectorHarness> es_;
  http::HttpClient search_{http::ClientOptions{.base_url = stack_env().search_url}};
};

TEST_F(CtlVerify, a_pipeline_in_step_has_no_differences_and_exits_0) {
  const CtlResult result = verify({"--json", "--settle", "5"});
  ASSERT_EQ(result.exit_code, 0) << result.describe();
  const json report = json::parse(result.out);
  EXPECT_EQ(report["differences"], 0);
  EXPECT_EQ(report["ok"], true);
  const json mirror = table_of(report, "mirror");
  EXPECT_EQ(mirror["write_rows"], kRows);
  EXPECT_EQ(mirror["read_rows"], kRows);
  EXPECT_EQ(mirror["chunks"], 1);
  EXPECT_EQ(mirror["extra_keys_scanned"], kRows);
  EXPECT_EQ(mirror["chunks_different"], 0);  // the same representation: equal digests
  const json index = table_of(report, alias_);
  EXPECT_EQ(index["write_rows"], kRows);
  EXPECT_EQ(index["read_rows"], kRows);
  EXPECT_EQ(index["differences"], 0);
  EXPECT_EQ(index["chunks_different"], 0);
  bool listed = false;
  for (const auto& projection : report["projections"]) {
    if (projection["name"] != "totals") continue;
    listed = true;
    EXPECT_EQ(projection["verifiable"], false);
    EXPECT_FALSE(projection["reason"].get<std::string>().empty());
  }
  EXPECT_TRUE(listed) << result.out;

  // Small chunks: several digests, the same verdict; and the human report says so.
  const CtlResult chunked = verify({"--chunk-rows", "7", "--settle", "5"});
  ASSERT_EQ(chunked.exit_code, 0) << chunked.describe();
  EXPECT_NE(chunked.out.find("5 compared"), std::string::npos) << chunked.out;
  EXPECT_NE(chunked.out.find("no differences"), std::string::npos) << chunked.out;
  EXPECT_NE(chunked.out.find("not verifiable: totals"), std::string::npos) << chunked.out;
}

TEST_F(CtlVerify, rows_changed_by_hand_in_the_read_stores_are_named_and_repaired) {
  // (a) a row deleted from the read database, (b) a document changed in the index, (c) an extra row.
  read().exec(fmt::format("DELETE FROM {} WHERE id = 3", mirror_table()));
  const auto updated =
      search_.post(fmt::format("/{}/_update/5?refresh=true", alias_), R"({"doc":{"name":"tampered"}})");
  ASSERT_EQ(updated.status, 200) << updated.body;
  read().exec(fmt::format(
      "INSERT INTO {} (id, name, price, _syncline_lsn, _syncline_seq) VALUES (999, 'ghost', '1', '0/1', 0)",
      mirror_table()));

  const CtlResult found = verify({"--json", "--settle", "2"});
  ASSERT_EQ(found.exit_code, 1) << found.describe();
  const json report = json::parse(found.out);
  EXPECT_EQ(report["differences"], 3) << found.out;
  const json mirror = table_of(report, "mirror");
  ASSERT_EQ(mirror["missing"]["count"], 1) << found.out;
  EXPECT_EQ(mirror["missing"]["keys"][0]["key"], json({{"id", 3}}));
  ASSERT_EQ(mirror["extra"]["count"], 1) << found.out;
  EXPECT_EQ(mirror["extra"]["keys"][0]["key"], json({{"id", 999}}));
  EXPECT_EQ(mirror["different"]["count"], 0);
  EXPECT_EQ(mirror["rechecked"], 2);
  const json index = table_of(report, alias_);
  ASSERT_EQ(index["different"]["count"], 1) << found.out;
  EXPECT_EQ(index["different"]["keys"][0]["key"], json({{"id", 5}}));
  EXPECT_EQ(index["different"]["keys"][0]["columns"], json::array({"name"}));
  EXPECT_EQ(index["missing"]["count"], 0);
  EXPECT_EQ(index["extra"]["count"], 0);

  // The human report names each key by kind.
  const CtlResult human = verify({"--settle", "1"});
  EXPECT_EQ(human.exit_code, 1) << human.describe();
  EXPECT_NE(human.out.find(R"(missing    {"id":3})"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find(R"(extra      {"id":999})"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find(R"(different  {"id":5}  columns: name)"), std::string::npos) << human.out;

  const CtlResult repaired = verify({"--repair", "--json", "--settle", "2", "--repair-timeout", "90"});
  ASSERT_EQ(repaired.exit_code, 0) << repaired.describe();
  const json after = json::parse(repaired.out);
  EXPECT_EQ(after["differences"], 0);
  EXPECT_EQ(table_of(after, "mirror")["repair"]["keys"], 2);
  EXPECT_EQ(table_of(after, "mirror")["repair"]["repaired"], 2);
  EXPECT_EQ(table_of(after, "mirror")["repair"]["deletes"], 1);
  EXPECT_EQ(table_of(after, alias_)["repair"]["repaired"], 1);

  const CtlResult again = verify({"--settle", "2"});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(mirror_count(), kRows);
}

TEST_F(CtlVerify, a_projector_that_lags_and_catches_up_within_the_settle_time_is_not_a_difference) {
  ASSERT_TRUE(pg_->stop().has_value());
  write().exec(fmt::format("UPDATE public.{} SET name = 'renamed' WHERE id IN (1, 2)", table_));
  write().exec(fmt::format("DELETE FROM public.{} WHERE id = 4", table_));
  write().exec(fmt::format("INSERT INTO public.{} (id, name) VALUES (100, 'late')", table_));

  CtlProcess run({"--config", config_path_, "verify", "--projection", "mirror", "--json", "--settle", "90"});
  run.start();
  // The chunk pass has found the lag before the projector comes back.
  ASSERT_TRUE(poll_until(
      [&] { return run.err_so_far().find("before re-checks") != std::string::npos || !run.running(); }, 60s,
      "verify to finish its chunk pass"))
      << run.err_so_far();
  ASSERT_TRUE(run.running()) << run.err_so_far() << run.out_so_far();
  pg_->start();
  const CtlResult result = run.wait(180s);
  ASSERT_EQ(result.exit_code, 0) << result.describe();
  const json report = json::parse(result.out);
  const json mirror = table_of(report, "mirror");
  EXPECT_EQ(mirror["rechecked"], 4) << result.out;
  EXPECT_EQ(mirror["settled"], 4) << result.out;
  EXPECT_EQ(report["differences"], 0);
}

class CtlVerifyTypedMirror : public CtlVerify {
 protected:
  CtlVerifyTypedMirror() { typed_mirror_ = true; }
};

TEST_F(CtlVerifyTypedMirror, a_mirror_table_with_real_types_compares_equal_and_a_changed_value_is_named) {
  const CtlResult clean = verify({"--json", "--projection", "mirror", "--settle", "2"});
  ASSERT_EQ(clean.exit_code, 0) << clean.describe();
  EXPECT_EQ(table_of(json::parse(clean.out), "mirror")["chunks_different"], 0) << clean.out;

  read().exec(fmt::format("UPDATE {} SET price = 99.99, created = created + interval '1 second' WHERE id = 7",
                          mirror_table()));
  const CtlResult found = verify({"--json", "--projection", "mirror", "--settle", "1"});
  ASSERT_EQ(found.exit_code, 1) << found.describe();
  const json mirror = table_of(json::parse(found.out), "mirror");
  ASSERT_EQ(mirror["different"]["count"], 1) << found.out;
  EXPECT_EQ(mirror["different"]["keys"][0]["key"], json({{"id", 7}}));
  EXPECT_EQ(mirror["different"]["keys"][0]["columns"], json::array({"created", "price"}));
}

// The issue's replay case end to end: the real producer streams a write workload, both read
// models are rebuilt by `resync replay` while readers query them, and `verify` then finds the
// write database and both read models equal.
TEST_F(CtlVerify, replaying_both_read_models_during_a_write_workload_never_fails_a_reader_and_verifies_clean) {
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> writes{0};
  std::atomic<std::int64_t> reads{0};
  std::atomic<std::int64_t> failed_reads{0};
  std::atomic<std::int64_t> empty_reads{0};
  std::string first_failure;
  std::mutex failure_mutex;
  const auto record_failure = [&](const std::string& what) {
    ++failed_reads;
    const std::lock_guard lock(failure_mutex);
    if (first_failure.empty()) first_failure = what;
  };

  std::thread writer([&] {
    pg::PgConnection write_db(stack_env().write_pg_dsn);
    for (std::int64_t i = 0; !stop; ++i) {
      const std::int64_t id = kRows + 1 + i;
      write_db.exec(fmt::format("INSERT INTO public.{} (id, name, price) VALUES ({}, 'new {}', {})", table_, id, id,
                                i % 1000));
      write_db.exec(fmt::format("UPDATE public.{} SET name = 'renamed {}' WHERE id = {}", table_, i, 1 + i % kRows));
      if (i % 3 == 0) write_db.exec(fmt::format("DELETE FROM public.{} WHERE id = {}", table_, id));
      ++writes;
    }
  });
  std::thread reader([&] {
    pg::PgConnection read_db(stack_env().read_pg_dsn);
    http::HttpClient search{http::ClientOptions{.base_url = stack_env().search_url}};
    while (!stop) {
      try {
        const auto rows = std::stoll(std::string(read_db.exec("SELECT count(*) FROM " + mirror_table()).value(0, 0)));
        if (rows == 0) ++empty_reads;
      } catch (const std::exception& error) {
        record_failure(std::string("read PostgreSQL: ") + error.what());
      }
      const auto count = search.get("/" + alias_ + "/_count");
      if (count.status != 200) {
        record_failure(fmt::format("index: HTTP {} {}", count.status, count.body));
      } else if (json::parse(count.body)["count"].get<std::int64_t>() == 0) {
        ++empty_reads;
      }
      ++reads;
    }
  });
  // Let the workload get going, so that the replays run under it.
  ASSERT_TRUE(poll_until([&] { return writes >= 200; }, 60s, "200 write transactions"));

  const CtlResult pg_replay =
      run_ctl({"--config", config_path_, "resync", "replay", "--projection", "mirror", "--grace", "0", "--json"}, 240s);
  const CtlResult es_replay = run_ctl(
      {"--config", config_path_, "resync", "replay", "--projection", alias_, "--grace", "0", "--json"}, 240s);
  stop = true;
  writer.join();
  reader.join();
  ASSERT_EQ(pg_replay.exit_code, 0) << pg_replay.describe();
  ASSERT_EQ(es_replay.exit_code, 0) << es_replay.describe();
  EXPECT_EQ(json::parse(pg_replay.out)["new_target"], schema_) << pg_replay.out;
  EXPECT_EQ(json::parse(es_replay.out)["new_index"], alias_ + "_v2") << es_replay.out;
  EXPECT_EQ(failed_reads, 0) << first_failure;
  EXPECT_EQ(empty_reads, 0);
  EXPECT_GT(reads, 10);

  // Drained: the producer and both projectors catch up, then the stores agree exactly.
  const auto expected = std::stoll(
      std::string(write().exec(fmt::format("SELECT count(*) FROM public.{}", table_)).value(0, 0)));
  ASSERT_TRUE(wait_for_rows(expected));
  const CtlResult verified = verify({"--json", "--settle", "30"});
  ASSERT_EQ(verified.exit_code, 0) << verified.describe();
  EXPECT_EQ(json::parse(verified.out)["differences"], 0);
  std::printf("replay under load: %lld write transactions, %lld reader rounds, 0 failed, 0 empty; verify clean\n",
              static_cast<long long>(writes.load()), static_cast<long long>(reads.load()));
}

TEST_F(CtlVerify, an_unknown_projection_is_refused_with_exit_code_2) {
  const CtlResult unknown = verify({"--projection", "nope"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.describe();
  EXPECT_NE(unknown.err.find("nope"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace syncline::test
