// syncline-ctl offsets against the real stack: show, and a reset of a pg mirror projection to a
// time in the middle of its topic (refused while the projector runs; afterwards the projector
// re-applies exactly the events from there and the mirror ends unchanged), and --to-lsn.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class CtlOffsets : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_read_pg());
    ASSERT_TRUE(require_kafka());
  }
};

// The mirror table, every column of every row, as text in key order.
std::string table_text(pg::PgConnection& db, const std::string& table) {
  const auto result = db.exec(fmt::format("SELECT t::text FROM {} t ORDER BY id", table));
  std::string text;
  for (int row = 0; row < result.rows(); ++row) text += std::string(result.value(row, 0)) + '\n';
  return text;
}

// The `offsets reset ... --json` partitions as (topic/partition -> after).
std::map<std::string, std::int64_t> targets(const json& document) {
  std::map<std::string, std::int64_t> after;
  for (const auto& partition : document["partitions"])
    after[fmt::format("{}/{}", partition["topic"].get<std::string>(), partition["partition"].get<int>())] =
        partition["after"].get<std::int64_t>();
  return after;
}

std::int64_t sum(const std::map<std::string, std::int64_t>& offsets) {
  std::int64_t total = 0;
  for (const auto& [partition, offset] : offsets) total += offset;
  return total;
}

// Events of the mirror projection the running projector applied or skipped, from its /status.
std::int64_t mirror_events_seen(const PgProjectorHarness& projector) {
  const auto status = projector.status();
  if (!status.is_object() || !status.contains("projections")) return -1;
  for (const auto& projection : status["projections"])
    if (projection["name"] == "mirror")
      return projection["applied"].get<std::int64_t>() + projection["skipped"].get<std::int64_t>();
  return -1;
}

TEST_F(CtlOffsets, reset_to_a_time_makes_the_mirror_projector_reapply_from_there_without_changing_the_table) {
  const std::string table = unique_name("ctl_offsets_t");
  const std::string schema = unique_name("ctl_offsets_mirror");
  PgProjectorHarness projector("ctl_offsets", "",
                               fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", schema, table));
  struct DropSchema {
    PgProjectorHarness& projector;
    std::string schema;
    ~DropSchema() {
      try {
        projector.read_db().exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
      } catch (const std::exception&) {
        // A leftover schema under a unique name harms no other test.
      }
    }
  } drop{projector, schema};
  const std::string topic = projector.prefix() + ".public." + table;
  const std::string config = projector.config_path();
  EventPublisher::create_topics({topic}, 2);

  EventPublisher publisher;
  const auto row = [&](char op, int id, const std::string& name, std::uint64_t lsn, std::uint64_t seq) {
    publisher.send(topic, json{{"id", id}}.dump(),
                   row_change(table, op, {{"id", id}, {"name", name}}, lsn, seq).dump(),
                   fmt::format("public.{}.{}", table, op));
  };
  // A: 20 inserts in the transaction at LSN 0/1000.
  publisher.begin();
  for (int id = 1; id <= 20; ++id) row('c', id, fmt::format("a{}", id), 0x1000, static_cast<std::uint64_t>(id));
  publisher.commit();
  // The commit returns before the broker has written A's commit markers, and a marker's timestamp
  // is the broker's time of writing it: wait for both markers (20 records + 2 markers), so none
  // is stamped after the middle. A CI run once reset onto a late marker.
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  ASSERT_TRUE(poll_until(
      [&] {
        return admin.watermark_offsets(topic, 0, 5s).high + admin.watermark_offsets(topic, 1, 5s).high == 20 + 2;
      },
      30s, "A's records and both of its commit markers written"));
  // The middle: a millisecond after every record of A was written, before any of B.
  const auto middle = std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()) + 1ms;
  ASSERT_TRUE(poll_until([&] { return std::chrono::system_clock::now() > middle + 1ms; }, 5s, "the clock past the middle"));
  // B: 10 updates and 10 inserts in the transaction at LSN 0/2000.
  publisher.begin();
  for (int id = 1; id <= 10; ++id) row('u', id, fmt::format("b{}", id), 0x2000, static_cast<std::uint64_t>(id));
  for (int id = 21; id <= 30; ++id) row('c', id, fmt::format("b{}", id), 0x2000, static_cast<std::uint64_t>(id));
  publisher.commit();

  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  ASSERT_TRUE(poll_until([&] { return projector.caught_up(); }, 60s, "the projector caught up"))
      << projector.process().log_tail();
  const std::string mirror = schema + "." + table;
  const std::string before = table_text(projector.read_db(), mirror);
  ASSERT_EQ(std::count(before.begin(), before.end(), '\n'), 30) << before;
  // /status refreshes its counters about once a second.
  ASSERT_TRUE(poll_until([&] { return mirror_events_seen(projector) == 40; }, 10s, "40 mirror events in /status"))
      << projector.status().dump(2);

  // Refused while the projector runs, naming the group.
  const auto whole = std::chrono::floor<std::chrono::seconds>(middle);
  const std::string time = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", whole, (middle - whole).count());
  const std::vector<std::string> reset{"--config", config, "offsets", "reset", "--projection", "mirror",
                                       "--to-time", time, "--json"};
  auto refused = run_ctl(reset);
  EXPECT_EQ(refused.exit_code, 2) << refused.describe();
  EXPECT_NE(refused.err.find("refused"), std::string::npos) << refused.describe();
  EXPECT_NE(refused.err.find(projector.name()), std::string::npos) << refused.describe();
  EXPECT_NE(refused.err.find("1 live member"), std::string::npos) << refused.describe();

  // `offsets show`: held = Kafka committed = high on each partition, lag 0.
  const auto shown = run_ctl({"--config", config, "offsets", "show", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.describe();
  const auto shown_json = json::parse(shown.out);
  ASSERT_EQ(shown_json["projections"].size(), 1U);
  std::int64_t high_total = 0;
  for (const auto& partition : shown_json["projections"][0]["partitions"]) {
    EXPECT_EQ(partition["held"], partition["high"]) << shown.out;
    EXPECT_EQ(partition["lag"], 0) << shown.out;
    high_total += partition["high"].get<std::int64_t>();
  }
  EXPECT_EQ(high_total, 40 + 4);  // 40 events and a commit marker per partition and transaction

  const auto stored_before = projector.stored_offsets(topic);
  EXPECT_EQ(projector.stop(), 0);
  // A stopped static member stays in the group until its session times out: a dry run is
  // refused until then, and changes nothing once it runs.
  std::vector<std::string> dry_run = reset;
  dry_run.push_back("--dry-run");
  CtlResult planned;
  ASSERT_TRUE(poll_until(
      [&] {
        planned = run_ctl(dry_run);
        return planned.exit_code != 2;
      },
      30s, "the consumer group empty"))
      << planned.describe();
  ASSERT_EQ(planned.exit_code, 0) << planned.describe();
  const auto plan = json::parse(planned.out);
  EXPECT_EQ(plan["dry_run"], true);
  EXPECT_EQ(plan["applied"], false);
  const auto after = targets(plan);
  ASSERT_EQ(after.size(), 2U) << planned.out;
  // Each partition goes back to B's first record: A's records and A's marker stay behind.
  // Key hashing decides how many of A's 20 a partition has; each partition has exactly one
  // marker of A (ids 1-20 reach both partitions; checked through the total).
  EXPECT_EQ(sum(after), 20 + 2) << planned.out;
  EXPECT_EQ(projector.stored_offsets(topic), stored_before);

  // --to-lsn: the first record of the transaction at or after the LSN, the same offsets for 0/2000
  // (and for any LSN between the two transactions); earliest before A, the end after B.
  const auto by_lsn = [&](const std::string& lsn) {
    const auto result = run_ctl({"--config", config, "offsets", "reset", "--projection", "mirror", "--to-lsn", lsn,
                                 "--dry-run", "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.describe();
    return targets(json::parse(result.out, nullptr, false));
  };
  EXPECT_EQ(by_lsn(Lsn(0x2000).to_string()), after);
  EXPECT_EQ(by_lsn(Lsn(0x1001).to_string()), after);
  EXPECT_EQ(sum(by_lsn(Lsn(0x1000).to_string())), 0);
  EXPECT_EQ(sum(by_lsn(Lsn(0x2001).to_string())), high_total);

  const auto applied = run_ctl(reset);
  ASSERT_EQ(applied.exit_code, 0) << applied.describe();
  const auto applied_json = json::parse(applied.out);
  EXPECT_EQ(applied_json["applied"], true);
  EXPECT_EQ(targets(applied_json), after);
  EXPECT_EQ(projector.stored_offsets(topic), sum(after));
  EXPECT_EQ(committed_offsets(projector.name(), topic), sum(after));

  // The human output of a dry run shows before and after per partition.
  const auto human = run_ctl({"--config", config, "offsets", "reset", "--projection", "mirror", "--to-latest",
                              "--dry-run"});
  EXPECT_EQ(human.exit_code, 0) << human.describe();
  for (const char* expected : {"HELD BEFORE", "KAFKA BEFORE", "AFTER", "skipped", "Dry run: nothing was changed."})
    EXPECT_NE(human.out.find(expected), std::string::npos) << expected << "\n" << human.describe();

  // Restarted, the projector applies B again, exactly B: 20 events, and the table is unchanged.
  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  ASSERT_TRUE(poll_until([&] { return projector.caught_up(); }, 60s, "the projector caught up again"))
      << projector.process().log_tail();
  ASSERT_TRUE(poll_until([&] { return mirror_events_seen(projector) >= 20; }, 10s, "20 mirror events in /status"))
      << projector.status().dump(2);
  EXPECT_EQ(mirror_events_seen(projector), 20) << projector.status().dump(2);
  EXPECT_EQ(projector.stored_offsets(topic), stored_before);
  EXPECT_EQ(table_text(projector.read_db(), mirror), before);
  EXPECT_EQ(projector.stop(), 0);
}

TEST_F(CtlOffsets, an_unknown_projection_or_a_missing_target_cannot_run) {
  PgProjectorHarness projector("ctl_offsets_usage", "", "  mirror:\n    tables: [public.whatever]\n");
  auto result = run_ctl({"--config", projector.config_path(), "offsets", "reset", "--projection", "nope",
                         "--to-earliest"});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  EXPECT_NE(result.err.find("no projection 'nope'"), std::string::npos) << result.describe();
  result = run_ctl({"--config", projector.config_path(), "offsets", "reset", "--projection", "mirror"});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  result = run_ctl({"--config", projector.config_path(), "offsets", "reset", "--projection", "mirror", "--to-time",
                    "yesterday"});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  EXPECT_NE(result.err.find("--to-time"), std::string::npos) << result.describe();
  result = run_ctl({"--config", projector.config_path(), "offsets", "reset", "--projection", "mirror", "--topic",
                    "not.its.topic", "--to-earliest"});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  EXPECT_NE(result.err.find("--topic not.its.topic: projection mirror does not read it"), std::string::npos)
      << result.describe();
}

TEST_F(CtlOffsets, a_reset_with_topic_moves_only_that_topic_of_the_projection) {
  const std::string table = unique_name("ctl_offsets_topic");
  PgProjectorHarness projector(
      "ctl_offsets_topic", "",
      fmt::format("  projections:\n"
                  "    - name: counts\n"
                  "      aggregate_types: [first, second]\n"
                  "      setup: CREATE TABLE IF NOT EXISTS public.{0} (id text PRIMARY KEY, n bigint NOT NULL)\n"
                  "      events:\n"
                  "        - types: Counted\n"
                  "          sql: INSERT INTO public.{0} (id, n) VALUES (:aggregate_type, 1) "
                  "ON CONFLICT (id) DO UPDATE SET n = {0}.n + 1\n",
                  table));
  const std::string first = projector.event_topic("first");
  const std::string second = projector.event_topic("second");
  EventPublisher::create_topics({first, second}, 1);
  EventPublisher publisher;
  publisher.begin();
  for (int i = 0; i < 3; ++i) {
    for (const auto& [topic, type] : {std::pair{first, "first"}, std::pair{second, "second"}}) {
      publisher.send(topic, "k",
                     domain_event(fmt::format("{}-{}", type, i), "Counted", type, "k", json::object(),
                                  0x1000 + static_cast<std::uint64_t>(i), 0)
                         .dump(),
                     "Counted");
    }
  }
  publisher.commit();
  projector.start();
  ASSERT_TRUE(projector.wait_ready());
  ASSERT_TRUE(poll_until(
      [&] { return projector.stored_offsets(first) == 4 && projector.stored_offsets(second) == 4; }, 60s,
      "both topics applied"))
      << projector.process().log_tail();
  EXPECT_EQ(projector.stop(), 0);

  CtlResult reset;
  ASSERT_TRUE(poll_until(
      [&] {
        reset = run_ctl({"--config", projector.config_path(), "offsets", "reset", "--projection", "counts", "--topic",
                         first, "--to-earliest", "--json"});
        return reset.exit_code != 2 || reset.err.find("live member") == std::string::npos;
      },
      30s, "the consumer group empty"))
      << reset.describe();
  ASSERT_EQ(reset.exit_code, 0) << reset.describe();
  const auto after = targets(json::parse(reset.out));
  EXPECT_EQ(after, (std::map<std::string, std::int64_t>{{first + "/0", 0}})) << reset.out;
  EXPECT_EQ(projector.stored_offsets(first), 0);
  EXPECT_EQ(projector.stored_offsets(second), 4) << "the other topic moved too";
  projector.read_db().exec("DROP TABLE IF EXISTS public." + table);
}

}  // namespace
}  // namespace syncline::test
