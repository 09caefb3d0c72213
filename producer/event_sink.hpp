// EventSink: where the producer's records go — one transaction at a time, with the source position.
#pragma once

#include <vector>

#include "common/kafka.hpp"
#include "producer/source_change.hpp"
#include "producer/source_position.hpp"

namespace syncline::producer {

// The pipeline's only view of Kafka, so its batching and resume rules are unit-tested with a fake.
// Every method may throw; the caller then abandons the open transaction (nothing of it is visible
// to read_committed consumers) and restarts from the recovery point.
class EventSink {
 public:
  virtual ~EventSink() = default;

  // Makes sure the topics exist before anything is published to them.
  virtual void ensure_topics(const std::vector<kafka::NewTopic>& topics) = 0;
  virtual void begin() = 0;
  virtual void publish(OutgoingRecord record) = 0;  // by value: the sink may keep it
  // Writes `position` and commits the transaction: on return, the records published since begin()
  // and the position are durable together, or an exception says they are not.
  virtual void commit(const SourcePosition& position) = 0;
};

}  // namespace syncline::producer
