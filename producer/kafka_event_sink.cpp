// KafkaEventSink: transactional publishing and the position topic.
#include "producer/kafka_event_sink.hpp"

#include <fmt/format.h>

#include <set>
#include <utility>

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
  const auto high = admin_.watermark_offsets(options_.positions_topic, 0, options_.timeout);
  if (high.high == high.low) return std::nullopt;
  kafka::Properties properties = options_.properties;
  properties["group.id"] = options_.transactional_id + "-position-reader";
  properties["enable.partition.eof"] = "true";
  properties["fetch.wait.max.ms"] = "10";  // start-up waits on this read: do not let the broker linger
  kafka::Consumer consumer(properties);
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), options_.positions_topic.c_str(), 0)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  if (const auto err = rd_kafka_assign(consumer.raw(), list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw kafka::KafkaError(err, fmt::format("cannot read {}: {}", options_.positions_topic, rd_kafka_err2str(err)));
  }
  std::optional<SourcePosition> last;
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto message = consumer.poll(std::chrono::milliseconds(200));
    if (!message) continue;
    if (message->error() == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      consumer.close();
      return last;
    }
    if (!message->ok()) {
      throw kafka::KafkaError(message->error(), fmt::format("reading {}: {}", options_.positions_topic,
                                                            message->error_message()));
    }
    const auto key = message->key();
    if (!key || *key != options_.position_key) continue;
    if (auto position = decode_position(message->value())) {
      last = position;
    } else {
      log::get("producer")->warn("ignoring an unreadable record at offset {} of {}", message->offset(),
                                 options_.positions_topic);
    }
  }
  throw kafka::RetriableKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT,
                                   fmt::format("reading the stored position from {} timed out",
                                               options_.positions_topic));
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
  pending_.push_back(std::move(record.message));
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
  for (const auto& message : pending_) producer_.produce(message, options_.timeout);
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
  commit_seconds_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace syncline::producer
