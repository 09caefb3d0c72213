// Kafka topic names of Syncline: one place, so the producer and every consumer agree on them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace syncline {

// Kafka allows at most 249 characters in a topic name.
inline constexpr std::size_t kMaxTopicNameLength = 249;

// Replaces every character outside [a-zA-Z0-9._-] with '_', so aggregate types and schema/table
// names that Kafka would reject still give a topic. Different names can therefore share a topic
// ("order items" and "order_items"; also '.' and '_', which Kafka's metric names cannot tell
// apart): their events stay correct, they are only stored side by side.
std::string sanitize_topic_component(std::string_view component);

// Topic names: <prefix>.events.<aggregate_type>, <prefix>.<schema>.<table>, <prefix>.dlq.<component> and
// <prefix>.producer.positions.<slot>. The parts that come from data (aggregate types, schema and table
// names) are sanitized; the configured prefix is not, config validation checks it. A name longer
// than Kafka's limit is cut to kMaxTopicNameLength characters, which can also make two names collide.
std::string event_topic_name(std::string_view prefix, std::string_view aggregate_type);
std::string row_change_topic_name(std::string_view prefix, std::string_view schema, std::string_view table);
std::string dead_letter_topic_name(std::string_view prefix, std::string_view component = "producer");
// One per slot, so no other producer's open transaction can hide this one's newest position (a
// read_committed reader stops at the partition's last stable offset).
std::string positions_topic_name(std::string_view prefix, std::string_view slot);
// The position topic that every slot of a prefix shared before 0.2; read once to migrate.
std::string shared_positions_topic_name(std::string_view prefix);

}  // namespace syncline
