// The pg-projector's exactly-once effect: a counter projection (`n = n + 1`) ends equal to the
// number of events whatever happens to the projector: SIGKILLs at random moments, a second
// instance sharing the partitions and then dying, a read-database restart.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "tests/integration/counter_workload.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

void stack(const std::string& arguments) {
  const std::string command = std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack " + arguments + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "scripts/stack " << arguments << " failed";
}

// Waits until every event is applied and the partitions are drained, then compares each counter
// with its events (an event applied twice shows as a larger counter).
CounterWorkload::Check drained_check(PgProjectorHarness& harness, CounterWorkload& workload) {
  EXPECT_TRUE(poll_until([&] { return workload.applied_sum(harness.read_db()) >= workload.total(); }, 180s,
                         "every event applied"))
      << "applied " << workload.applied_sum(harness.read_db()) << " of " << workload.total() << "\n"
      << harness.process().log_tail();
  EXPECT_TRUE(poll_until([&] { return harness.caught_up(); }, 60s, "queue_size 0"));
  return workload.check(harness.read_db());
}

class PgProjectorExactlyOnce : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_read_pg());
  }
};

TEST_F(PgProjectorExactlyOnce, counters_equal_the_events_after_twenty_sigkills_at_random_moments) {
  CounterWorkload workload(unique_name("counters"));
  PgProjectorHarness harness("pgp_kill", "", workload.projector_yaml(200));
  const auto topic = harness.event_topic("counter");
  EventPublisher::create_topics({topic}, 3);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());

  workload.start(topic, 40'000, 300, 50);
  std::mt19937 random(42);
  int kills = 0;
  // Kill after a random amount of progress (never on a timer), then restart at once.
  while (kills < 20 || !workload.done()) {
    const auto before = workload.applied_sum(harness.read_db());
    const auto step = static_cast<std::int64_t>(random() % 1500) + 1;
    const bool progressed = static_cast<bool>(poll_until(
        [&] { return workload.applied_sum(harness.read_db()) >= before + step || workload.done(); }, 60s,
        "projector progress"));
    ASSERT_TRUE(progressed) << harness.process().log_tail();
    if (kills >= 20 && workload.done()) break;
    harness.kill();
    ++kills;
    harness.start();
  }
  workload.join();
  const auto check = drained_check(harness, workload);
  std::printf("pg-projector crash test: %d events, %d SIGKILLs, %s\n", workload.total(), kills,
              check.to_string().c_str());
  EXPECT_GE(kills, 20);
  EXPECT_EQ(check.lost, 0);
  EXPECT_EQ(check.doubled, 0);
  EXPECT_EQ(check.wrong, 0);
  EXPECT_EQ(harness.stop(), 0);
  workload.drop(harness.read_db());
}

TEST_F(PgProjectorExactlyOnce, two_instances_share_the_partitions_and_one_dying_hands_them_over) {
  CounterWorkload workload(unique_name("counters"));
  PgProjectorHarness harness("pgp_pair", "", workload.projector_yaml(200));
  const auto topic = harness.event_topic("counter");
  EventPublisher::create_topics({topic}, 4);
  int second_port = 0;
  auto second = harness.instance("second", &second_port);
  harness.start();
  second->start();
  ASSERT_TRUE(harness.wait_ready());
  ASSERT_TRUE(harness.wait_ready(60s, second_port));

  workload.start(topic, 20'000, 200, 50);
  // Both hold partitions: each reports some of the four in /status.
  const auto owned = [&](int port) {
    const auto status = harness.status(port);
    return status.is_object() && status.contains("partitions") ? status["partitions"].size() : std::size_t{0};
  };
  ASSERT_TRUE(poll_until([&] { return owned(harness.http_port()) > 0 && owned(second_port) > 0; }, 60s,
                         "both instances owning partitions"))
      << "first owns " << owned(harness.http_port()) << ", second owns " << owned(second_port);
  ASSERT_TRUE(poll_until([&] { return workload.applied_sum(harness.read_db()) >= 3000; }, 60s, "progress"));

  second->stop(SIGKILL, 10s);  // its partitions move to the first after its session times out
  workload.join();
  ASSERT_TRUE(poll_until([&] { return owned(harness.http_port()) == 4; }, 60s, "the survivor owning all 4"));
  const auto check = drained_check(harness, workload);
  std::printf("pg-projector pair test: %d events, %s\n", workload.total(), check.to_string().c_str());
  EXPECT_EQ(check.lost, 0);
  EXPECT_EQ(check.doubled, 0);
  EXPECT_EQ(harness.stop(), 0);
  workload.drop(harness.read_db());
}

TEST_F(PgProjectorExactlyOnce, a_read_database_restart_mid_workload_loses_and_doubles_nothing) {
  CounterWorkload workload(unique_name("counters"));
  PgProjectorHarness harness("pgp_restart", "", workload.projector_yaml(200));
  const auto topic = harness.event_topic("counter");
  EventPublisher::create_topics({topic}, 3);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());

  workload.start(topic, 20'000, 200, 50);
  ASSERT_TRUE(poll_until([&] { return workload.applied_sum(harness.read_db()) >= 2000; }, 60s, "progress"));
  stack("down read-pg");
  // While it is down the projector waits (not ready) and keeps running.
  ASSERT_TRUE(poll_until([&] { return http_get_status(harness.http_port(), "/readyz") == 503; }, 60s,
                         "/readyz 503 while the read database is down"));
  EXPECT_TRUE(harness.process().running());
  stack("up read-pg");
  harness.read_db() = pg::PgConnection(stack_env().read_pg_dsn);
  workload.join();
  const auto check = drained_check(harness, workload);
  std::printf("pg-projector read-database restart test: %d events, %s\n", workload.total(),
              check.to_string().c_str());
  EXPECT_EQ(check.lost, 0);
  EXPECT_EQ(check.doubled, 0);
  EXPECT_EQ(harness.stop(), 0);
  workload.drop(harness.read_db());
}

}  // namespace
}  // namespace syncline::test
