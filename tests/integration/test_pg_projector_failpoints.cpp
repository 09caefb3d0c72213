// The pg-projector's failpoints around its batch COMMIT: killed with the statements applied but
// not committed, nothing counts; killed right after the commit, nothing is applied again.
#include <gtest/gtest.h>

#include <csignal>

#include "tests/integration/counter_workload.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

void publish(const std::string& topic, const std::string& prefix, int count) {
  EventPublisher publisher;
  publisher.begin();
  for (int i = 0; i < count; ++i) {
    publisher.send(topic, "a",
                   domain_event(prefix + std::to_string(i), "Incremented", "counter", "a", {{"by", 1}},
                                0x1000000 + static_cast<std::uint64_t>(i), 0)
                       .dump(),
                   "Incremented");
  }
  publisher.commit();
}

TEST(PgProjectorFailpoints, a_kill_before_or_right_after_the_commit_neither_loses_nor_doubles_a_batch) {
  ASSERT_TRUE(require_kafka());
  ASSERT_TRUE(require_read_pg());
  CounterWorkload workload(unique_name("failpoints"));
  PgProjectorHarness projector("pgp_failpoints", "", workload.projector_yaml(100));
  const std::string topic = projector.event_topic("counter");
  EventPublisher::create_topics({topic}, 1);
  const auto killed_at = [&](const std::string& failpoint) {
    projector.process().set_env("SYNCLINE_FAILPOINTS", failpoint);
    projector.start();
    const auto status = projector.process().wait(60s);
    projector.process().set_env("SYNCLINE_FAILPOINTS", "");
    return status;
  };
  const auto run_until_stored = [&](std::int64_t stored) {
    projector.start();
    EXPECT_TRUE(projector.wait_ready());
    EXPECT_TRUE(poll_until([&] { return projector.stored_offsets(topic) == stored; }, 60s, "the stored offset"))
        << projector.process().log_tail();
    EXPECT_EQ(projector.stop(), 0);
  };

  publish(topic, "a", 10);  // offsets 0-9, marker 10
  EXPECT_EQ(killed_at("pg-projector.before_commit"), 128 + SIGKILL) << projector.process().log_tail();
  EXPECT_EQ(workload.applied_sum(projector.read_db()), 0) << "an uncommitted batch took effect";
  EXPECT_EQ(projector.stored_offsets(topic), 0);
  run_until_stored(11);
  EXPECT_EQ(workload.applied_sum(projector.read_db()), 10);

  publish(topic, "b", 5);  // offsets 11-15, marker 16
  EXPECT_EQ(killed_at("pg-projector.after_commit"), 128 + SIGKILL) << projector.process().log_tail();
  EXPECT_EQ(workload.applied_sum(projector.read_db()), 15) << "the committed batch is not there";
  EXPECT_EQ(projector.stored_offsets(topic), 16);
  run_until_stored(17);
  EXPECT_EQ(workload.applied_sum(projector.read_db()), 15) << "the committed batch was applied again";
  workload.drop(projector.read_db());
}

}  // namespace
}  // namespace syncline::test
