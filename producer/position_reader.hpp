// Reading the producer's stored position back from Kafka: for the producer at start, and read-only for
// syncline-ctl (which must stamp the same source epoch and must not fence a running producer).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/config.hpp"
#include "common/kafka.hpp"
#include "producer/source_position.hpp"

namespace syncline::producer {

struct PositionTopics {
  std::string own;     // positions_topic_name(prefix, slot): only this slot's producer writes it
  std::string key;     // the slot name
  std::string shared;  // shared_positions_topic_name(prefix), read when `own` holds nothing; "" for none
};

// The last position committed under `topics.key`, read_committed, or nullopt when none was ever
// written. Reads the tail of the slot's own topic (its last records, then a longer tail only when
// they hold none: every commit adds a position and a commit marker, aborted ones are filtered), so
// it takes the same time however many positions were committed. Throws kafka::KafkaError.
// `properties`: bootstrap.servers and the client properties; a reader group id is derived.
std::optional<SourcePosition> read_stored_position(const kafka::Properties& properties, const PositionTopics& topics,
                                                   std::chrono::milliseconds timeout);
// The position topics of the producer `config` configures (its topic prefix and slot).
PositionTopics position_topics_for(const Config& config);

}  // namespace syncline::producer
