// The producer rides out a Kafka broker crash and a write-database restart during a workload:
// afterwards a read_committed consumer sees every event exactly once, in order per key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "tests/integration/outbox_workload.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::test {
namespace {

// Runs scripts/stack (the same tool that started the services) and fails the test if it fails.
void stack(const std::string& arguments) {
  const std::string command = std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack " + arguments + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "scripts/stack " << arguments << " failed";
}

TEST(ProducerRestarts, a_kafka_crash_and_a_write_database_restart_lose_and_double_nothing) {
  ASSERT_TRUE(require_write_pg());
  ASSERT_TRUE(require_kafka());
  ProducerHarness harness("restarts", "  snapshot: never\n");
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  OutboxWorkload workload(harness, "restarts", 200);

  // Kafka dies (SIGKILL) while events are being written, and comes back.
  std::thread writer([&] { workload.write(20'000); });
  ASSERT_TRUE(poll_until([&] { return workload.events_written() >= 5'000; }, std::chrono::seconds(60),
                         "5000 events written"));
  stack("kill kafka");
  writer.join();
  workload.write(5'000);  // written while the broker is down: the producer must hold them, not drop them
  stack("up kafka");

  // The write database restarts (fast shutdown: the walsender and the producer's sessions end).
  workload.write(5'000);
  stack("down write-pg");
  stack("up write-pg");
  workload.write(10'000);

  ASSERT_TRUE(harness.wait_ready(std::chrono::seconds(120)));
  EXPECT_TRUE(harness.process().running()) << harness.process().log_tail();
  const int expected = workload.events_written();
  const auto records = harness.read_committed({harness.event_topic("restarts")}, static_cast<std::size_t>(expected),
                                              std::chrono::seconds(180));
  const auto check = check_delivery(records, expected);
  std::printf("producer restart test: %d events written, %s\n", expected, check.to_string().c_str());
  EXPECT_EQ(check.missing, 0) << harness.process().log_tail();
  EXPECT_EQ(check.duplicated, 0);
  EXPECT_EQ(check.aggregates_out_of_order, 0);
  // While the broker was down the producer stopped reading instead of queueing: its memory stayed
  // near its normal size (a bound against unbounded buffering, not a performance target).
  const long rss = harness.peak_rss_kib();
  std::printf("producer restart test: peak RSS %ld MiB\n", rss / 1024);
  EXPECT_GT(rss, 0);
  EXPECT_LT(rss, 256 * 1024);
}

}  // namespace
}  // namespace syncline::test
