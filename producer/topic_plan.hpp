// Topic names and the Kafka topics the producer must ensure exist before it publishes to them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/kafka.hpp"
#include "common/topic_names.hpp"
#include "producer/event_router.hpp"

namespace syncline::producer {

// Topic names live in common/topic_names.hpp (consumers need them too).
using ::syncline::dead_letter_topic_name;
using ::syncline::event_topic_name;
using ::syncline::kMaxTopicNameLength;
using ::syncline::positions_topic_name;
using ::syncline::shared_positions_topic_name;
using ::syncline::row_change_topic_name;
using ::syncline::sanitize_topic_component;

struct TopicPlanOptions {
  int partitions = 3;
  int replication_factor = -1;  // -1: the broker's default
  std::string slot = "syncline";  // names the producer's own position topic
};

// The topics known before the first change arrives: one row-change topic per captured table, the
// dead-letter topic and the slot's position topic (one partition, compacted: only the latest
// position matters). Domain-event topics depend on the aggregate types the application writes, so
// they are ensured lazily with domain_event_topic() for each type
// EventRouter::take_new_aggregate_types() reports. Duplicate names (see sanitize_topic_component)
// appear once; the outbox table gets no row-change topic, as the router
// never publishes its rows as row changes. A row-change topic is compacted (latest per key is a
// full state) when router.primary_keys gives the table a primary key; otherwise its records may
// have no key, which Kafka refuses on a compacted topic, so it keeps everything (delete policy,
// retention.ms=-1) as an append-only log. Topics that exist already are left as they are.
std::vector<kafka::NewTopic> plan_topics(const RouterOptions& router, const TopicPlanOptions& plan);

// A domain-event topic keeps everything (retention.ms=-1): it is the log a read model is rebuilt from.
kafka::NewTopic domain_event_topic(const RouterOptions& router, const TopicPlanOptions& plan,
                                   std::string_view aggregate_type);

}  // namespace syncline::producer
