// KafkaEventSink: EventSink over a transactional producer; reads the stored position back at start.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "producer/event_sink.hpp"

namespace syncline::producer {

struct KafkaSinkOptions {
  kafka::Properties properties;  // bootstrap.servers and the user's client properties
  std::string transactional_id;
  std::string positions_topic;
  std::string position_key;  // the slot name: one position per slot
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// Owned by the producer's pipeline thread. Creating it fences any older producer with the same
// transactional.id (init_transactions aborts what that one left open), so the stored position read
// afterwards is final.
class KafkaEventSink final : public EventSink {
 public:
  KafkaEventSink(KafkaSinkOptions options, metrics::Registry& registry);

  // The last position committed for this slot, or nullopt when none was ever written.
  std::optional<SourcePosition> read_position();

  void ensure_topics(const std::vector<kafka::NewTopic>& topics) override;
  void begin() override;
  void publish(OutgoingRecord record) override;
  void commit(const SourcePosition& position) override;

 private:
  KafkaSinkOptions options_;
  metrics::Registry& registry_;
  metrics::Histogram& commit_seconds_;
  kafka::AdminClient admin_;
  kafka::TransactionalProducer producer_;
  void load_topic_metadata(const std::string& topic);

  bool in_transaction_ = false;
  bool positions_topic_loaded_ = false;
  std::vector<kafka::OutgoingMessage> pending_;  // this transaction's records, produced by commit()
  struct TopicCounters {
    metrics::Counter* records;
    metrics::Counter* bytes;
  };
  // Looked up once per topic: the registry's lookup takes a lock and builds label maps.
  std::unordered_map<std::string, TopicCounters> topic_counters_;
};

}  // namespace syncline::producer
