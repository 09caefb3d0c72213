// Topic names and the Kafka topics the producer must ensure exist.
#include "producer/topic_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace syncline::producer {
namespace {

// Written out although they are Kafka's defaults, so a broker configured otherwise cannot make a
// domain-event topic forget history or compact away a row change that is still the latest state.
const std::map<std::string, std::string> kKeepEverything{{"cleanup.policy", "delete"},
                                                         {"retention.ms", "-1"}};
const std::map<std::string, std::string> kCompacted{{"cleanup.policy", "compact"}};

}  // namespace

std::vector<kafka::NewTopic> plan_topics(const RouterOptions& router, const TopicPlanOptions& plan) {
  std::vector<kafka::NewTopic> topics;
  std::set<std::string> names;
  const auto add = [&](kafka::NewTopic topic) {
    if (names.insert(topic.name).second) topics.push_back(std::move(topic));
  };
  // Kafka rejects a record without a key on a compacted topic, which fails the whole transaction.
  // A table's topic is compacted only when its rows are always keyed by the primary key; if two
  // tables share a topic (see sanitize_topic_component), one keyless table makes it append-only.
  for (const auto& [schema, table] : router.captured_tables) {
    if (schema == router.outbox_schema && table == router.outbox_table) continue;
    const auto key = router.primary_keys.find({schema, table});
    const bool keyed = key != router.primary_keys.end() && !key->second.empty();
    const auto name = row_change_topic_name(router.topic_prefix, schema, table);
    if (!keyed) {
      const auto shared = std::find_if(topics.begin(), topics.end(),
                                       [&](const kafka::NewTopic& topic) { return topic.name == name; });
      if (shared != topics.end()) shared->config = kKeepEverything;
    }
    add({.name = name,
         .partitions = plan.partitions,
         .replication_factor = plan.replication_factor,
         .config = keyed ? kCompacted : kKeepEverything});
  }
  add({.name = dead_letter_topic_name(router.topic_prefix),
       .partitions = plan.partitions,
       .replication_factor = plan.replication_factor,
       .config = kKeepEverything});
  add({.name = positions_topic_name(router.topic_prefix, plan.slot),
       .partitions = 1,
       .replication_factor = plan.replication_factor,
       .config = kCompacted});
  return topics;
}

kafka::NewTopic domain_event_topic(const RouterOptions& router, const TopicPlanOptions& plan,
                                   std::string_view aggregate_type) {
  return {.name = event_topic_name(router.topic_prefix, aggregate_type),
          .partitions = plan.partitions,
          .replication_factor = plan.replication_factor,
          .config = kKeepEverything};
}

}  // namespace syncline::producer
