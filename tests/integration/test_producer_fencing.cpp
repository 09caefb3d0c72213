// Two producers with one transactional.id: the newer fences the older, which exits with code 2 and a
// message saying so; the newer takes over the slot and nothing is lost or doubled.
#include <gtest/gtest.h>

#include "tests/integration/outbox_workload.hpp"

namespace syncline::test {
namespace {

TEST(ProducerFencing, a_second_producer_with_the_same_transactional_id_fences_the_first_which_exits_2) {
  ASSERT_TRUE(require_write_pg());
  ASSERT_TRUE(require_kafka());
  ProducerHarness harness("fencing", "  snapshot: never\n");
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  OutboxWorkload workload(harness, "fencing", 20);
  workload.write(200);

  auto twin = harness.twin();
  twin->start();
  // The twin's init_transactions fences the first; the first notices at its next Kafka transaction.
  std::optional<int> exit_code;
  ASSERT_TRUE(poll_until(
      [&] {
        workload.write(10);
        exit_code = harness.process().wait(std::chrono::milliseconds(0));
        return exit_code.has_value();
      },
      std::chrono::seconds(90), "the first producer to exit after being fenced"))
      << harness.process().log_tail();
  EXPECT_EQ(*exit_code, 2) << harness.process().log_tail();
  EXPECT_NE(harness.process().log_tail().find("fenced"), std::string::npos) << harness.process().log_tail();

  // The twin streams from where the first stopped.
  workload.write(200);
  const int expected = workload.events_written();
  const auto records = harness.read_committed({harness.event_topic("fencing")}, static_cast<std::size_t>(expected),
                                              std::chrono::seconds(120));
  const auto check = check_delivery(records, expected);
  EXPECT_EQ(check.missing, 0) << check.to_string() << "\n" << twin->log_tail();
  EXPECT_EQ(check.duplicated, 0);
  EXPECT_EQ(check.aggregates_out_of_order, 0);
  EXPECT_TRUE(twin->running()) << twin->log_tail();
}

}  // namespace
}  // namespace syncline::test
