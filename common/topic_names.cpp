// Kafka topic names of Syncline (see topic_names.hpp).
#include "common/topic_names.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace syncline {
namespace {

bool is_topic_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

std::string within_kafka_limit(std::string name) {
  if (name.size() > kMaxTopicNameLength) name.resize(kMaxTopicNameLength);
  return name;
}

}  // namespace

std::string sanitize_topic_component(std::string_view component) {
  std::string out(component);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return !is_topic_char(c); }, '_');
  return out;
}

std::string event_topic_name(std::string_view prefix, std::string_view aggregate_type) {
  return within_kafka_limit(fmt::format("{}.events.{}", prefix, sanitize_topic_component(aggregate_type)));
}

std::string row_change_topic_name(std::string_view prefix, std::string_view schema, std::string_view table) {
  return within_kafka_limit(
      fmt::format("{}.{}.{}", prefix, sanitize_topic_component(schema), sanitize_topic_component(table)));
}

std::string dead_letter_topic_name(std::string_view prefix, std::string_view component) {
  return within_kafka_limit(fmt::format("{}.dlq.{}", prefix, component));
}

std::string positions_topic_name(std::string_view prefix, std::string_view slot) {
  return within_kafka_limit(fmt::format("{}.producer.positions.{}", prefix, sanitize_topic_component(slot)));
}

std::string shared_positions_topic_name(std::string_view prefix) {
  return within_kafka_limit(fmt::format("{}.producer.positions", prefix));
}

}  // namespace syncline
