// A topic deleted and recreated under the pg-projector's stored positions (issue 14 point 5): the
// projector stops with exit 1 naming the topic, the offsets and the recovery command, whether the
// new topic is shorter than the stored offset (high-watermark check), longer (fingerprint check)
// or recreated while the projector runs; nothing of the new topic is applied silently, and
// `syncline-ctl offsets reset --topic T --to-earliest` then projects every record of it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/kafka.hpp"
#include "tests/integration/counter_workload.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

class PgProjectorRecreatedTopic : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_read_pg());
  }
  void TearDown() override {
    try {
      workload_.drop(projector_.read_db());
    } catch (const std::exception&) {
      // A table under a unique name harms no other test.
    }
  }

  // One transaction of `count` increments of counter "a", event ids `<prefix>-0` ... : on the one
  // partition, offsets 0..count-1 and the commit marker at `count`.
  void publish(const std::string& prefix, int count) {
    EventPublisher publisher;
    publisher.begin();
    for (int i = 0; i < count; ++i) {
      publisher.send(topic_, "a",
                     domain_event(fmt::format("{}-{}", prefix, i), "Incremented", "counter", "a", {{"by", 1}},
                                  0x1000000 + static_cast<std::uint64_t>(i), 0)
                         .dump(),
                     "Incremented");
    }
    publisher.commit();
  }

  std::int64_t high_watermark() {
    kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
    return admin.watermark_offsets(topic_, 0, 5s).high;
  }

  // 10 events applied and stored (next offset 11: 10 records and the commit marker), projector stopped.
  void project_the_first_topic() {
    EventPublisher::create_topics({topic_}, 1);
    publish("old", 10);
    run_until(11, 10);
    ASSERT_EQ(projector_.stop(), 0);
  }

  // The projector exits 1 by itself; its log names the topic, the partition and the command.
  void expect_refusal(const std::vector<std::string>& also_named) {
    const auto status = projector_.process().wait(60s);
    ASSERT_TRUE(status.has_value()) << "the projector is still running; its log:\n" << projector_.process().log_tail();
    EXPECT_EQ(*status, 1) << projector_.process().log_tail();
    const std::string log = projector_.process().log_tail(200);
    for (const std::string& expected :
         {topic_ + " partition 0", std::string("was deleted and recreated"),
          fmt::format("syncline-ctl offsets reset --projection counters --topic {} --to-earliest", topic_)}) {
      EXPECT_NE(log.find(expected), std::string::npos) << "not in the log: " << expected << "\n" << log;
    }
    for (const auto& expected : also_named)
      EXPECT_NE(log.find(expected), std::string::npos) << "not in the log: " << expected << "\n" << log;
  }

  // A projector run until its stored offset is `stored` and the counter `sum`; left running.
  void run_until(std::int64_t stored, std::int64_t sum) {
    projector_.start();
    ASSERT_TRUE(projector_.wait_ready());
    ASSERT_TRUE(poll_until([&] { return projector_.stored_offsets(topic_) == stored; }, 60s,
                           fmt::format("stored offset {}", stored)))
        << projector_.process().log_tail();
    EXPECT_EQ(workload_.applied_sum(projector_.read_db()), sum);
  }

  // Nothing of the new topic applied, the stored offset where it was.
  void expect_nothing_applied() {
    EXPECT_EQ(workload_.applied_sum(projector_.read_db()), 10) << "something of the new topic was applied";
    EXPECT_EQ(projector_.stored_offsets(topic_), 11) << "the stored offset moved";
  }

  // The recovery the refusal names, once the stopped projector's static membership has expired.
  void reset_to_earliest() {
    CtlResult reset;
    ASSERT_TRUE(poll_until(
        [&] {
          reset = run_ctl({"--config", projector_.config_path(), "offsets", "reset", "--projection", "counters",
                           "--topic", topic_, "--to-earliest", "--json"});
          return reset.exit_code != 2 || reset.err.find("live member") == std::string::npos;
        },
        30s, "the consumer group empty"))
        << reset.describe();
    ASSERT_EQ(reset.exit_code, 0) << reset.describe();
    EXPECT_EQ(projector_.stored_offsets(topic_), 0);
  }

  CounterWorkload workload_{unique_name("recreated")};
  PgProjectorHarness projector_{"pgp_recreated", "", workload_.projector_yaml(100)};
  std::string topic_ = projector_.event_topic("counter");
};

TEST_F(PgProjectorRecreatedTopic, a_recreated_topic_shorter_than_the_stored_offset_stops_the_projector) {
  project_the_first_topic();
  ASSERT_TRUE(recreate_topic(topic_));
  publish("new", 3);  // offsets 0-2 and the marker: the end is 4, the stored offset 11
  ASSERT_TRUE(poll_until([&] { return high_watermark() == 4; }, 30s, "the new topic's 3 records and marker"));

  projector_.start();
  expect_refusal({"stored next offset 11", "log start 0, end 4"});
  expect_nothing_applied();

  reset_to_earliest();
  run_until(4, 10 + 3);  // every record of the new topic
  EXPECT_EQ(projector_.stop(), 0);
}

TEST_F(PgProjectorRecreatedTopic, a_recreated_topic_longer_than_the_stored_offset_is_caught_by_the_fingerprint) {
  project_the_first_topic();
  ASSERT_TRUE(recreate_topic(topic_));
  publish("new", 25);  // offsets 0-24 and the marker: the stored offset 11 is inside the new topic
  ASSERT_TRUE(poll_until([&] { return high_watermark() == 26; }, 30s, "the new topic's 25 records and marker"));

  projector_.start();
  // The last applied record was offset 9, event old-9; the new topic has new-9 there.
  expect_refusal({"offset 9", "old-9", "new-9"});
  expect_nothing_applied();

  reset_to_earliest();
  run_until(26, 10 + 25);  // every record of the new topic
  // The fingerprint now describes the new topic: a restart is accepted and applies nothing again.
  EXPECT_EQ(projector_.stop(), 0);
  publish("more", 2);
  run_until(29, 10 + 25 + 2);
  EXPECT_EQ(projector_.stop(), 0);
}

TEST_F(PgProjectorRecreatedTopic, a_topic_recreated_under_a_running_projector_stops_it) {
  project_the_first_topic();
  projector_.start();
  ASSERT_TRUE(projector_.wait_ready());
  ASSERT_TRUE(poll_until([&] { return projector_.caught_up(); }, 60s, "the projector caught up"))
      << projector_.process().log_tail();
  ASSERT_TRUE(recreate_topic(topic_));
  publish("new", 3);

  // Seen at the reassignment (stored offset beyond the end) or, when librdkafka resets the fetch
  // position to the new topic's start first, as a record below the expected offset.
  expect_refusal({});
  expect_nothing_applied();
}

}  // namespace
}  // namespace syncline::test
