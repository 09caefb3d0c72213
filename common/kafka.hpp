// Kafka client wrappers: RAII over the librdkafka C API, error classification, producers,
// a cooperative read_committed consumer and an admin client.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace syncline::kafka {

// ---------------------------------------------------------------------------------------------
// Error classification

// What the caller should do about an error: retry it (with backoff), dead-letter the input
// (permanent: retrying cannot help, the input or request is at fault), or stop the process
// (fatal: the client instance or its configuration is unusable).
enum class ErrorClass { none, retriable, permanent, fatal };

std::string_view to_string(ErrorClass error_class) noexcept;

// Classifies a librdkafka/broker error code. NO_ERROR is `none`; unknown codes are permanent.
ErrorClass classify(rd_kafka_resp_err_t error) noexcept;

// How a transactional API error must be handled, from librdkafka's own error flags. The order
// matters: a fatal error may also carry other flags, and an abortable error is never retried.
enum class TxnErrorKind { retriable, requires_abort, fatal };
TxnErrorKind classify_txn_error(bool is_fatal, bool txn_requires_abort, bool is_retriable) noexcept;

class KafkaError : public std::runtime_error {
 public:
  KafkaError(rd_kafka_resp_err_t code, const std::string& what);
  rd_kafka_resp_err_t code() const noexcept { return code_; }
  ErrorClass error_class() const noexcept { return classify(code_); }

 private:
  rd_kafka_resp_err_t code_;
};

// A bad or unknown configuration property; the message names the property, never its value.
class KafkaConfigError : public KafkaError {
 public:
  KafkaConfigError(std::string property, const std::string& what);
  const std::string& property() const noexcept { return property_; }

 private:
  std::string property_;
};

// Transaction errors, one type per required reaction (see TxnErrorKind).
class RetriableKafkaError : public KafkaError {
  using KafkaError::KafkaError;
};
class TxnRequiresAbortError : public KafkaError {
  using KafkaError::KafkaError;
};
class FatalKafkaError : public KafkaError {
  using KafkaError::KafkaError;
};

// ---------------------------------------------------------------------------------------------
// RAII for the C handles

struct HandleDeleter {
  void operator()(rd_kafka_t* handle) const noexcept { rd_kafka_destroy(handle); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const noexcept { rd_kafka_conf_destroy(conf); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const noexcept {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* message) const noexcept { rd_kafka_message_destroy(message); }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* error) const noexcept { rd_kafka_error_destroy(error); }
};
struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* metadata) const noexcept {
    rd_kafka_consumer_group_metadata_destroy(metadata);
  }
};

using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using GroupMetadataPtr = std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;

using Properties = std::map<std::string, std::string>;

// Whether a librdkafka property only means something to a consumer (group.*, fetch.*, ...). A
// binary passes the shared kafka.properties to its producers without them, so that a consumer
// setting does not make every producer warn about it.
bool is_consumer_property(std::string_view key) noexcept;

// Builds a librdkafka configuration; throws KafkaConfigError naming the first bad property.
ConfPtr make_config(const Properties& properties);

// ---------------------------------------------------------------------------------------------
// Plain data

inline constexpr std::int32_t kAnyPartition = -1;  // RD_KAFKA_PARTITION_UA without its C cast

struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  bool operator==(const TopicPartition&) const = default;
  auto operator<=>(const TopicPartition&) const = default;
};

// `offset` is the next offset to read (a committed offset, a seek target), or a logical
// RD_KAFKA_OFFSET_* value.
struct TopicPartitionOffset {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = RD_KAFKA_OFFSET_INVALID;
  // Committed offsets only: the commit's metadata string (e.g. the sink's last applied position).
  std::string metadata{};
  bool operator==(const TopicPartitionOffset&) const = default;
};

struct WatermarkOffsets {
  std::int64_t low = 0;
  std::int64_t high = 0;  // the offset the next message will get
};

struct Header {
  std::string key;
  std::string value;
  bool operator==(const Header&) const = default;
};

struct OutgoingMessage {
  std::string topic{};
  std::int32_t partition = kAnyPartition;
  std::optional<std::string> key{};
  std::string value{};
  std::vector<Header> headers{};
  std::uint64_t tag = 0;  // returned in the delivery report, to correlate without parsing
};

struct DeliveryReport {
  std::string topic;
  std::int32_t partition = kAnyPartition;
  std::int64_t offset = RD_KAFKA_OFFSET_INVALID;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string error_message;
  std::uint64_t tag = 0;
  bool ok() const noexcept { return error == RD_KAFKA_RESP_ERR_NO_ERROR; }
};

// A consumed message (or a consumer event carrying an error), owning the librdkafka message.
class Message {
 public:
  explicit Message(MessagePtr message) : message_(std::move(message)) {}

  rd_kafka_resp_err_t error() const noexcept { return message_->err; }
  bool ok() const noexcept { return message_->err == RD_KAFKA_RESP_ERR_NO_ERROR; }
  std::string error_message() const;
  std::string topic() const;
  std::int32_t partition() const noexcept { return message_->partition; }
  std::int64_t offset() const noexcept { return message_->offset; }
  std::optional<std::string_view> key() const noexcept;
  std::string_view value() const noexcept;
  std::vector<Header> headers() const;
  std::optional<std::string> header(std::string_view key) const;  // the last one of that name
  const rd_kafka_message_t* raw() const noexcept { return message_.get(); }

 private:
  MessagePtr message_;
};

// ---------------------------------------------------------------------------------------------
// Producer

using DeliveryCallback = std::function<void(const DeliveryReport&)>;

// An idempotent producer. Delivery reports are the only truth about what was written: they are
// delivered to `on_delivery` on the thread that calls poll()/flush(). Owned by one thread.
class Producer {
 public:
  // `properties` must contain bootstrap.servers; enable.idempotence defaults to true.
  explicit Producer(const Properties& properties, DeliveryCallback on_delivery = {});
  virtual ~Producer();  // flushes (bounded by flush_timeout_on_destroy) before destroying
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues a message. On a full local queue it polls (serving delivery reports) and retries
  // until `queue_full_timeout`; then throws RetriableKafkaError. Other errors throw KafkaError
  // (FatalKafkaError for a fatal producer state).
  void produce(const OutgoingMessage& message,
               std::chrono::milliseconds queue_full_timeout = std::chrono::seconds(30));

  // Looks up `topic`'s partitions now (waiting up to `timeout`), so the first produce() to it is sent
  // at once: librdkafka otherwise learns a new topic's partitions on its next periodic metadata
  // scan, up to a second later, and the transaction that waits for it is that much slower. False if
  // the lookup failed or timed out; produce() then works as without it.
  bool load_topic_metadata(const std::string& topic, std::chrono::milliseconds timeout);

  int poll(std::chrono::milliseconds timeout);    // serves callbacks; returns the events served
  bool flush(std::chrono::milliseconds timeout);  // true when nothing is left in flight
  // Messages not yet acknowledged, plus callbacks not yet served (librdkafka counts both).
  int in_flight() const;

  // Set when librdkafka raised a fatal error: the instance must be recreated.
  std::optional<std::string> fatal_error() const;

  void set_flush_timeout_on_destroy(std::chrono::milliseconds timeout) { flush_on_destroy_ = timeout; }
  rd_kafka_t* raw() const noexcept { return handle_.get(); }

 protected:
  Producer(const Properties& properties, DeliveryCallback on_delivery, bool transactional);

 private:
  static void on_delivery_report(rd_kafka_t* handle, const rd_kafka_message_t* message, void* opaque);

  DeliveryCallback on_delivery_;
  std::chrono::milliseconds flush_on_destroy_{std::chrono::seconds(10)};
  HandlePtr handle_;  // last: destroyed first, while the callback above is still alive
};

// A transactional producer (transactional.id required). Errors are thrown as
// RetriableKafkaError (call again), TxnRequiresAbortError (abort, then redo the transaction)
// or FatalKafkaError (recreate the producer / exit).
class TransactionalProducer : public Producer {
 public:
  explicit TransactionalProducer(const Properties& properties, DeliveryCallback on_delivery = {});

  void init_transactions(std::chrono::milliseconds timeout);
  void begin_transaction();
  // timeout -1 (the default) means "the remaining transaction time", librdkafka's recommendation.
  void commit_transaction(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));
  void abort_transaction(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));
  // Commits consumer offsets (next offsets to read) as part of the current transaction.
  void send_offsets_to_transaction(const std::vector<TopicPartitionOffset>& offsets,
                                   const rd_kafka_consumer_group_metadata_t& group,
                                   std::chrono::milliseconds timeout);
};

// ---------------------------------------------------------------------------------------------
// Consumer

// Hooks into the cooperative rebalance, called on the thread that calls Consumer::poll().
struct RebalanceHooks {
  // Partitions being added. Return start offsets for any of them (e.g. offsets stored in the
  // sink); partitions not returned start at their committed offset. If it throws, the
  // partitions are still assigned but paused and poll() rethrows the exception.
  std::function<std::vector<TopicPartitionOffset>(const std::vector<TopicPartition>&)> on_assign{};
  // Partitions being removed; `lost` when they were lost (session timeout) rather than revoked,
  // in which case another member may already own them and nothing should be committed.
  std::function<void(const std::vector<TopicPartition>&, bool lost)> on_revoke{};
};

enum class CommitMode { sync, async };

// A group member: read_committed, cooperative-sticky, no auto-commit, no automatic offset
// store. Owned by one thread (librdkafka's consumer API is not to be shared across pollers).
class Consumer {
 public:
  // `properties` must contain bootstrap.servers and group.id; defaults above may be overridden.
  explicit Consumer(const Properties& properties, RebalanceHooks hooks = {});
  ~Consumer();  // close() if not closed yet
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  void subscribe(const std::vector<std::string>& topics);
  // Reads exactly these partitions from these offsets, outside any group rebalance (the group id
  // then only names where commit() stores offsets). Replaces the previous manual assignment.
  void assign(const std::vector<TopicPartitionOffset>& partitions);
  // A message, an error event (check ok()), or nothing on timeout. Throws FatalKafkaError on a
  // fatal consumer error and rethrows an exception raised by a rebalance hook.
  std::optional<Message> poll(std::chrono::milliseconds timeout);

  // A sync commit waits at most `timeout`, then throws RetriableKafkaError (the commit may still
  // complete in the background). Async failures are only logged.
  void commit(const std::vector<TopicPartitionOffset>& offsets, CommitMode mode,
              std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void commit(const Message& message, CommitMode mode,  // commits message.offset() + 1
              std::chrono::milliseconds timeout = std::chrono::seconds(10));
  std::vector<TopicPartitionOffset> committed(const std::vector<TopicPartition>& partitions,
                                              std::chrono::milliseconds timeout);
  void seek(const std::vector<TopicPartitionOffset>& offsets, std::chrono::milliseconds timeout);
  void pause(const std::vector<TopicPartition>& partitions);
  void resume(const std::vector<TopicPartition>& partitions);
  std::vector<TopicPartition> assignment() const;
  // The next offset the application will read for each partition (past control records such as
  // transaction markers); RD_KAFKA_OFFSET_INVALID when nothing was read yet.
  std::vector<TopicPartitionOffset> position(const std::vector<TopicPartition>& partitions) const;
  // The partition's offsets as last seen in fetch responses, without a request; nullopt until known.
  std::optional<WatermarkOffsets> cached_watermarks(const TopicPartition& partition) const;
  // The partition's offsets asked from its leader (a round trip); throws on error or timeout.
  WatermarkOffsets query_watermarks(const TopicPartition& partition, std::chrono::milliseconds timeout) const;
  GroupMetadataPtr group_metadata() const;

  // Leaves the group (revoking through the hooks). Idempotent. Throws RetriableKafkaError if
  // it takes longer than `timeout`; the destructor then skips the group leave.
  void close(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  rd_kafka_t* raw() const noexcept { return handle_.get(); }

 private:
  static void on_rebalance(rd_kafka_t* handle, rd_kafka_resp_err_t error,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void handle_rebalance(rd_kafka_resp_err_t error, rd_kafka_topic_partition_list_t* partitions);

  RebalanceHooks hooks_;
  std::exception_ptr hook_failure_;
  bool closed_ = false;
  bool close_abandoned_ = false;
  HandlePtr handle_;  // last: destroyed first, while hooks_ is still alive
};

// ---------------------------------------------------------------------------------------------
// Admin

struct NewTopic {
  std::string name;
  int partitions = 1;
  int replication_factor = -1;                  // -1: the broker's default
  std::map<std::string, std::string> config{};  // e.g. retention.ms=-1, cleanup.policy=compact
};

struct PartitionInfo {
  std::int32_t id = 0;
  std::int32_t leader = -1;
  std::vector<std::int32_t> replicas;
};

struct TopicInfo {
  std::string name;
  std::vector<PartitionInfo> partitions;
};

struct GroupMember {
  std::string member_id;
  std::string client_id;
  std::string host;
  std::vector<TopicPartition> assignment;
};

struct GroupDescription {
  std::string state;  // "Stable", "Empty", "PreparingRebalance", ... as librdkafka names them
  std::vector<GroupMember> members;
};

class AdminClient {
 public:
  explicit AdminClient(const Properties& properties);  // bootstrap.servers required

  // Creates the topics and waits until their partitions have leaders; an existing topic is not
  // an error. Returns the names it created.
  std::vector<std::string> create_topics(const std::vector<NewTopic>& topics,
                                         std::chrono::milliseconds timeout);
  // Deletes the topics; an unknown topic is not an error.
  void delete_topics(const std::vector<std::string>& names, std::chrono::milliseconds timeout);
  std::vector<TopicInfo> list_topics(std::chrono::milliseconds timeout);  // internal ones skipped
  std::optional<TopicInfo> describe_topic(const std::string& name, std::chrono::milliseconds timeout);
  std::map<std::string, std::string> topic_config(const std::string& name, std::chrono::milliseconds timeout);
  WatermarkOffsets watermark_offsets(const std::string& topic, std::int32_t partition,
                                     std::chrono::milliseconds timeout);

  // The group's state and live members; nullopt when the broker knows no such group ("Dead").
  std::optional<GroupDescription> describe_group(const std::string& group, std::chrono::milliseconds timeout);
  // The group's committed offsets (with their metadata) for `partitions`; a partition without a
  // commit has offset RD_KAFKA_OFFSET_INVALID.
  std::vector<TopicPartitionOffset> group_offsets(const std::string& group,
                                                  const std::vector<TopicPartition>& partitions,
                                                  std::chrono::milliseconds timeout);
  // Sets the group's committed offsets. The broker refuses (UNKNOWN_MEMBER_ID) while the group
  // has members: stop the consumers first.
  void alter_group_offsets(const std::string& group, const std::vector<TopicPartitionOffset>& offsets,
                           std::chrono::milliseconds timeout);
  // For each partition, `offset` being a timestamp (ms since the epoch): the first offset whose
  // message timestamp is at or after it; the end offset when there is none.
  std::vector<TopicPartitionOffset> offsets_for_times(const std::vector<TopicPartitionOffset>& timestamps,
                                                      std::chrono::milliseconds timeout);
  // Deletes every record before `offset` of each partition (the new log start offset).
  void delete_records(const std::vector<TopicPartitionOffset>& before, std::chrono::milliseconds timeout);
  rd_kafka_t* raw() const noexcept { return handle_.get(); }

 private:
  HandlePtr handle_;
};

}  // namespace syncline::kafka
