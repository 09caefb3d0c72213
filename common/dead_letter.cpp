// Dead-letter publisher of consumers (see dead_letter.hpp).
#include "common/dead_letter.hpp"

#include "common/logging.hpp"

namespace syncline {

DeadLetterPublisher::DeadLetterPublisher(const kafka::Properties& properties, std::string topic,
                                         std::string component)
    : topic_(std::move(topic)), component_(std::move(component)), properties_(properties) {
  producer_ = std::make_unique<kafka::Producer>(properties, [this](const kafka::DeliveryReport& report) {
    if (!report.ok() && !failed_) failed_ = report;
  });
}

namespace {
kafka::Properties producer_properties(const KafkaConfig& kafka) {
  kafka::Properties properties;
  for (const auto& [key, value] : kafka.properties)
    if (!kafka::is_consumer_property(key)) properties[key] = value;
  properties["bootstrap.servers"] = kafka.bootstrap_servers;
  properties["client.id"] = kafka.client_id;
  return properties;
}
}  // namespace

DeadLetterPublisher::DeadLetterPublisher(const KafkaConfig& kafka, std::string topic, std::string component)
    : DeadLetterPublisher(producer_properties(kafka), std::move(topic), std::move(component)) {}

void DeadLetterPublisher::ensure_topic(std::chrono::milliseconds timeout) {
  if (topic_ready_) return;
  kafka::AdminClient admin(properties_);
  // Dead letters are kept until someone has looked at them: no retention limit.
  admin.create_topics({{topic_, 1, -1, {{"retention.ms", "-1"}}}}, timeout);
  topic_ready_ = true;
}

void DeadLetterPublisher::publish(const DeadLetter& letter) {
  ensure_topic(std::chrono::seconds(30));
  kafka::OutgoingMessage message{.topic = topic_, .key = letter.key, .value = letter.value, .headers = letter.headers};
  message.headers.push_back({std::string(consumer_dlq_header::reason), letter.reason});
  message.headers.push_back({std::string(consumer_dlq_header::component), component_});
  if (!letter.projection.empty())
    message.headers.push_back({std::string(consumer_dlq_header::projection), letter.projection});
  message.headers.push_back({std::string(consumer_dlq_header::topic), letter.topic});
  message.headers.push_back({std::string(consumer_dlq_header::partition), std::to_string(letter.partition)});
  message.headers.push_back({std::string(consumer_dlq_header::offset), std::to_string(letter.offset)});
  producer_->produce(message);
  ++published_;
  log::get("dlq")->warn("dead-lettered {}/{}@{} to {}: {}", letter.topic, letter.partition, letter.offset, topic_,
                        letter.reason);
}

void DeadLetterPublisher::flush(std::chrono::milliseconds timeout) {
  const bool done = producer_->flush(timeout);
  if (failed_) {
    const auto report = *std::exchange(failed_, std::nullopt);
    throw kafka::KafkaError(report.error, "dead-letter delivery to " + topic_ + " failed: " + report.error_message);
  }
  if (!done) {
    throw kafka::RetriableKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT,
                                     "dead letters not acknowledged by Kafka within " +
                                         std::to_string(timeout.count()) + " ms");
  }
}

}  // namespace syncline
