// Unit tests for Kafka error classification and configuration errors (no broker needed).
#include <gtest/gtest.h>

#include "common/kafka.hpp"

namespace syncline::kafka {
namespace {

TEST(KafkaErrorClassification, NoErrorIsNone) {
  EXPECT_EQ(classify(RD_KAFKA_RESP_ERR_NO_ERROR), ErrorClass::none);
}

TEST(KafkaErrorClassification, TransientBrokerAndNetworkErrorsAreRetriable) {
  for (const auto code : {RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
                          RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
                          RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                          RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                          RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                          RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
                          RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART}) {
    EXPECT_EQ(classify(code), ErrorClass::retriable) << rd_kafka_err2name(code);
  }
}

TEST(KafkaErrorClassification, FencingAuthorizationAndMisuseAreFatal) {
  for (const auto code :
       {RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
        RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED,
        RD_KAFKA_RESP_ERR__SSL, RD_KAFKA_RESP_ERR__INVALID_ARG, RD_KAFKA_RESP_ERR__STATE,
        RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER}) {
    EXPECT_EQ(classify(code), ErrorClass::fatal) << rd_kafka_err2name(code);
  }
}

TEST(KafkaErrorClassification, ErrorsAboutTheMessageItselfArePermanent) {
  for (const auto code : {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG,
                          RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
                          RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
                          RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE}) {
    EXPECT_EQ(classify(code), ErrorClass::permanent) << rd_kafka_err2name(code);
  }
}

TEST(KafkaErrorClassification, UnknownCodesArePermanent) {
  EXPECT_EQ(classify(static_cast<rd_kafka_resp_err_t>(9999)), ErrorClass::permanent);
}

TEST(KafkaErrorClassification, ClassesHaveNames) {
  EXPECT_EQ(to_string(ErrorClass::retriable), "retriable");
  EXPECT_EQ(to_string(ErrorClass::permanent), "permanent");
  EXPECT_EQ(to_string(ErrorClass::fatal), "fatal");
}

TEST(KafkaTxnErrorClassification, FatalFlagWinsOverEverything) {
  EXPECT_EQ(classify_txn_error(true, true, true), TxnErrorKind::fatal);
  EXPECT_EQ(classify_txn_error(true, false, false), TxnErrorKind::fatal);
}

TEST(KafkaTxnErrorClassification, AbortableErrorIsNeverRetried) {
  EXPECT_EQ(classify_txn_error(false, true, true), TxnErrorKind::requires_abort);
  EXPECT_EQ(classify_txn_error(false, true, false), TxnErrorKind::requires_abort);
}

TEST(KafkaTxnErrorClassification, RetriableFlagMeansCallAgain) {
  EXPECT_EQ(classify_txn_error(false, false, true), TxnErrorKind::retriable);
}

TEST(KafkaTxnErrorClassification, ErrorWithoutFlagsIsTreatedAsFatal) {
  EXPECT_EQ(classify_txn_error(false, false, false), TxnErrorKind::fatal);
}

TEST(KafkaConfig, BuildsFromValidProperties) {
  const ConfPtr conf = make_config({{"bootstrap.servers", "127.0.0.1:1"}, {"linger.ms", "5"}});
  ASSERT_NE(conf, nullptr);
  std::array<char, 64> value{};
  std::size_t size = value.size();
  ASSERT_EQ(rd_kafka_conf_get(conf.get(), "linger.ms", value.data(), &size), RD_KAFKA_CONF_OK);
  EXPECT_STREQ(value.data(), "5");
}

TEST(KafkaConfig, ErrorNamesTheUnknownProperty) {
  try {
    make_config({{"bootstrap.servers", "127.0.0.1:1"}, {"no.such.property", "x"}});
    FAIL() << "expected KafkaConfigError";
  } catch (const KafkaConfigError& e) {
    EXPECT_EQ(e.property(), "no.such.property");
    EXPECT_NE(std::string(e.what()).find("no.such.property"), std::string::npos) << e.what();
  }
}

TEST(KafkaConfig, ErrorNamesTheInvalidValueButNotTheValue) {
  try {
    make_config({{"sasl.password", "hunter2"}, {"linger.ms", "not-a-number-hunter2"}});
    FAIL() << "expected KafkaConfigError";
  } catch (const KafkaConfigError& e) {
    EXPECT_EQ(e.property(), "linger.ms");
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
}

TEST(KafkaConfig, ProducerRequiresBootstrapServers) {
  EXPECT_THROW(Producer(Properties{}), KafkaConfigError);
}

TEST(KafkaConfig, TransactionalProducerRequiresTransactionalId) {
  try {
    TransactionalProducer producer(Properties{{"bootstrap.servers", "127.0.0.1:1"}});
    FAIL() << "expected KafkaConfigError";
  } catch (const KafkaConfigError& e) {
    EXPECT_EQ(e.property(), "transactional.id");
  }
}

TEST(KafkaConfig, ConsumerRequiresGroupId) {
  try {
    Consumer consumer(Properties{{"bootstrap.servers", "127.0.0.1:1"}});
    FAIL() << "expected KafkaConfigError";
  } catch (const KafkaConfigError& e) {
    EXPECT_EQ(e.property(), "group.id");
  }
}

TEST(KafkaConfig, ConsumerOnlyPropertiesAreRecognisedSoProducersCanLeaveThemOut) {
  for (const char* key : {"group.instance.id", "session.timeout.ms", "heartbeat.interval.ms", "auto.offset.reset",
                          "isolation.level", "max.poll.interval.ms", "max.partition.fetch.bytes",
                          "fetch.message.max.bytes", "queued.max.messages.kbytes", "enable.auto.commit"}) {
    EXPECT_TRUE(is_consumer_property(key)) << key;
  }
  for (const char* key : {"bootstrap.servers", "security.protocol", "sasl.username", "linger.ms", "client.id",
                          "socket.keepalive.enable", "compression.type"}) {
    EXPECT_FALSE(is_consumer_property(key)) << key;
  }
}

TEST(KafkaProducer, ProduceToUnreachableBrokerIsQueuedAndFlushReturnsAtDeadline) {
  // Nothing listens on port 1: the message stays in flight and flush gives up at its deadline.
  Producer producer({{"bootstrap.servers", "127.0.0.1:1"}, {"message.timeout.ms", "60000"}});
  producer.set_flush_timeout_on_destroy(std::chrono::milliseconds(0));
  producer.produce({.topic = "t", .key = "k", .value = "v", .headers = {{"h", "1"}}});
  EXPECT_GE(producer.in_flight(), 1);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(producer.flush(std::chrono::milliseconds(100)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(producer.fatal_error().has_value());
}

}  // namespace
}  // namespace syncline::kafka

namespace syncline::kafka {
namespace {

TEST(KafkaConsumer, CommitAndCloseAgainstAnUnreachableBrokerReturnWithinADeadline) {
  // librdkafka's destroy still waits up to session.timeout.ms for the coordinator (an open
  // librdkafka issue, #3740); a short session keeps this test quick.
  const auto created = std::chrono::steady_clock::now();
  {
    Consumer consumer(Properties{
        {"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "unreachable"}, {"session.timeout.ms", "3000"}});
    consumer.subscribe({"t"});
    EXPECT_FALSE(consumer.poll(std::chrono::milliseconds(50)).has_value());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(consumer.commit({{"t", 0, 1}}, CommitMode::sync, std::chrono::seconds(1)),
                 RetriableKafkaError);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    const auto close_start = std::chrono::steady_clock::now();
    try {
      consumer.close(std::chrono::seconds(1));
    } catch (const RetriableKafkaError&) {
      // Giving up on leaving the group is fine; hanging is not.
    }
    EXPECT_LT(std::chrono::steady_clock::now() - close_start, std::chrono::seconds(5));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - created, std::chrono::seconds(15));
}

}  // namespace
}  // namespace syncline::kafka
