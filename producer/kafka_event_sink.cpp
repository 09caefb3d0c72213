// KafkaEventSink: transactional publishing and the position topic.
#include "producer/kafka_event_sink.hpp"

#include <fmt/format.h>

#include <set>
#include <utility>

#include "common/failpoint.hpp"
#include "common/logging.hpp"

namespace syncline::producer {
namespace {

kafka::Properties producer_properties(const KafkaSinkOptions& options) {
  kafka::Properties properties = options.properties;
  properties["transactional.id"] = options.transactional_id;
  properties["enable.idempotence"] = "true";
  // Records are handed over in commit(), whose flush sends them at once; the linger only keeps a
  // large batch from leaving in small pieces while it is being handed over.
  properties.try_emplace("linger.ms", "20");
  properties.try_emplace("compression.type", "lz4");
  // Bounded memory while Kafka is slow or down: produce() waits (polling) instead of queueing more.
  properties.try_emplace("queue.buffering.max.messages", "100000");
  properties.try_emplace("queue.buffering.max.kbytes", "65536");
  properties.try_emplace("transaction.timeout.ms", "60000");
  return properties;
}

}  // namespace

KafkaEventSink::KafkaEventSink(KafkaSinkOptions options, metrics::Registry& registry)
    : options_(std::move(options)),
      registry_(registry),
      commit_seconds_(registry.histogram("syncline_producer_kafka_commit_seconds",
                                         "Time to commit one Kafka transaction.",
                                         metrics::default_latency_buckets())),
      admin_(options_.properties),
      producer_(producer_properties(options_)) {
  producer_.init_transactions(options_.timeout);
}

std::optional<SourcePosition> KafkaEventSink::read_position() {
  return read_stored_position(options_.properties, PositionTopics{options_.positions_topic, options_.position_key,
                                                                 options_.shared_positions_topic},
                              options_.timeout);
}

void KafkaEventSink::ensure_topics(const std::vector<kafka::NewTopic>& topics) {
  const auto created = admin_.create_topics(topics, options_.timeout);
  for (const auto& name : created) log::get("producer")->info("created topic {}", name);
}

void KafkaEventSink::begin() {
  producer_.begin_transaction();
  in_transaction_ = true;
  pending_.clear();
}

void KafkaEventSink::publish(OutgoingRecord record) {
  auto it = topic_counters_.find(record.message.topic);
  if (it == topic_counters_.end()) {
    // The first record for this topic in this process: without its partitions, librdkafka would hold
    // it (and the transaction's commit) until its next metadata scan.
    load_topic_metadata(record.message.topic);
    const metrics::Labels labels{{"topic", record.message.topic}};
    it = topic_counters_
             .emplace(record.message.topic,
                      TopicCounters{&registry_.counter("syncline_producer_events_total",
                                                       "Records published, per topic.", labels),
                                    &registry_.counter("syncline_producer_bytes_total",
                                                       "Bytes of record values published, per topic.", labels)})
             .first;
  }
  // Handed to librdkafka only in commit(). Produced now, the record's partition would be registered
  // with the transaction (AddPartitionsToTxn) moments after the previous EndTxn, while the coordinator
  // is still writing that one's markers: the broker answers CONCURRENT_TRANSACTIONS and librdkafka
  // retries 20 ms later, which the commit then waits for. Produced together at commit time, the
  // partitions are also registered in one request instead of one per partition first seen.
  it->second.records->inc();
  it->second.bytes->inc(static_cast<double>(record.message.value.size()));
  if (record.every_partition) (void)partition_count(record.message.topic);  // fails now, not at commit
  pending_.push_back(std::move(record));
}

int KafkaEventSink::partition_count(const std::string& topic) {
  if (const auto it = partition_counts_.find(topic); it != partition_counts_.end()) return it->second;
  const auto info = admin_.describe_topic(topic, options_.timeout);
  if (!info || info->partitions.empty()) {
    throw kafka::RetriableKafkaError(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
                                     fmt::format("cannot learn the partitions of {} for a truncate", topic));
  }
  // Kept for the process: adding partitions to a row-change topic while the producer runs would move
  // keys between partitions, which breaks per-key order anyway (docs/PRODUCER.md).
  const int count = static_cast<int>(info->partitions.size());
  partition_counts_.emplace(topic, count);
  return count;
}

void KafkaEventSink::load_topic_metadata(const std::string& topic) {
  // Bounded by the metadata scan it saves waiting for: longer is never worth it.
  if (!producer_.load_topic_metadata(topic, std::chrono::seconds(1))) {
    log::get("producer")->debug("could not look up the partitions of {} before producing to it", topic);
  }
}

void KafkaEventSink::commit(const SourcePosition& position) {
  if (!in_transaction_) begin();
  if (!positions_topic_loaded_) {
    load_topic_metadata(options_.positions_topic);
    positions_topic_loaded_ = true;
  }
  for (auto& record : pending_) {
    if (!record.every_partition) {
      producer_.produce(record.message, options_.timeout);
      continue;
    }
    const int partitions = partition_count(record.message.topic);
    for (int partition = 0; partition < partitions; ++partition) {
      record.message.partition = partition;
      producer_.produce(record.message, options_.timeout);
    }
  }
  pending_.clear();
  kafka::OutgoingMessage record;
  record.topic = options_.positions_topic;
  record.partition = 0;
  record.key = options_.position_key;
  record.value = encode_position(position);
  producer_.produce(record, options_.timeout);
  const auto started = std::chrono::steady_clock::now();
  producer_.commit_transaction(options_.timeout);
  in_transaction_ = false;
  failpoint::hit("producer.after_kafka_commit");
  commit_seconds_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace syncline::producer
