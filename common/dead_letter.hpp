// Dead letters of consumers: a record that cannot be applied is published, with its original
// bytes and the reason, to `<prefix>.dlq.<component>` before its offset is committed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/kafka.hpp"

namespace syncline {

// Headers of a consumer's dead-letter record (the original record's headers come first).
namespace consumer_dlq_header {
inline constexpr std::string_view reason = "syncline-dlq-reason";  // a sentence naming the problem
inline constexpr std::string_view component = "syncline-dlq-component";  // e.g. "pg-projector"
inline constexpr std::string_view projection = "syncline-dlq-projection";
inline constexpr std::string_view topic = "syncline-dlq-topic";  // where the original was read
inline constexpr std::string_view partition = "syncline-dlq-partition";
inline constexpr std::string_view offset = "syncline-dlq-offset";
}  // namespace consumer_dlq_header

// What is known of the record being dead-lettered.
struct DeadLetter {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::string value;  // the original bytes
  std::vector<kafka::Header> headers;
  std::string projection;  // empty when no projection was involved (e.g. not JSON)
  std::string reason;
};

// An idempotent Kafka producer for one dead-letter topic. publish() queues; flush() returns only
// when every queued record is acknowledged, so a caller commits offsets after it. Owned by the
// consumer's thread.
class DeadLetterPublisher {
 public:
  DeadLetterPublisher(const kafka::Properties& properties, std::string topic, std::string component);
  // From the shared kafka section: its properties without the consumer-only ones.
  DeadLetterPublisher(const KafkaConfig& kafka, std::string topic, std::string component);

  // Creates the dead-letter topic when absent (one partition, kept forever); publish() calls it
  // once. Throws kafka::KafkaError (retriable ones while Kafka is unreachable).
  void ensure_topic(std::chrono::milliseconds timeout);
  void publish(const DeadLetter& letter);
  // Throws kafka::RetriableKafkaError if not everything was acknowledged within `timeout`, or
  // kafka::KafkaError naming the first failed delivery.
  void flush(std::chrono::milliseconds timeout);

  const std::string& topic() const noexcept { return topic_; }
  std::uint64_t published() const noexcept { return published_; }

 private:
  std::string topic_;
  std::string component_;
  std::uint64_t published_ = 0;
  bool topic_ready_ = false;
  kafka::Properties properties_;
  std::optional<kafka::DeliveryReport> failed_;
  std::unique_ptr<kafka::Producer> producer_;  // last: its callback refers to the members above
};

}  // namespace syncline
