// Unit tests of topic names and of the topics the producer ensures before publishing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "producer/topic_plan.hpp"

namespace syncline::producer {
namespace {

const kafka::NewTopic* find_topic(const std::vector<kafka::NewTopic>& topics, const std::string& name) {
  for (const auto& topic : topics) {
    if (topic.name == name) return &topic;
  }
  ADD_FAILURE() << "no topic " << name << " in the plan";
  return nullptr;
}

std::vector<std::string> names_of(const std::vector<kafka::NewTopic>& topics) {
  std::vector<std::string> names;
  for (const auto& topic : topics) names.push_back(topic.name);
  return names;
}

TEST(TopicPlan, plans_a_compacted_topic_per_keyed_table_the_dead_letter_topic_and_the_position_topic) {
  RouterOptions router;
  router.captured_tables = {{"public", "orders"}, {"billing", "invoices"}};
  router.primary_keys = {{{"public", "orders"}, {"id"}}, {{"billing", "invoices"}, {"year", "number"}}};
  const auto topics = plan_topics(router, {.partitions = 6, .replication_factor = 3});
  EXPECT_THAT(names_of(topics),
              ::testing::ElementsAre("syncline.public.orders", "syncline.billing.invoices",
                                     "syncline.dlq.producer", "syncline.producer.positions.syncline"));

  const auto* orders = find_topic(topics, "syncline.public.orders");
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ(orders->partitions, 6);
  EXPECT_EQ(orders->replication_factor, 3);
  EXPECT_EQ(orders->config.at("cleanup.policy"), "compact");

  const auto* dlq = find_topic(topics, "syncline.dlq.producer");
  ASSERT_NE(dlq, nullptr);
  EXPECT_EQ(dlq->partitions, 6);
  EXPECT_EQ(dlq->config.at("retention.ms"), "-1");

  const auto* positions = find_topic(topics, "syncline.producer.positions.syncline");
  ASSERT_NE(positions, nullptr);
  EXPECT_EQ(positions->partitions, 1);
  EXPECT_EQ(positions->replication_factor, 3);
  EXPECT_EQ(positions->config.at("cleanup.policy"), "compact");
}

TEST(TopicPlan, a_table_without_a_primary_key_gets_an_append_only_topic_that_accepts_records_without_a_key) {
  RouterOptions router;
  router.captured_tables = {{"public", "orders"}, {"public", "audit_log"}};
  router.primary_keys = {{{"public", "orders"}, {"id"}}, {{"public", "audit_log"}, {}}};
  const auto topics = plan_topics(router, {});
  const auto* audit_log = find_topic(topics, "syncline.public.audit_log");
  ASSERT_NE(audit_log, nullptr);
  EXPECT_EQ(audit_log->config.at("cleanup.policy"), "delete");
  EXPECT_EQ(audit_log->config.at("retention.ms"), "-1");
  const auto* orders = find_topic(topics, "syncline.public.orders");
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ(orders->config.at("cleanup.policy"), "compact");
}

TEST(TopicPlan, a_table_whose_primary_key_is_unknown_is_never_compacted) {
  RouterOptions router;
  router.captured_tables = {{"public", "orders"}};
  const auto topics = plan_topics(router, {});
  const auto* orders = find_topic(topics, "syncline.public.orders");
  ASSERT_NE(orders, nullptr);
  EXPECT_EQ(orders->config.at("cleanup.policy"), "delete");
  EXPECT_EQ(orders->config.at("retention.ms"), "-1");
}

TEST(TopicPlan, a_topic_shared_by_a_keyed_and_a_keyless_table_is_not_compacted) {
  for (const bool keyless_first : {true, false}) {
    RouterOptions router;
    router.captured_tables = {{"public", "line items"}, {"public", "line_items"}};
    router.primary_keys = {{{"public", "line items"},
                            keyless_first ? std::vector<std::string>{} : std::vector<std::string>{"id"}},
                           {{"public", "line_items"},
                            keyless_first ? std::vector<std::string>{"id"} : std::vector<std::string>{}}};
    const auto topics = plan_topics(router, {});
    const auto* shared = find_topic(topics, "syncline.public.line_items");
    ASSERT_NE(shared, nullptr);
    EXPECT_EQ(shared->config.at("cleanup.policy"), "delete") << "keyless first: " << keyless_first;
  }
}

TEST(TopicPlan, defaults_to_three_partitions_and_the_brokers_replication_factor) {
  RouterOptions router;
  router.topic_prefix = "acme";
  const auto topics = plan_topics(router, {});
  EXPECT_THAT(names_of(topics), ::testing::ElementsAre("acme.dlq.producer", "acme.producer.positions.syncline"));
  EXPECT_EQ(topics[0].partitions, 3);
  EXPECT_EQ(topics[0].replication_factor, -1);
}

TEST(TopicPlan, a_domain_event_topic_keeps_everything) {
  RouterOptions router;
  const auto topic = domain_event_topic(router, {.partitions = 12, .replication_factor = 3}, "conversation");
  EXPECT_EQ(topic.name, "syncline.events.conversation");
  EXPECT_EQ(topic.partitions, 12);
  EXPECT_EQ(topic.replication_factor, 3);
  EXPECT_EQ(topic.config.at("retention.ms"), "-1");
  EXPECT_EQ(topic.config.at("cleanup.policy"), "delete");
}

TEST(TopicPlan, the_outbox_gets_no_row_change_topic_even_when_listed_as_captured) {
  RouterOptions router;
  router.captured_tables = {{"public", "outbox"}, {"public", "orders"}};
  EXPECT_THAT(names_of(plan_topics(router, {})),
              ::testing::ElementsAre("syncline.public.orders", "syncline.dlq.producer",
                                     "syncline.producer.positions.syncline"));
}

TEST(TopicPlan, names_that_sanitise_to_the_same_topic_are_planned_once) {
  RouterOptions router;
  router.captured_tables = {{"public", "line items"}, {"public", "line_items"}};
  EXPECT_THAT(names_of(plan_topics(router, {})),
              ::testing::ElementsAre("syncline.public.line_items", "syncline.dlq.producer",
                                     "syncline.producer.positions.syncline"));
}

TEST(TopicNames, characters_kafka_rejects_become_underscores) {
  EXPECT_EQ(sanitize_topic_component("order items/v2"), "order_items_v2");
  EXPECT_EQ(sanitize_topic_component("Kunde-Ä.v1_x"), "Kunde-__.v1_x");  // 'Ä' is two UTF-8 bytes
  EXPECT_EQ(event_topic_name("syncline", "a:b"), "syncline.events.a_b");
  EXPECT_EQ(row_change_topic_name("syncline", "my schema", "t$1"), "syncline.my_schema.t_1");
  EXPECT_EQ(dead_letter_topic_name("syncline"), "syncline.dlq.producer");
  EXPECT_EQ(positions_topic_name("syncline", "orders"), "syncline.producer.positions.orders");
  EXPECT_EQ(shared_positions_topic_name("syncline"), "syncline.producer.positions");
}

TEST(TopicNames, a_name_longer_than_kafka_allows_is_cut_to_its_limit) {
  const auto name = event_topic_name("syncline", std::string(400, 'a'));
  EXPECT_EQ(name.size(), kMaxTopicNameLength);
  EXPECT_EQ(name.substr(0, 16), "syncline.events.");
}

}  // namespace
}  // namespace syncline::producer
