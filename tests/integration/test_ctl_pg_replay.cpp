// syncline-ctl resync replay of read-PostgreSQL projections against the real stack: a SQL counter
// projection (non-idempotent: n = n + by) and the pg mirror, rebuilt while a workload publishes
// and readers query both models, handed over exactly once; and an interrupted replay that leaves
// the live projection untouched and resumes.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class CtlPgReplay : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_read_pg());
  }
};

// The projector section: a counter projection in schema `counters_schema` written with
// {{schema}}, and (when `table` is set) the mirror of public.<table> into `mirror_schema`.
std::string projector_yaml(const std::string& counters_schema, const std::string& mirror_schema,
                           const std::string& table, int batch_max_events) {
  std::string yaml = fmt::format("  batch_max_events: {}\n", batch_max_events);
  if (!table.empty()) yaml += fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", mirror_schema, table);
  yaml += fmt::format(
      "  projections:\n"
      "    - name: counters\n"
      "      schema: {}\n"
      "      aggregate_types: [counter]\n"
      "      setup: CREATE TABLE IF NOT EXISTS {{{{schema}}}}.counters (id text PRIMARY KEY, n bigint NOT NULL)\n"
      "      events:\n"
      "        - types: Incremented\n"
      "          sql: INSERT INTO {{{{schema}}}}.counters AS c (id, n) VALUES (:aggregate_id, :payload.by) "
      "ON CONFLICT (id) DO UPDATE SET n = c.n + EXCLUDED.n\n",
      counters_schema);
  return yaml;
}

// Drops what the test created in the read database, whatever happened.
struct Cleanup {
  pg::PgConnection& db;
  std::vector<std::string> schemas;
  std::string replay_group_prefix;
  ~Cleanup() {
    try {
      for (const auto& schema : schemas) {
        const auto rows = db.exec("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", {schema});
        for (int r = 0; r < rows.rows(); ++r) db.exec(fmt::format("DROP SCHEMA \"{}\" CASCADE", rows.value(r, 0)));
        db.exec("DELETE FROM syncline.mirror_tombstones WHERE starts_with(mirror_schema, $1)", {schema});
      }
      db.exec("DELETE FROM syncline.offsets WHERE starts_with(consumer_group, $1)", {replay_group_prefix});
    } catch (const std::exception&) {
      // Unique names: leftovers harm no other test.
    }
  }
};

// Publishes, until stopped, transactions of counter increments and mirror row changes, and
// remembers what the read models must end as.
class Workload {
 public:
  Workload(std::string counter_topic, std::string row_topic, std::string table)
      : counter_topic_(std::move(counter_topic)), row_topic_(std::move(row_topic)), table_(std::move(table)) {}
  ~Workload() { stop(); }

  void start(int counters_per_transaction, int rows_per_transaction, std::optional<int> transactions = std::nullopt) {
    thread_ = std::thread([=, this] {
      try {
        EventPublisher publisher;
        std::mt19937 random(11);
        for (int tx = 0; !transactions || tx < *transactions; ++tx) {
          if (!transactions) {
            // Paces the open-ended workload (a few thousand events a second); wakes at once on stop.
            std::unique_lock lock(mutex_);
            if (wake_.wait_for(lock, 10ms, [&] { return stopping_; })) break;
          }
          publisher.begin();
          for (int i = 0; i < counters_per_transaction; ++i) {
            const std::string id = "c" + std::to_string(random() % 200);
            const int by = static_cast<int>(random() % 3) + 1;
            counters_[id] += by;
            counter_total_ += by;
            publisher.send(counter_topic_, id,
                           domain_event(fmt::format("e{}", events_), "Incremented", "counter", id, {{"by", by}},
                                        0x1000000 + static_cast<std::uint64_t>(tx), static_cast<std::uint64_t>(i))
                               .dump(),
                           "Incremented");
            ++events_;
          }
          for (int i = 0; i < rows_per_transaction; ++i) {
            const int id = static_cast<int>(random() % 300);
            const std::int64_t v = events_;
            rows_[id] = v;
            publisher.send(row_topic_, json{{"id", id}}.dump(),
                           row_change(table_, 'u', {{"id", id}, {"v", v}}, 0x1000000 + static_cast<std::uint64_t>(tx),
                                      static_cast<std::uint64_t>(i))
                               .dump(),
                           fmt::format("public.{}.u", table_));
            ++events_;
          }
          publisher.commit();
          published_.store(events_);
        }
      } catch (const std::exception& error) {
        error_ = error.what();
      }
    });
  }
  // Ends an open-ended workload; waits for a bounded one to finish.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t published() const { return published_.load(); }
  // After stop():
  const std::string& error() const { return error_; }
  const std::map<std::string, std::int64_t>& counters() const { return counters_; }
  std::int64_t counter_total() const { return counter_total_; }
  const std::map<int, std::int64_t>& rows() const { return rows_; }

 private:
  std::string counter_topic_;
  std::string row_topic_;
  std::string table_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<std::int64_t> published_{0};
  std::int64_t events_ = 0;
  std::map<std::string, std::int64_t> counters_;
  std::int64_t counter_total_ = 0;
  std::map<int, std::int64_t> rows_;
  std::string error_;
};

// Queries the read models in a loop on its own connection: any failed query, any empty model
// and any decrease of the counters' sum (which only grows) is recorded.
class Reader {
 public:
  explicit Reader(std::vector<std::pair<std::string, std::string>> queries) : queries_(std::move(queries)) {
    thread_ = std::thread([this] {
      try {
        pg::PgConnection db(stack_env().read_pg_dsn);
        std::map<std::string, std::int64_t> last_sum;
        while (!stop_.load()) {
          for (const auto& [name, sql] : queries_) {
            try {
              const auto result = db.exec(sql);
              const auto count = std::stoll(std::string(result.value(0, 0)));
              const auto sum = std::stoll(std::string(result.value(0, 1)));
              if (count == 0) note(fmt::format("{}: empty", name));
              if (name == "counters" && sum < last_sum[name])
                note(fmt::format("counters: the sum went down from {} to {}", last_sum[name], sum));
              last_sum[name] = sum;
              ++queries_run_;
            } catch (const std::exception& error) {
              note(fmt::format("{}: {}", name, error.what()));
            }
          }
        }
      } catch (const std::exception& error) {
        note(std::string("reader: ") + error.what());
      }
    });
  }
  ~Reader() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t queries_run() const { return queries_run_.load(); }
  std::vector<std::string> problems() {
    std::lock_guard lock(mutex_);
    return problems_;
  }

 private:
  void note(std::string problem) {
    std::lock_guard lock(mutex_);
    if (problems_.size() < 20) problems_.push_back(std::move(problem));
  }
  std::vector<std::pair<std::string, std::string>> queries_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> queries_run_{0};
  std::mutex mutex_;
  std::vector<std::string> problems_;
};

std::int64_t scalar(pg::PgConnection& db, const std::string& sql, const std::vector<pg::Param>& params = {}) {
  const auto result = db.exec(sql, params);
  return result.is_null(0, 0) ? 0 : std::stoll(std::string(result.value(0, 0)));
}

// Counters that differ from what was published (lost or doubled increments show here).
std::string counter_differences(pg::PgConnection& db, const std::string& schema,
                                const std::map<std::string, std::int64_t>& expected) {
  std::map<std::string, std::int64_t> actual;
  const auto rows = db.exec(fmt::format("SELECT id, n FROM \"{}\".counters", schema));
  for (int r = 0; r < rows.rows(); ++r) actual[std::string(rows.value(r, 0))] = std::stoll(std::string(rows.value(r, 1)));
  std::string out;
  for (const auto& [id, n] : expected)
    if (actual[id] != n) out += fmt::format("{}: {} instead of {}; ", id, actual[id], n);
  if (actual.size() != expected.size()) out += fmt::format("{} counters instead of {}", actual.size(), expected.size());
  return out;
}

TEST_F(CtlPgReplay, replays_a_counter_projection_and_the_mirror_under_load_exactly_once_without_readers_noticing) {
  const std::string table = unique_name("rp_t");
  const std::string counters_schema = unique_name("rpc");
  const std::string mirror_schema = unique_name("rpm");
  PgProjectorHarness projector("ctl_pg_replay", "", projector_yaml(counters_schema, mirror_schema, table, 200));
  Cleanup cleanup{projector.read_db(), {counters_schema, mirror_schema}, projector.name() + ".resync."};
  const std::string counter_topic = projector.event_topic("counter");
  const std::string row_topic = projector.prefix() + ".public." + table;
  EventPublisher::create_topics({counter_topic, row_topic}, 3);
  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  auto& db = projector.read_db();

  Workload workload(counter_topic, row_topic, table);
  workload.start(20, 10);
  const std::string counters = fmt::format("\"{}\".counters", counters_schema);
  const std::string mirror = fmt::format("\"{}\".\"{}\"", mirror_schema, table);
  ASSERT_TRUE(poll_until(
      [&] {
        return scalar(db, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = $1 AND c.relname = $2",
                      {mirror_schema, table}) == 1 &&
               scalar(db, "SELECT count(*) FROM " + mirror) > 0 &&
               scalar(db, "SELECT coalesce(sum(n), 0) FROM " + counters) >= 20000;
      },
      120s, "20,000 increments applied and the mirror table created"))
      << projector.process().log_tail();
  // A type a person chose for a live mirror column survives the replay (the shadow copies the table).
  db.exec(fmt::format("ALTER TABLE {} ALTER COLUMN v TYPE numeric(20,0)", mirror));

  Reader reader({{"counters", "SELECT count(*), coalesce(sum(n), 0) FROM " + counters},
                 {"mirror", "SELECT count(*), coalesce(sum(v), 0) FROM " + mirror}});
  ASSERT_TRUE(poll_until([&] { return reader.queries_run() > 100; }, 30s, "the reader querying"));

  json results = json::array();
  for (const std::string projection : {"counters", "mirror"}) {
    const auto published_before = workload.published();
    const auto run = run_ctl({"--config", projector.config_path(), "resync", "replay", "--projection", projection,
                              "--grace", "0", "--json"},
                             300s);
    ASSERT_EQ(run.exit_code, 0) << run.describe() << projector.process().log_tail();
    const auto result = json::parse(run.out);
    EXPECT_EQ(result["projection"], projection) << run.out;
    EXPECT_EQ(result["sink"], "pg");
    EXPECT_EQ(result["new_target"], projection == "counters" ? counters_schema : mirror_schema);
    EXPECT_TRUE(result["old_target"].is_string()) << run.out;
    EXPECT_EQ(result["old_dropped"], true);
    EXPECT_EQ(result["resumed"], false);
    EXPECT_GT(result["events"].get<std::int64_t>(), 0);
    // The workload kept publishing while the replay ran.
    EXPECT_GT(workload.published(), published_before) << "the workload did not run during the replay";
    results.push_back(result);
  }
  const std::int64_t during_replays = workload.published();
  workload.stop();
  ASSERT_TRUE(workload.error().empty()) << workload.error();

  // The live projector goes on in the new schemas and applies the rest.
  ASSERT_TRUE(poll_until([&] { return scalar(db, "SELECT coalesce(sum(n), 0) FROM " + counters) >= workload.counter_total(); },
                         120s, "every increment applied"))
      << scalar(db, "SELECT coalesce(sum(n), 0) FROM " + counters) << " of " << workload.counter_total() << "\n"
      << projector.process().log_tail();
  ASSERT_TRUE(poll_until([&] { return projector.caught_up(); }, 60s, "the projector caught up"));
  reader.stop();

  const auto problems = reader.problems();
  EXPECT_TRUE(problems.empty()) << fmt::format("{}", fmt::join(problems, "\n"));
  EXPECT_GT(reader.queries_run(), 200);
  // Exactly once across both hand-overs: no increment lost, none doubled.
  EXPECT_EQ(scalar(db, "SELECT coalesce(sum(n), 0) FROM " + counters), workload.counter_total());
  EXPECT_EQ(counter_differences(db, counters_schema, workload.counters()), "");
  // The mirror equals the last version of every row published.
  std::int64_t expected_sum = 0;
  for (const auto& [id, v] : workload.rows()) expected_sum += v;
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM " + mirror), static_cast<std::int64_t>(workload.rows().size()));
  EXPECT_EQ(scalar(db, "SELECT coalesce(sum(v), 0) FROM " + mirror), expected_sum);
  EXPECT_EQ(db.exec("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND "
                    "attname = 'v'",
                    {mirror})
                .value(0, 0),
            "numeric(20,0)");
  std::int64_t wrong_rows = 0;
  for (const auto& [id, v] : workload.rows())
    wrong_rows += scalar(db, fmt::format("SELECT count(*) FROM {} WHERE id = {} AND v = {}", mirror, id, v)) == 1 ? 0 : 1;
  EXPECT_EQ(wrong_rows, 0);
  // The retired schemas are gone, and so are the shadows and the replay groups' rows.
  for (const auto& schema : {counters_schema, mirror_schema}) {
    EXPECT_EQ(scalar(db, "SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, $1) AND nspname <> $1", {schema}),
              0)
        << schema;
  }
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM syncline.offsets WHERE starts_with(consumer_group, $1)",
                   {projector.name() + ".resync."}),
            0);
  std::printf("pg replay under load: %lld events published (%lld by the end of the replays), %lld reader queries, %s\n",
              static_cast<long long>(workload.published()), static_cast<long long>(during_replays),
              static_cast<long long>(reader.queries_run()), results.dump().c_str());
  EXPECT_EQ(projector.stop(), 0);
}

TEST_F(CtlPgReplay, an_interrupted_replay_leaves_the_live_projection_untouched_and_a_second_run_resumes_it) {
  const std::string counters_schema = unique_name("rpi");
  PgProjectorHarness projector("ctl_pg_replay_int", "", projector_yaml(counters_schema, "", "", 100));
  Cleanup cleanup{projector.read_db(), {counters_schema}, projector.name() + ".resync."};
  const std::string counter_topic = projector.event_topic("counter");
  EventPublisher::create_topics({counter_topic}, 3);
  Workload workload(counter_topic, "", "");
  workload.start(500, 0, 200);  // 100,000 increments
  workload.stop();
  ASSERT_TRUE(workload.error().empty()) << workload.error();
  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  auto& db = projector.read_db();
  const std::string counters = fmt::format("\"{}\".counters", counters_schema);
  ASSERT_TRUE(poll_until([&] { return scalar(db, "SELECT coalesce(sum(n), 0) FROM " + counters) == workload.counter_total(); },
                         180s, "every increment applied"))
      << projector.process().log_tail();
  const std::string live_before = counter_differences(db, counters_schema, workload.counters());
  ASSERT_EQ(live_before, "");
  const std::string replay_group = projector.name() + ".resync.counters";
  const std::vector<std::string> args{"--config", projector.config_path(), "resync", "replay", "--projection",
                                      "counters", "--grace", "0", "--json"};

  // Interrupted mid-build: once the shadow holds some, but not all, of the events.
  CtlProcess first(args);
  first.start();
  ASSERT_TRUE(poll_until(
      [&] {
        return scalar(db, "SELECT coalesce(sum(next_offset), 0) FROM syncline.offsets WHERE consumer_group = $1",
                      {replay_group}) > 1000;
      },
      120s, "the shadow part-built"))
      << first.err_so_far();
  const auto interrupted = first.stop(SIGINT, 60s);
  EXPECT_EQ(interrupted.exit_code, 1) << interrupted.describe();
  EXPECT_NE(interrupted.err.find("interrupted before the swap"), std::string::npos) << interrupted.describe();
  // The live projection is untouched; the shadow and its positions wait for the next run.
  EXPECT_EQ(counter_differences(db, counters_schema, workload.counters()), "");
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", {counters_schema + "__resync"}), 1);
  const auto shadow_position =
      scalar(db, "SELECT coalesce(sum(next_offset), 0) FROM syncline.offsets WHERE consumer_group = $1", {replay_group});
  EXPECT_GT(shadow_position, 0);
  EXPECT_LT(shadow_position, scalar(db, "SELECT coalesce(sum(next_offset), 0) FROM syncline.offsets WHERE consumer_group = $1",
                                    {projector.name()}))
      << "the replay finished before the interrupt: the test proves nothing";

  // The second run resumes from there and hands over exactly.
  const auto second = run_ctl(args, 300s);
  ASSERT_EQ(second.exit_code, 0) << second.describe();
  const auto result = json::parse(second.out);
  EXPECT_EQ(result["resumed"], true) << second.out;
  EXPECT_NE(second.err.find("resuming"), std::string::npos) << second.err;
  EXPECT_LT(result["events"].get<std::int64_t>(), 100'000) << "the second run started over";
  EXPECT_EQ(counter_differences(db, counters_schema, workload.counters()), "");
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, $1) AND nspname <> $1",
                   {counters_schema}),
            0);

  // The live projector goes on in the rebuilt schema.
  Workload more(counter_topic, "", "");
  more.start(100, 0, 10);
  more.stop();
  std::map<std::string, std::int64_t> expected = workload.counters();
  for (const auto& [id, n] : more.counters()) expected[id] += n;
  ASSERT_TRUE(poll_until([&] { return counter_differences(db, counters_schema, expected).empty(); }, 60s,
                         "the live projector applying into the rebuilt schema"))
      << counter_differences(db, counters_schema, expected) << projector.process().log_tail();
  EXPECT_EQ(projector.stop(), 0);
}

TEST_F(CtlPgReplay, keeps_the_retired_schema_while_a_view_elsewhere_still_uses_its_tables) {
  const std::string counters_schema = unique_name("rpv");
  const std::string view_schema = unique_name("rpview");
  PgProjectorHarness projector("ctl_pg_replay_view", "", projector_yaml(counters_schema, "", "", 100));
  Cleanup cleanup{projector.read_db(), {counters_schema, view_schema}, projector.name() + ".resync."};
  const std::string counter_topic = projector.event_topic("counter");
  EventPublisher::create_topics({counter_topic}, 1);
  Workload workload(counter_topic, "", "");
  workload.start(50, 0, 4);
  workload.stop();
  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  auto& db = projector.read_db();
  const std::string counters = fmt::format("\"{}\".counters", counters_schema);
  ASSERT_TRUE(poll_until([&] { return scalar(db, "SELECT coalesce(sum(n), 0) FROM " + counters) == workload.counter_total(); },
                         60s, "every increment applied"));
  db.exec(fmt::format("CREATE SCHEMA \"{0}\"; CREATE VIEW \"{0}\".totals AS SELECT sum(n) AS total FROM {1}",
                      view_schema, counters));

  const auto run = run_ctl({"--config", projector.config_path(), "resync", "replay", "--projection", "counters",
                            "--grace", "0", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  const auto result = json::parse(run.out);
  EXPECT_EQ(result["old_dropped"], false) << run.out;
  EXPECT_NE(run.err.find("still use its tables"), std::string::npos) << run.err;
  // Dropping the retired schema (CASCADE) would have dropped the view: both are still there.
  const std::string retired = result["old_target"].get<std::string>();
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", {retired}), 1);
  EXPECT_EQ(scalar(db, fmt::format("SELECT total FROM \"{}\".totals", view_schema)), workload.counter_total());
  EXPECT_EQ(counter_differences(db, counters_schema, workload.counters()), "");
  EXPECT_EQ(projector.stop(), 0);
}

TEST_F(CtlPgReplay, refuses_a_sql_projection_without_a_schema_of_its_own) {
  PgProjectorHarness projector("ctl_pg_replay_refuse", "",
                               "  projections:\n"
                               "    - name: plain\n"
                               "      aggregate_types: [thing]\n"
                               "      events:\n"
                               "        - types: Done\n"
                               "          sql: SELECT 1 WHERE :aggregate_id IS NOT NULL\n");
  const auto run = run_ctl({"--config", projector.config_path(), "resync", "replay", "--projection", "plain"});
  EXPECT_EQ(run.exit_code, 2) << run.describe();
  EXPECT_NE(run.err.find("refused"), std::string::npos) << run.describe();
  EXPECT_NE(run.err.find("no 'schema' key"), std::string::npos) << run.describe();
}

}  // namespace
}  // namespace syncline::test
