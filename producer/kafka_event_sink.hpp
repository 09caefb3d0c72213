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
#include "producer/position_reader.hpp"

namespace syncline::producer {

struct KafkaSinkOptions {
  kafka::Properties properties;  // bootstrap.servers and the user's client properties
  std::string transactional_id;
  std::string positions_topic;  // the slot's own (positions_topic_name(prefix, slot))
  std::string position_key;     // the slot name
  // Read when the slot's own topic holds nothing: where every slot of the prefix kept its position
  // before each got its own topic. Empty: none.
  std::string shared_positions_topic;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// Owned by the producer's pipeline thread. Creating it fences any older producer with the same
// transactional.id (init_transactions aborts what that one left open), so the stored position read
// afterwards is final.
class KafkaEventSink final : public EventSink {
 public:
  KafkaEventSink(KafkaSinkOptions options, metrics::Registry& registry);

  // The last position committed for this slot (read_stored_position), or nullopt when none was ever
  // written. Final: the constructor fenced every older instance.
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
  int partition_count(const std::string& topic);

  bool in_transaction_ = false;
  bool positions_topic_loaded_ = false;
  std::vector<OutgoingRecord> pending_;  // this transaction's records, produced by commit()
  std::unordered_map<std::string, int> partition_counts_;  // of topics that received a truncate
  struct TopicCounters {
    metrics::Counter* records;
    metrics::Counter* bytes;
  };
  // Looked up once per topic: the registry's lookup takes a lock and builds label maps.
  std::unordered_map<std::string, TopicCounters> topic_counters_;
};

}  // namespace syncline::producer
