// read_stored_position: a tail read of the slot's position topic (see position_reader.hpp).
#include "producer/position_reader.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/logging.hpp"
#include "common/topic_names.hpp"

namespace syncline::producer {
namespace {

// The last position stored under `key` in partition 0 of `topic`, reading from `start` to the end.
std::optional<SourcePosition> scan(kafka::Consumer& consumer, const std::string& topic, const std::string& key,
                                   std::int64_t start, std::chrono::milliseconds timeout) {
  consumer.assign({kafka::TopicPartitionOffset{topic, 0, start}});
  std::optional<SourcePosition> last;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto message = consumer.poll(std::chrono::milliseconds(200));
    if (!message) continue;
    if (message->error() == RD_KAFKA_RESP_ERR__PARTITION_EOF) return last;
    if (!message->ok()) {
      throw kafka::KafkaError(message->error(), fmt::format("reading {}: {}", topic, message->error_message()));
    }
    const auto record_key = message->key();
    if (!record_key || *record_key != key) continue;
    if (auto position = decode_position(message->value())) {
      last = std::move(position);
    } else {
      log::get("producer")->warn("ignoring an unreadable record at offset {} of {}", message->offset(), topic);
    }
  }
  throw kafka::RetriableKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT,
                                   fmt::format("reading the stored position from {} timed out", topic));
}

}  // namespace

std::optional<SourcePosition> read_stored_position(const kafka::Properties& properties, const PositionTopics& topics,
                                                   std::chrono::milliseconds timeout) {
  kafka::AdminClient admin(properties);
  kafka::Properties reader = properties;
  reader["group.id"] = "syncline-position-reader-" + topics.key;
  reader["enable.partition.eof"] = "true";
  reader["fetch.wait.max.ms"] = "10";  // start-up waits on this read: do not let the broker linger
  kafka::Consumer consumer(reader);
  std::optional<SourcePosition> found;
  if (admin.describe_topic(topics.own, timeout)) {
    const auto own = admin.watermark_offsets(topics.own, 0, timeout);
    for (std::int64_t window = 16; own.high > own.low && !found; window *= 16) {
      const std::int64_t start = std::max(own.low, own.high - window);
      found = scan(consumer, topics.own, topics.key, start, timeout);
      if (start == own.low) break;
    }
  }
  // Before each slot had its own topic, every slot of the prefix shared one: read it whole, once.
  // Another producer's open transaction there can hide newer positions, which is why it was replaced.
  if (!found && !topics.shared.empty() && admin.describe_topic(topics.shared, timeout)) {
    const auto shared = admin.watermark_offsets(topics.shared, 0, timeout);
    if (shared.high > shared.low) found = scan(consumer, topics.shared, topics.key, shared.low, timeout);
    if (found) {
      log::get("producer")->info("read the position of slot '{}' from {} (the topic older versions shared); "
                                 "from now on it is stored in {}",
                                 topics.key, topics.shared, topics.own);
    }
  }
  consumer.close();
  return found;
}

PositionTopics position_topics_for(const Config& config) {
  return PositionTopics{positions_topic_name(config.kafka.topic_prefix, config.producer.slot), config.producer.slot,
                        shared_positions_topic_name(config.kafka.topic_prefix)};
}

}  // namespace syncline::producer
