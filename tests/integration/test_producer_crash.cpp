// Crash test: syncline-producer killed with SIGKILL again and again during a workload; a
// read_committed consumer must see every source event exactly once, in commit order per key.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "tests/integration/outbox_workload.hpp"

namespace syncline::test {
namespace {

constexpr int kEvents = 200'000;
constexpr int kMinKills = 20;

TEST(ProducerCrash, every_event_arrives_exactly_once_in_order_per_key_despite_repeated_sigkill) {
  ASSERT_TRUE(require_write_pg());
  ASSERT_TRUE(require_kafka());
  ProducerHarness harness("crash", "  snapshot: never\n  batch_max_events: 5000\n  batch_max_ms: 50\n");
  harness.start();
  ASSERT_TRUE(harness.wait_ready());

  OutboxWorkload workload(harness, "crash", 500);
  bool workload_done = false;
  std::mutex mutex;
  std::condition_variable done_signal;
  std::thread writer([&] {
    workload.write(kEvents);
    std::lock_guard lock(mutex);
    workload_done = true;
    done_signal.notify_all();
  });

  // Kills at random moments, while the workload runs and after it until kMinKills is reached.
  std::mt19937 random(7);
  int kills = 0;
  while (true) {
    const auto moment = std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 1500)(random));
    std::unique_lock lock(mutex);
    const bool finished = done_signal.wait_for(lock, moment, [&] { return workload_done && kills >= kMinKills; });
    lock.unlock();
    if (finished) break;
    harness.kill();
    ++kills;
    harness.start();
  }
  writer.join();
  ASSERT_TRUE(harness.wait_ready(std::chrono::seconds(120)));

  const auto records = harness.read_committed({harness.event_topic("crash")}, kEvents, std::chrono::seconds(240));
  const auto check = check_delivery(records, workload.events_written());
  std::printf("producer crash test: %d events written, %d kills, %s\n", workload.events_written(), kills,
              check.to_string().c_str());
  EXPECT_GE(kills, kMinKills);
  EXPECT_EQ(workload.events_written(), kEvents);
  EXPECT_EQ(check.missing, 0) << "producer log tail:\n" << harness.process().log_tail();
  EXPECT_EQ(check.duplicated, 0);
  EXPECT_EQ(check.aggregates_out_of_order, 0);
  EXPECT_EQ(records.size(), static_cast<std::size_t>(kEvents));
}

}  // namespace
}  // namespace syncline::test
