// A partition paused by its consumer (a projector waiting out a retry), revoked by a rebalance and
// assigned again must be fetched again: librdkafka alone would keep it paused for ever. Found by
// the chaos run (docs/CHAOS.md): the es-projector lost its partitions while paused (Kafka down
// during a search-engine outage) and, once they came back, never read another record.
#include <gtest/gtest.h>

#include <memory>

#include "common/kafka.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::kafka {
namespace {

using namespace std::chrono_literals;
using test::poll_until;
using test::stack_env;
using test::unique_name;

class ConsumerPauseRebalance : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_kafka());
    admin_ = std::make_unique<AdminClient>(Properties{{"bootstrap.servers", stack_env().kafka_bootstrap}});
    ASSERT_EQ(admin_->create_topics({{topic_, 2, 1, {}}}, 30s), std::vector<std::string>{topic_});
  }
  // After the test body: its consumers are gone before their topic is.
  void TearDown() override {
    if (admin_) admin_->delete_topics({topic_}, 30s);
  }

  std::unique_ptr<AdminClient> admin_;
  const std::string topic_ = unique_name("syncline_test_pause");
};

TEST_F(ConsumerPauseRebalance, a_paused_partition_assigned_again_after_a_rebalance_is_fetched_again) {
  const auto& topic = topic_;
  {
    TransactionalProducer producer({{"bootstrap.servers", stack_env().kafka_bootstrap},
                                    {"transactional.id", unique_name("syncline_test_txn")}});
    producer.init_transactions(30s);
    producer.begin_transaction();
    for (int partition = 0; partition < 2; ++partition) {
      producer.produce({.topic = topic, .partition = partition, .value = "p" + std::to_string(partition)});
    }
    producer.commit_transaction();
  }
  const Properties properties{{"bootstrap.servers", stack_env().kafka_bootstrap},
                              {"group.id", unique_name("syncline_test_group")},
                              {"auto.offset.reset", "earliest"},
                              {"enable.auto.commit", "false"}};
  std::vector<TopicPartition> revoked;
  RebalanceHooks hooks;
  hooks.on_assign = [](const std::vector<TopicPartition>&) { return std::vector<TopicPartitionOffset>{}; };
  hooks.on_revoke = [&](const std::vector<TopicPartition>& partitions, bool) {
    revoked.insert(revoked.end(), partitions.begin(), partitions.end());
  };
  Consumer first(properties, hooks);
  first.subscribe({topic});
  ASSERT_TRUE(poll_until(
      [&] {
        (void)first.poll(50ms);
        return first.assignment().size() == 2;
      },
      30s, "both partitions assigned to the first consumer"));
  first.pause(first.assignment());  // as a projector does while it retries

  // A second member joins and takes one partition (cooperative rebalancing moves only that one),
  // then leaves: the partition comes back to the first consumer.
  {
    Consumer second(properties);
    second.subscribe({topic});
    ASSERT_TRUE(poll_until(
        [&] {
          (void)first.poll(50ms);
          (void)second.poll(50ms);
          return revoked.size() == 1 && first.assignment().size() == 1 && second.assignment().size() == 1;
        },
        60s, "one partition moved to the second member"));
    second.close(10s);
  }
  ASSERT_EQ(revoked.size(), 1u);
  const auto moved = "p" + std::to_string(revoked[0].partition);
  std::vector<std::string> received;
  const auto back = poll_until(
      [&] {
        if (const auto message = first.poll(50ms); message && message->ok())
          received.emplace_back(message->value());
        return !received.empty();
      },
      30s, moved + " from the partition that came back to the first consumer");
  EXPECT_TRUE(back) << first.assignment().size() << " partition(s) held";
  // The partition that never left stays paused, as its owner asked.
  EXPECT_EQ(received, std::vector<std::string>{moved});
  first.close(10s);
}

}  // namespace
}  // namespace syncline::kafka
