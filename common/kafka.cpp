// Kafka client wrappers over the librdkafka C API (see kafka.hpp).
#include "common/kafka.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "common/logging.hpp"

namespace syncline::kafka {

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("kafka"); }

int to_ms(std::chrono::milliseconds timeout) {
  return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(timeout.count(), -1, INT32_MAX));
}

std::string error_string(rd_kafka_resp_err_t code) { return rd_kafka_err2str(code); }

struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const noexcept { rd_kafka_event_destroy(event); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const noexcept { rd_kafka_AdminOptions_destroy(options); }
};
struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* headers) const noexcept { rd_kafka_headers_destroy(headers); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* metadata) const noexcept { rd_kafka_metadata_destroy(metadata); }
};
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

std::optional<std::string> fatal_error_of(rd_kafka_t* handle) {
  std::array<char, 512> reason{};
  const rd_kafka_resp_err_t code = rd_kafka_fatal_error(handle, reason.data(), reason.size());
  if (code == RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return error_string(code) + ": " + reason.data();
}

// librdkafka logs from its own threads; spdlog loggers are thread-safe.
void on_log(const rd_kafka_t* /*handle*/, int level, const char* facility, const char* text) {
  static constexpr std::array<spdlog::level::level_enum, 8> kSyslogToSpdlog{
      spdlog::level::critical, spdlog::level::critical, spdlog::level::critical, spdlog::level::err,
      spdlog::level::warn,     spdlog::level::info,     spdlog::level::info,     spdlog::level::debug};
  const auto spd_level = kSyslogToSpdlog[static_cast<std::size_t>(std::clamp(level, 0, 7))];
  logger()->log(spd_level, "librdkafka {}: {}", facility, redact_secrets(text));
}

void on_error(rd_kafka_t* handle, int code, const char* reason, void* /*opaque*/) {
  const auto error = static_cast<rd_kafka_resp_err_t>(code);
  if (error == RD_KAFKA_RESP_ERR__FATAL) {
    logger()->critical("fatal Kafka client error: {}", fatal_error_of(handle).value_or(reason));
  } else {
    // Most of these (broker down, transport) are retried by librdkafka itself.
    logger()->warn("Kafka client error ({}): {}", error_string(error), redact_secrets(reason));
  }
}

void install_common_callbacks(rd_kafka_conf_t* conf, void* opaque) {
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_opaque(conf, opaque);
}

Properties with_defaults(const Properties& defaults, const Properties& properties) {
  if (!properties.contains("bootstrap.servers")) throw KafkaConfigError("bootstrap.servers", "is required");
  Properties merged = defaults;
  for (const auto& [key, value] : properties) merged[key] = value;
  return merged;
}

HandlePtr create_handle(rd_kafka_type_t type, ConfPtr conf) {
  std::array<char, 512> errstr{};
  rd_kafka_t* handle = rd_kafka_new(type, conf.get(), errstr.data(), errstr.size());
  if (handle == nullptr)
    throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG,
                     std::string("cannot create Kafka client: ") + errstr.data());
  (void)conf.release();  // rd_kafka_new took ownership
  return HandlePtr(handle);
}

[[noreturn]] void throw_error(rd_kafka_t* handle, ErrorPtr error, std::string_view operation) {
  const rd_kafka_resp_err_t code = rd_kafka_error_code(error.get());
  std::string what = std::string(operation) + ": " + rd_kafka_error_string(error.get());
  if (rd_kafka_error_is_fatal(error.get()) != 0 || code == RD_KAFKA_RESP_ERR__FATAL) {
    throw FatalKafkaError(code, what + " (" + fatal_error_of(handle).value_or("fatal") + ")");
  }
  if (rd_kafka_error_txn_requires_abort(error.get()) != 0) throw TxnRequiresAbortError(code, what);
  if (rd_kafka_error_is_retriable(error.get()) != 0 || classify(code) == ErrorClass::retriable) {
    throw RetriableKafkaError(code, what);
  }
  throw KafkaError(code, what);
}

// The transactional API: librdkafka says to treat errors without the retriable or abortable
// flag as fatal.
void check_txn(rd_kafka_t* handle, rd_kafka_error_t* raw_error, std::string_view operation) {
  ErrorPtr error(raw_error);
  if (!error) return;
  const rd_kafka_resp_err_t code = rd_kafka_error_code(error.get());
  const std::string what = std::string(operation) + ": " + rd_kafka_error_string(error.get());
  switch (classify_txn_error(rd_kafka_error_is_fatal(error.get()) != 0,
                             rd_kafka_error_txn_requires_abort(error.get()) != 0,
                             rd_kafka_error_is_retriable(error.get()) != 0)) {
    case TxnErrorKind::retriable:
      throw RetriableKafkaError(code, what);
    case TxnErrorKind::requires_abort:
      throw TxnRequiresAbortError(code, what);
    case TxnErrorKind::fatal:
      throw FatalKafkaError(code, what + " (" + fatal_error_of(handle).value_or("fatal") + ")");
  }
}

void check(rd_kafka_resp_err_t code, std::string_view operation) {
  if (code != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw KafkaError(code, std::string(operation) + ": " + error_string(code));
}

PartitionListPtr to_list(const std::vector<TopicPartition>& partitions) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& tp : partitions)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
  return list;
}

PartitionListPtr to_list(const std::vector<TopicPartitionOffset>& offsets) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& tpo : offsets) {
    auto* elem = rd_kafka_topic_partition_list_add(list.get(), tpo.topic.c_str(), tpo.partition);
    elem->offset = tpo.offset;
    if (!tpo.metadata.empty()) {
      // librdkafka frees the metadata with the list, so it must come from malloc.
      elem->metadata = std::malloc(tpo.metadata.size());
      if (elem->metadata == nullptr) throw std::bad_alloc();
      std::memcpy(elem->metadata, tpo.metadata.data(), tpo.metadata.size());
      elem->metadata_size = tpo.metadata.size();
    }
  }
  return list;
}

std::vector<TopicPartition> partitions_of(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartition> result;
  for (int i = 0; list != nullptr && i < list->cnt; ++i)
    result.push_back({list->elems[i].topic, list->elems[i].partition});
  return result;
}

std::vector<TopicPartitionOffset> offsets_of(const rd_kafka_topic_partition_list_t* list) {
  std::vector<TopicPartitionOffset> result;
  for (int i = 0; list != nullptr && i < list->cnt; ++i) {
    const auto& elem = list->elems[i];
    std::string metadata;
    if (elem.metadata != nullptr && elem.metadata_size > 0)
      metadata.assign(static_cast<const char*>(elem.metadata), elem.metadata_size);
    result.push_back({elem.topic, elem.partition, elem.offset, std::move(metadata)});
  }
  return result;
}

// Operations on a partition list report per-partition failures in the list itself.
void check_partitions(const rd_kafka_topic_partition_list_t* list, std::string_view operation) {
  for (int i = 0; i < list->cnt; ++i) {
    const auto& elem = list->elems[i];
    if (elem.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw KafkaError(elem.err, std::string(operation) + " " + elem.topic + "[" +
                                     std::to_string(elem.partition) + "]: " + error_string(elem.err));
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view to_string(ErrorClass error_class) noexcept {
  switch (error_class) {
    case ErrorClass::none:
      return "none";
    case ErrorClass::retriable:
      return "retriable";
    case ErrorClass::permanent:
      return "permanent";
    case ErrorClass::fatal:
      return "fatal";
  }
  return "unknown";
}

ErrorClass classify(rd_kafka_resp_err_t error) noexcept {
  switch (error) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return ErrorClass::none;

    // Transient: the cluster, a leader, a coordinator or the network will come back.
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__WAIT_CACHE:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__RETRY:
    case RD_KAFKA_RESP_ERR__NODE_UPDATE:
    case RD_KAFKA_RESP_ERR__ISR_INSUFF:
    case RD_KAFKA_RESP_ERR__OUTDATED:
    case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
    case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:  // also seen while a new topic propagates
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
    case RD_KAFKA_RESP_ERR_LISTENER_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    case RD_KAFKA_RESP_ERR_REASSIGNMENT_IN_PROGRESS:
      return ErrorClass::retriable;

    // The client instance is unusable or misconfigured: fenced by a newer instance, not
    // authorised, incompatible broker, or a programming error. Retrying or dead-lettering
    // would hide the problem.
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_TRANSACTION_COORDINATOR_FENCED:
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
    case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_ID_MAPPING:
    case RD_KAFKA_RESP_ERR_INVALID_TXN_STATE:
    case RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR__NOT_CONFIGURED:
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE:
    case RD_KAFKA_RESP_ERR__FS:
      return ErrorClass::fatal;

    // Everything else is about this message or request (too large, invalid record, unknown
    // topic, bad offset, ...): retrying gives the same answer.
    default:
      return ErrorClass::permanent;
  }
}

TxnErrorKind classify_txn_error(bool is_fatal, bool txn_requires_abort, bool is_retriable) noexcept {
  if (is_fatal) return TxnErrorKind::fatal;
  if (txn_requires_abort) return TxnErrorKind::requires_abort;
  if (is_retriable) return TxnErrorKind::retriable;
  return TxnErrorKind::fatal;
}

KafkaError::KafkaError(rd_kafka_resp_err_t code, const std::string& what)
    : std::runtime_error(what), code_(code) {}

KafkaConfigError::KafkaConfigError(std::string property, const std::string& what)
    : KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, "Kafka property '" + property + "' " + what),
      property_(std::move(property)) {}

bool is_consumer_property(std::string_view key) noexcept {
  for (const std::string_view prefix : {"group.", "session.timeout", "heartbeat.", "auto.offset", "auto.commit",
                                        "enable.auto", "isolation.", "max.poll", "max.partition", "partition.assignment",
                                        "fetch.", "queued.", "enable.partition.eof", "check.crcs", "consume."}) {
    if (key.starts_with(prefix)) return true;
  }
  return false;
}

ConfPtr make_config(const Properties& properties) {
  ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [key, value] : properties) {
    std::array<char, 512> errstr{};
    // The value is left out of the error: it may be a password.
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr.data(), errstr.size()) !=
        RD_KAFKA_CONF_OK) {
      throw KafkaConfigError(key, std::string("is invalid: ") + errstr.data());
    }
  }
  return conf;
}

// ---------------------------------------------------------------------------------------------
// Message

std::string Message::error_message() const {
  if (ok()) return {};
  return rd_kafka_message_errstr(message_.get());
}

std::string Message::topic() const {
  return message_->rkt != nullptr ? rd_kafka_topic_name(message_->rkt) : std::string();
}

std::optional<std::string_view> Message::key() const noexcept {
  if (message_->key == nullptr) return std::nullopt;
  return std::string_view(static_cast<const char*>(message_->key), message_->key_len);
}

std::string_view Message::value() const noexcept {
  if (message_->payload == nullptr) return {};
  return {static_cast<const char*>(message_->payload), message_->len};
}

std::vector<Header> Message::headers() const {
  std::vector<Header> result;
  rd_kafka_headers_t* headers = nullptr;  // owned by the message
  if (rd_kafka_message_headers(message_.get(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return result;
  const char* name = nullptr;
  const void* value = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0;
       rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    result.push_back(
        {name, value != nullptr ? std::string(static_cast<const char*>(value), size) : std::string()});
  }
  return result;
}

std::optional<std::string> Message::header(std::string_view key) const {
  std::optional<std::string> found;
  for (auto& header : headers()) {
    if (header.key == key) found = std::move(header.value);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Producer

Producer::Producer(const Properties& properties, DeliveryCallback on_delivery)
    : Producer(properties, std::move(on_delivery), false) {}

Producer::Producer(const Properties& properties, DeliveryCallback on_delivery, bool transactional)
    : on_delivery_(std::move(on_delivery)) {
  if (transactional && !properties.contains("transactional.id")) {
    throw KafkaConfigError("transactional.id", "is required for a transactional producer");
  }
  ConfPtr conf = make_config(with_defaults({{"enable.idempotence", "true"}}, properties));
  install_common_callbacks(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery_report);
  handle_ = create_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

Producer::~Producer() {
  if (!handle_) return;
  if (rd_kafka_flush(handle_.get(), to_ms(flush_on_destroy_)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    logger()->warn("destroying a Kafka producer with {} message(s) not acknowledged",
                   rd_kafka_outq_len(handle_.get()));
  }
}

void Producer::on_delivery_report(rd_kafka_t* /*handle*/, const rd_kafka_message_t* message, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  // Called for every message: a success nobody listens to needs no report built.
  if (!self->on_delivery_ && message->err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  DeliveryReport report;
  report.topic = message->rkt != nullptr ? rd_kafka_topic_name(message->rkt) : "";
  report.partition = message->partition;
  report.offset = message->offset;
  report.error = message->err;
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) report.error_message = error_string(message->err);
  report.tag = reinterpret_cast<std::uintptr_t>(message->_private);
  if (!report.ok()) logger()->warn("delivery to {} failed: {}", report.topic, report.error_message);
  if (!self->on_delivery_) return;
  try {
    self->on_delivery_(report);
  } catch (const std::exception& e) {
    // An exception must not unwind through librdkafka's C frames.
    logger()->error("delivery callback threw: {}", e.what());
  }
}

void Producer::produce(const OutgoingMessage& message, std::chrono::milliseconds queue_full_timeout) {
  HeadersPtr headers;
  if (!message.headers.empty()) {
    headers.reset(rd_kafka_headers_new(message.headers.size()));
    for (const auto& header : message.headers) {
      rd_kafka_header_add(headers.get(), header.key.data(), static_cast<ssize_t>(header.key.size()),
                          header.value.data(), static_cast<ssize_t>(header.value.size()));
    }
  }
  // At most topic, partition, value, key, flags, opaque, headers: no allocation per message.
  std::array<rd_kafka_vu_t, 7> args{};
  std::size_t arg_count = 0;
  auto add = [&args, &arg_count](rd_kafka_vtype_t type) -> rd_kafka_vu_t& {
    auto& arg = args.at(arg_count++);
    arg.vtype = type;
    return arg;
  };
  add(RD_KAFKA_VTYPE_TOPIC).u.cstr = message.topic.c_str();
  add(RD_KAFKA_VTYPE_PARTITION).u.i32 = message.partition;
  auto& value = add(RD_KAFKA_VTYPE_VALUE).u.mem;
  value.ptr = const_cast<char*>(message.value.data());  // copied: RD_KAFKA_MSG_F_COPY
  value.size = message.value.size();
  if (message.key) {
    auto& key = add(RD_KAFKA_VTYPE_KEY).u.mem;
    key.ptr = const_cast<char*>(message.key->data());
    key.size = message.key->size();
  }
  add(RD_KAFKA_VTYPE_MSGFLAGS).u.i = RD_KAFKA_MSG_F_COPY;
  // The tag travels as the message opaque, so correlating needs no allocation per message.
  add(RD_KAFKA_VTYPE_OPAQUE).u.ptr =
      reinterpret_cast<void*>(static_cast<std::uintptr_t>(message.tag));  // NOLINT(performance-no-int-to-ptr)
  if (headers) add(RD_KAFKA_VTYPE_HEADERS).u.headers = headers.get();

  const auto deadline = std::chrono::steady_clock::now() + queue_full_timeout;
  while (true) {
    ErrorPtr error(rd_kafka_produceva(handle_.get(), args.data(), arg_count));
    if (!error) {
      (void)headers.release();  // librdkafka owns them now
      return;
    }
    if (rd_kafka_error_code(error.get()) != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
        std::chrono::steady_clock::now() >= deadline) {
      throw_error(handle_.get(), std::move(error), "produce to " + message.topic);
    }
    // The queue drains only as delivery reports are served.
    rd_kafka_poll(handle_.get(), 100);
  }
}

bool Producer::load_topic_metadata(const std::string& topic, std::chrono::milliseconds timeout) {
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> handle(
      rd_kafka_topic_new(handle_.get(), topic.c_str(), nullptr), &rd_kafka_topic_destroy);
  if (!handle) return false;
  const rd_kafka_metadata_t* metadata = nullptr;
  const auto error = rd_kafka_metadata(handle_.get(), 0, handle.get(), &metadata, to_ms(timeout));
  if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
  return error == RD_KAFKA_RESP_ERR_NO_ERROR;
}

int Producer::poll(std::chrono::milliseconds timeout) { return rd_kafka_poll(handle_.get(), to_ms(timeout)); }

bool Producer::flush(std::chrono::milliseconds timeout) {
  return rd_kafka_flush(handle_.get(), to_ms(timeout)) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

int Producer::in_flight() const { return rd_kafka_outq_len(handle_.get()); }

std::optional<std::string> Producer::fatal_error() const { return fatal_error_of(handle_.get()); }

// ---------------------------------------------------------------------------------------------
// TransactionalProducer

TransactionalProducer::TransactionalProducer(const Properties& properties, DeliveryCallback on_delivery)
    : Producer(properties, std::move(on_delivery), true) {}

void TransactionalProducer::init_transactions(std::chrono::milliseconds timeout) {
  check_txn(raw(), rd_kafka_init_transactions(raw(), to_ms(timeout)), "init_transactions");
}

void TransactionalProducer::begin_transaction() {
  check_txn(raw(), rd_kafka_begin_transaction(raw()), "begin_transaction");
}

void TransactionalProducer::commit_transaction(std::chrono::milliseconds timeout) {
  check_txn(raw(), rd_kafka_commit_transaction(raw(), to_ms(timeout)), "commit_transaction");
}

void TransactionalProducer::abort_transaction(std::chrono::milliseconds timeout) {
  check_txn(raw(), rd_kafka_abort_transaction(raw(), to_ms(timeout)), "abort_transaction");
}

void TransactionalProducer::send_offsets_to_transaction(const std::vector<TopicPartitionOffset>& offsets,
                                                        const rd_kafka_consumer_group_metadata_t& group,
                                                        std::chrono::milliseconds timeout) {
  const PartitionListPtr list = to_list(offsets);
  check_txn(raw(), rd_kafka_send_offsets_to_transaction(raw(), list.get(), &group, to_ms(timeout)),
            "send_offsets_to_transaction");
}

// ---------------------------------------------------------------------------------------------
// Consumer

namespace {

void on_offset_commit(rd_kafka_t* /*handle*/, rd_kafka_resp_err_t error,
                      rd_kafka_topic_partition_list_t* offsets, void* /*opaque*/) {
  // Only async commits end up here unnoticed; sync ones throw to the caller.
  if (error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    logger()->warn("offset commit of {} partition(s) failed: {}", offsets != nullptr ? offsets->cnt : 0,
                   error_string(error));
  }
}

}  // namespace

Consumer::Consumer(const Properties& properties, RebalanceHooks hooks) : hooks_(std::move(hooks)) {
  if (!properties.contains("group.id")) throw KafkaConfigError("group.id", "is required for a consumer");
  // earliest: a new group must see the whole log (replays start from the beginning).
  ConfPtr conf = make_config(with_defaults({{"isolation.level", "read_committed"},
                                            {"partition.assignment.strategy", "cooperative-sticky"},
                                            {"enable.auto.commit", "false"},
                                            {"enable.auto.offset.store", "false"},
                                            {"auto.offset.reset", "earliest"}},
                                           properties));
  install_common_callbacks(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Consumer::on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf.get(), on_offset_commit);
  handle_ = create_handle(RD_KAFKA_CONSUMER, std::move(conf));
  rd_kafka_poll_set_consumer(handle_.get());
}

Consumer::~Consumer() {
  try {
    close();
  } catch (const std::exception& e) {
    logger()->warn("closing the Kafka consumer failed: {}", e.what());
  }
  // A close that ran out of time must not be retried (without a bound) by rd_kafka_destroy.
  if (close_abandoned_) rd_kafka_destroy_flags(handle_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

void Consumer::on_rebalance(rd_kafka_t* /*handle*/, rd_kafka_resp_err_t error,
                            rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  static_cast<Consumer*>(opaque)->handle_rebalance(error, partitions);
}

void Consumer::handle_rebalance(rd_kafka_resp_err_t error, rd_kafka_topic_partition_list_t* partitions) {
  rd_kafka_t* handle = handle_.get();
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE";
  ErrorPtr assign_error;
  rd_kafka_resp_err_t assign_code = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (error == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    bool hook_failed = false;
    if (hooks_.on_assign) {
      // Exceptions must not unwind through librdkafka; poll() rethrows them.
      try {
        for (const auto& start : hooks_.on_assign(partitions_of(partitions))) {
          if (auto* elem =
                  rd_kafka_topic_partition_list_find(partitions, start.topic.c_str(), start.partition)) {
            elem->offset = start.offset;
          }
        }
      } catch (...) {
        hook_failure_ = std::current_exception();
        hook_failed = true;
      }
    }
    logger()->info("assigned {} partition(s)", partitions->cnt);
    if (cooperative) {
      assign_error.reset(rd_kafka_incremental_assign(handle, partitions));
    } else {
      assign_code = rd_kafka_assign(handle, partitions);
    }
    // Without its start offsets a partition must not be read from the committed offset.
    if (hook_failed) {
      rd_kafka_pause_partitions(handle, partitions);
    } else {
      // librdkafka keeps a partition's pause flag across revocation and re-assignment: one paused
      // for a retry, lost with the session (broker down) and assigned again after the retry
      // ended would never be fetched again. A new assignment starts unpaused, as in the Java
      // client; a retry loop that is still waiting pauses it again.
      rd_kafka_resume_partitions(handle, partitions);
    }
  } else if (error == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    const bool lost = rd_kafka_assignment_lost(handle) != 0;
    if (hooks_.on_revoke) {
      try {
        hooks_.on_revoke(partitions_of(partitions), lost);
      } catch (...) {
        hook_failure_ = std::current_exception();
      }
    }
    logger()->info("{} {} partition(s)", lost ? "lost" : "revoked", partitions->cnt);
    if (cooperative) {
      assign_error.reset(rd_kafka_incremental_unassign(handle, partitions));
    } else {
      assign_code = rd_kafka_assign(handle, nullptr);
    }
  } else {
    logger()->error("rebalance failed: {}", error_string(error));
    assign_code = rd_kafka_assign(handle, nullptr);
  }
  if (assign_error)
    logger()->error("partition (un)assignment failed: {}", rd_kafka_error_string(assign_error.get()));
  if (assign_code != RD_KAFKA_RESP_ERR_NO_ERROR) {
    logger()->error("partition (un)assignment failed: {}", error_string(assign_code));
  }
}

void Consumer::subscribe(const std::vector<std::string>& topics) {
  PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& topic : topics)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), kAnyPartition);
  check(rd_kafka_subscribe(handle_.get(), list.get()), "subscribe");
}

std::optional<Message> Consumer::poll(std::chrono::milliseconds timeout) {
  MessagePtr message(rd_kafka_consumer_poll(handle_.get(), to_ms(timeout)));
  if (hook_failure_) std::rethrow_exception(std::exchange(hook_failure_, nullptr));
  if (!message) return std::nullopt;
  if (message->err == RD_KAFKA_RESP_ERR__FATAL) {
    throw FatalKafkaError(message->err, "consumer: " + fatal_error_of(handle_.get()).value_or("fatal error"));
  }
  return Message(std::move(message));
}

void Consumer::assign(const std::vector<TopicPartitionOffset>& partitions) {
  const PartitionListPtr list = to_list(partitions);
  check(rd_kafka_assign(handle_.get(), list.get()), "assign partitions");
}

void Consumer::commit(const std::vector<TopicPartitionOffset>& offsets, CommitMode mode,
                      std::chrono::milliseconds timeout) {
  if (offsets.empty()) return;
  const PartitionListPtr list = to_list(offsets);
  if (mode == CommitMode::async) {
    check(rd_kafka_commit(handle_.get(), list.get(), 1), "commit offsets");
    return;
  }
  // rd_kafka_commit(sync) waits for the coordinator without a bound (tens of seconds with an
  // unreachable broker); a private queue lets us give up at our own deadline.
  const QueuePtr queue(rd_kafka_queue_new(handle_.get()));
  check(rd_kafka_commit_queue(handle_.get(), list.get(), queue.get(), nullptr, nullptr), "commit offsets");
  const EventPtr event(rd_kafka_queue_poll(queue.get(), to_ms(timeout)));
  if (!event) {
    throw RetriableKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT,
                              "commit offsets: no answer within " + std::to_string(timeout.count()) + " ms");
  }
  check(rd_kafka_event_error(event.get()), "commit offsets");
  if (const auto* result = rd_kafka_event_topic_partition_list(event.get()))
    check_partitions(result, "commit offset of");
}

void Consumer::commit(const Message& message, CommitMode mode, std::chrono::milliseconds timeout) {
  commit({{message.topic(), message.partition(), message.offset() + 1}}, mode, timeout);
}

std::vector<TopicPartitionOffset> Consumer::committed(const std::vector<TopicPartition>& partitions,
                                                      std::chrono::milliseconds timeout) {
  const PartitionListPtr list = to_list(partitions);
  check(rd_kafka_committed(handle_.get(), list.get(), to_ms(timeout)), "read committed offsets");
  return offsets_of(list.get());
}

void Consumer::seek(const std::vector<TopicPartitionOffset>& offsets, std::chrono::milliseconds timeout) {
  const PartitionListPtr list = to_list(offsets);
  if (ErrorPtr error{rd_kafka_seek_partitions(handle_.get(), list.get(), to_ms(timeout))}) {
    throw_error(handle_.get(), std::move(error), "seek");
  }
  check_partitions(list.get(), "seek");
}

void Consumer::pause(const std::vector<TopicPartition>& partitions) {
  const PartitionListPtr list = to_list(partitions);
  check(rd_kafka_pause_partitions(handle_.get(), list.get()), "pause");
  check_partitions(list.get(), "pause");
}

void Consumer::resume(const std::vector<TopicPartition>& partitions) {
  const PartitionListPtr list = to_list(partitions);
  check(rd_kafka_resume_partitions(handle_.get(), list.get()), "resume");
  check_partitions(list.get(), "resume");
}

std::vector<TopicPartition> Consumer::assignment() const {
  rd_kafka_topic_partition_list_t* raw_list = nullptr;
  check(rd_kafka_assignment(handle_.get(), &raw_list), "read assignment");
  const PartitionListPtr list(raw_list);
  return partitions_of(list.get());
}

std::vector<TopicPartitionOffset> Consumer::position(const std::vector<TopicPartition>& partitions) const {
  const PartitionListPtr list = to_list(partitions);
  check(rd_kafka_position(handle_.get(), list.get()), "read positions");
  return offsets_of(list.get());
}

std::optional<WatermarkOffsets> Consumer::cached_watermarks(const TopicPartition& partition) const {
  WatermarkOffsets offsets;
  if (rd_kafka_get_watermark_offsets(handle_.get(), partition.topic.c_str(), partition.partition, &offsets.low,
                                     &offsets.high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      offsets.high < 0) {
    return std::nullopt;
  }
  return offsets;
}

WatermarkOffsets Consumer::query_watermarks(const TopicPartition& partition, std::chrono::milliseconds timeout) const {
  WatermarkOffsets offsets;
  check(rd_kafka_query_watermark_offsets(handle_.get(), partition.topic.c_str(), partition.partition, &offsets.low,
                                         &offsets.high, to_ms(timeout)),
        "query watermark offsets of " + partition.topic);
  return offsets;
}

GroupMetadataPtr Consumer::group_metadata() const {
  return GroupMetadataPtr(rd_kafka_consumer_group_metadata(handle_.get()));
}

void Consumer::close(std::chrono::milliseconds timeout) {
  if (closed_ || !handle_) return;
  closed_ = true;
  // rd_kafka_consumer_close() has no bound (it waits for in-flight commits, tens of seconds with
  // an unreachable broker); the queue variant lets us give up at a deadline.
  const QueuePtr queue(rd_kafka_queue_new(handle_.get()));
  if (ErrorPtr error{rd_kafka_consumer_close_queue(handle_.get(), queue.get())}) {
    throw_error(handle_.get(), std::move(error), "close consumer");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (rd_kafka_consumer_closed(handle_.get()) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      close_abandoned_ = true;
      throw RetriableKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, "close consumer: not closed within " +
                                                                  std::to_string(timeout.count()) + " ms");
    }
    // The event API, not rd_kafka_queue_poll_callback(): records still fetched during the close
    // would reach callback serving as "pass" ops, which librdkafka asserts never happens.
    const EventPtr event(rd_kafka_queue_poll(queue.get(), 100));
    if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
      // The final revoke, through the hooks like any other.
      handle_rebalance(rd_kafka_event_error(event.get()), rd_kafka_event_topic_partition_list(event.get()));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AdminClient

namespace {

// Runs one admin request on a private queue and returns its result event, or throws.
EventPtr await_admin_result(rd_kafka_queue_t* queue, std::chrono::milliseconds timeout,
                            std::string_view operation) {
  // The request times out by itself after `timeout`; the extra second lets that answer arrive.
  EventPtr event(rd_kafka_queue_poll(queue, to_ms(timeout + std::chrono::seconds(1))));
  if (!event) throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, std::string(operation) + ": timed out");
  if (const rd_kafka_resp_err_t code = rd_kafka_event_error(event.get());
      code != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw KafkaError(code, std::string(operation) + ": " + rd_kafka_event_error_string(event.get()));
  }
  return event;
}

AdminOptionsPtr admin_options(rd_kafka_t* handle, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout) {
  AdminOptionsPtr options(rd_kafka_AdminOptions_new(handle, op));
  std::array<char, 256> errstr{};
  rd_kafka_AdminOptions_set_request_timeout(options.get(), to_ms(timeout), errstr.data(), errstr.size());
  if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS) {
    // Wait for the controller to apply the change, not just to accept the request.
    rd_kafka_AdminOptions_set_operation_timeout(options.get(), to_ms(timeout), errstr.data(), errstr.size());
  }
  return options;
}

// One admin request: its private result queue and its options.
struct AdminCall {
  AdminCall(rd_kafka_t* handle, rd_kafka_admin_op_t op, std::chrono::milliseconds request_timeout)
      : queue(rd_kafka_queue_new(handle)),
        options(admin_options(handle, op, request_timeout)),
        timeout(request_timeout) {}
  EventPtr result(std::string_view operation) const {
    return await_admin_result(queue.get(), timeout, operation);
  }

  QueuePtr queue;
  AdminOptionsPtr options;
  std::chrono::milliseconds timeout;
};

// Both CreateTopics and DeleteTopics answer with per-topic results.
std::vector<std::string> check_topic_results(const rd_kafka_topic_result_t** results, std::size_t count,
                                             rd_kafka_resp_err_t tolerated, std::string_view operation) {
  std::vector<std::string> done;
  for (std::size_t i = 0; i < count; ++i) {
    const rd_kafka_resp_err_t code = rd_kafka_topic_result_error(results[i]);
    const std::string name = rd_kafka_topic_result_name(results[i]);
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
      done.push_back(name);
    } else if (code != tolerated) {
      const char* message = rd_kafka_topic_result_error_string(results[i]);
      throw KafkaError(code, std::string(operation) + " " + name + ": " +
                                 (message != nullptr ? message : error_string(code)));
    }
  }
  return done;
}

MetadataPtr all_metadata(rd_kafka_t* handle, std::chrono::milliseconds timeout) {
  // All topics, never one by name: asking for an unknown topic may auto-create it.
  const rd_kafka_metadata_t* metadata = nullptr;
  check(rd_kafka_metadata(handle, 1, nullptr, &metadata, to_ms(timeout)), "read cluster metadata");
  return MetadataPtr(metadata);
}

TopicInfo topic_info(const rd_kafka_metadata_topic_t& topic) {
  TopicInfo info{topic.topic, {}};
  for (int p = 0; p < topic.partition_cnt; ++p) {
    const auto& partition = topic.partitions[p];
    info.partitions.push_back(
        {partition.id, partition.leader,
         std::vector<std::int32_t>(partition.replicas, partition.replicas + partition.replica_cnt)});
  }
  std::sort(info.partitions.begin(), info.partitions.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return info;
}

}  // namespace

AdminClient::AdminClient(const Properties& properties) {
  ConfPtr conf = make_config(with_defaults({}, properties));
  install_common_callbacks(conf.get(), nullptr);
  handle_ = create_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

std::vector<std::string> AdminClient::create_topics(const std::vector<NewTopic>& topics,
                                                    std::chrono::milliseconds timeout) {
  struct NewTopicDeleter {
    void operator()(rd_kafka_NewTopic_t* topic) const noexcept { rd_kafka_NewTopic_destroy(topic); }
  };
  std::vector<std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>> owned;
  std::vector<rd_kafka_NewTopic_t*> requests;
  for (const auto& topic : topics) {
    std::array<char, 512> errstr{};
    owned.emplace_back(rd_kafka_NewTopic_new(topic.name.c_str(), topic.partitions, topic.replication_factor,
                                             errstr.data(), errstr.size()));
    if (!owned.back())
      throw KafkaError(RD_KAFKA_RESP_ERR__INVALID_ARG, "topic " + topic.name + ": " + errstr.data());
    for (const auto& [key, value] : topic.config) {
      check(rd_kafka_NewTopic_set_config(owned.back().get(), key.c_str(), value.c_str()),
            "topic " + topic.name + " config " + key);
    }
    requests.push_back(owned.back().get());
  }
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout);
  rd_kafka_CreateTopics(handle_.get(), requests.data(), requests.size(), admin_call.options.get(),
                        admin_call.queue.get());
  const EventPtr event = admin_call.result("create topics");
  std::size_t count = 0;
  const auto** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  auto created = check_topic_results(results, count, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, "create topic");
  logger()->info("created {} of {} topic(s)", created.size(), topics.size());
  // The controller has answered, but brokers learn about new topics a little later (KRaft);
  // wait until every partition has a leader so callers can use the topics at once.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& name : created) {
    while (true) {
      const auto info = describe_topic(name, timeout);
      if (info && !info->partitions.empty() &&
          std::all_of(info->partitions.begin(), info->partitions.end(),
                      [](const auto& p) { return p.leader >= 0; })) {
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, "created topic " + name + " has no leader yet");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return created;
}

void AdminClient::delete_topics(const std::vector<std::string>& names, std::chrono::milliseconds timeout) {
  struct DeleteTopicDeleter {
    void operator()(rd_kafka_DeleteTopic_t* topic) const noexcept { rd_kafka_DeleteTopic_destroy(topic); }
  };
  std::vector<std::unique_ptr<rd_kafka_DeleteTopic_t, DeleteTopicDeleter>> owned;
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  for (const auto& name : names) {
    owned.emplace_back(rd_kafka_DeleteTopic_new(name.c_str()));
    requests.push_back(owned.back().get());
  }
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout);
  rd_kafka_DeleteTopics(handle_.get(), requests.data(), requests.size(), admin_call.options.get(),
                        admin_call.queue.get());
  const EventPtr event = admin_call.result("delete topics");
  std::size_t count = 0;
  const auto** results =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event.get()), &count);
  check_topic_results(results, count, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, "delete topic");
}

std::vector<TopicInfo> AdminClient::list_topics(std::chrono::milliseconds timeout) {
  const MetadataPtr metadata = all_metadata(handle_.get(), timeout);
  std::vector<TopicInfo> topics;
  for (int t = 0; t < metadata->topic_cnt; ++t) {
    const auto& topic = metadata->topics[t];
    if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR || std::string_view(topic.topic).starts_with("__")) continue;
    topics.push_back(topic_info(topic));
  }
  std::sort(topics.begin(), topics.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return topics;
}

std::optional<TopicInfo> AdminClient::describe_topic(const std::string& name,
                                                     std::chrono::milliseconds timeout) {
  const MetadataPtr metadata = all_metadata(handle_.get(), timeout);
  for (int t = 0; t < metadata->topic_cnt; ++t) {
    const auto& topic = metadata->topics[t];
    if (name != topic.topic) continue;
    if (topic.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return std::nullopt;
    check(topic.err, "describe topic " + name);
    return topic_info(topic);
  }
  return std::nullopt;
}

std::map<std::string, std::string> AdminClient::topic_config(const std::string& name,
                                                             std::chrono::milliseconds timeout) {
  struct ResourceDeleter {
    void operator()(rd_kafka_ConfigResource_t* resource) const noexcept {
      rd_kafka_ConfigResource_destroy(resource);
    }
  };
  std::unique_ptr<rd_kafka_ConfigResource_t, ResourceDeleter> resource(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name.c_str()));
  std::array<rd_kafka_ConfigResource_t*, 1> requests{resource.get()};
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout);
  rd_kafka_DescribeConfigs(handle_.get(), requests.data(), requests.size(), admin_call.options.get(),
                           admin_call.queue.get());
  const EventPtr event = admin_call.result("describe config of " + name);
  std::size_t count = 0;
  const auto** results =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event.get()), &count);
  std::map<std::string, std::string> config;
  for (std::size_t i = 0; i < count; ++i) {
    check(rd_kafka_ConfigResource_error(results[i]), "describe config of " + name);
    std::size_t entry_count = 0;
    const auto** entries = rd_kafka_ConfigResource_configs(results[i], &entry_count);
    for (std::size_t e = 0; e < entry_count; ++e) {
      const char* value = rd_kafka_ConfigEntry_value(entries[e]);
      config[rd_kafka_ConfigEntry_name(entries[e])] = value != nullptr ? value : "";
    }
  }
  return config;
}

WatermarkOffsets AdminClient::watermark_offsets(const std::string& topic, std::int32_t partition,
                                                std::chrono::milliseconds timeout) {
  WatermarkOffsets offsets;
  check(rd_kafka_query_watermark_offsets(handle_.get(), topic.c_str(), partition, &offsets.low, &offsets.high,
                                         to_ms(timeout)),
        "query watermark offsets of " + topic);
  return offsets;
}

namespace {

// ListConsumerGroupOffsets and AlterConsumerGroupOffsets answer with one group result.
std::vector<TopicPartitionOffset> group_result_offsets(const rd_kafka_group_result_t** groups, std::size_t count,
                                                       const std::string& operation) {
  if (count != 1) throw KafkaError(RD_KAFKA_RESP_ERR__BAD_MSG, operation + ": no group in the answer");
  if (const rd_kafka_error_t* error = rd_kafka_group_result_error(groups[0])) {
    throw KafkaError(rd_kafka_error_code(error), operation + ": " + rd_kafka_error_string(error));
  }
  const auto* partitions = rd_kafka_group_result_partitions(groups[0]);
  if (partitions != nullptr) check_partitions(partitions, operation);
  return offsets_of(partitions);
}

}  // namespace

std::optional<GroupDescription> AdminClient::describe_group(const std::string& group,
                                                            std::chrono::milliseconds timeout) {
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout);
  std::array<const char*, 1> groups{group.c_str()};
  rd_kafka_DescribeConsumerGroups(handle_.get(), groups.data(), groups.size(), admin_call.options.get(),
                                  admin_call.queue.get());
  const EventPtr event = admin_call.result("describe group " + group);
  std::size_t count = 0;
  const auto** results = rd_kafka_DescribeConsumerGroups_result_groups(
      rd_kafka_event_DescribeConsumerGroups_result(event.get()), &count);
  if (count != 1) throw KafkaError(RD_KAFKA_RESP_ERR__BAD_MSG, "describe group " + group + ": no group in the answer");
  if (const rd_kafka_error_t* error = rd_kafka_ConsumerGroupDescription_error(results[0])) {
    if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) return std::nullopt;
    throw KafkaError(rd_kafka_error_code(error), "describe group " + group + ": " + rd_kafka_error_string(error));
  }
  const auto state = rd_kafka_ConsumerGroupDescription_state(results[0]);
  if (state == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) return std::nullopt;
  GroupDescription description{rd_kafka_consumer_group_state_name(state), {}};
  for (std::size_t m = 0; m < rd_kafka_ConsumerGroupDescription_member_count(results[0]); ++m) {
    const auto* member = rd_kafka_ConsumerGroupDescription_member(results[0], m);
    GroupMember entry{rd_kafka_MemberDescription_consumer_id(member),
                      rd_kafka_MemberDescription_client_id(member), rd_kafka_MemberDescription_host(member), {}};
    if (const auto* assignment = rd_kafka_MemberDescription_assignment(member))
      entry.assignment = partitions_of(rd_kafka_MemberAssignment_partitions(assignment));
    description.members.push_back(std::move(entry));
  }
  return description;
}

std::vector<TopicPartitionOffset> AdminClient::group_offsets(const std::string& group,
                                                             const std::vector<TopicPartition>& partitions,
                                                             std::chrono::milliseconds timeout) {
  if (partitions.empty()) return {};
  struct RequestDeleter {
    void operator()(rd_kafka_ListConsumerGroupOffsets_t* request) const noexcept {
      rd_kafka_ListConsumerGroupOffsets_destroy(request);
    }
  };
  const PartitionListPtr list = to_list(partitions);
  std::unique_ptr<rd_kafka_ListConsumerGroupOffsets_t, RequestDeleter> request(
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list.get()));
  std::array<rd_kafka_ListConsumerGroupOffsets_t*, 1> requests{request.get()};
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout);
  rd_kafka_ListConsumerGroupOffsets(handle_.get(), requests.data(), requests.size(), admin_call.options.get(),
                                    admin_call.queue.get());
  const std::string operation = "read committed offsets of group " + group;
  const EventPtr event = admin_call.result(operation);
  std::size_t count = 0;
  const auto** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(event.get()), &count);
  return group_result_offsets(groups, count, operation);
}

void AdminClient::alter_group_offsets(const std::string& group, const std::vector<TopicPartitionOffset>& offsets,
                                      std::chrono::milliseconds timeout) {
  if (offsets.empty()) return;
  struct RequestDeleter {
    void operator()(rd_kafka_AlterConsumerGroupOffsets_t* request) const noexcept {
      rd_kafka_AlterConsumerGroupOffsets_destroy(request);
    }
  };
  const PartitionListPtr list = to_list(offsets);
  std::unique_ptr<rd_kafka_AlterConsumerGroupOffsets_t, RequestDeleter> request(
      rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), list.get()));
  std::array<rd_kafka_AlterConsumerGroupOffsets_t*, 1> requests{request.get()};
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, timeout);
  rd_kafka_AlterConsumerGroupOffsets(handle_.get(), requests.data(), requests.size(), admin_call.options.get(),
                                     admin_call.queue.get());
  const std::string operation = "set committed offsets of group " + group;
  const EventPtr event = admin_call.result(operation);
  std::size_t count = 0;
  const auto** groups = rd_kafka_AlterConsumerGroupOffsets_result_groups(
      rd_kafka_event_AlterConsumerGroupOffsets_result(event.get()), &count);
  group_result_offsets(groups, count, operation);
}

std::vector<TopicPartitionOffset> AdminClient::offsets_for_times(const std::vector<TopicPartitionOffset>& timestamps,
                                                                 std::chrono::milliseconds timeout) {
  if (timestamps.empty()) return {};
  const PartitionListPtr list = to_list(timestamps);
  check(rd_kafka_offsets_for_times(handle_.get(), list.get(), to_ms(timeout)), "look up offsets for times");
  check_partitions(list.get(), "look up offset for time of");
  auto offsets = offsets_of(list.get());
  for (auto& offset : offsets) {
    // No message at or after the time: the partition's end.
    if (offset.offset == RD_KAFKA_OFFSET_END || offset.offset < 0)
      offset.offset = watermark_offsets(offset.topic, offset.partition, timeout).high;
  }
  return offsets;
}

void AdminClient::delete_records(const std::vector<TopicPartitionOffset>& before, std::chrono::milliseconds timeout) {
  if (before.empty()) return;
  struct RequestDeleter {
    void operator()(rd_kafka_DeleteRecords_t* request) const noexcept { rd_kafka_DeleteRecords_destroy(request); }
  };
  const PartitionListPtr list = to_list(before);
  std::unique_ptr<rd_kafka_DeleteRecords_t, RequestDeleter> request(rd_kafka_DeleteRecords_new(list.get()));
  std::array<rd_kafka_DeleteRecords_t*, 1> requests{request.get()};
  const AdminCall admin_call(handle_.get(), RD_KAFKA_ADMIN_OP_DELETERECORDS, timeout);
  rd_kafka_DeleteRecords(handle_.get(), requests.data(), requests.size(), admin_call.options.get(),
                         admin_call.queue.get());
  const EventPtr event = admin_call.result("delete records");
  if (const auto* offsets = rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(event.get())))
    check_partitions(offsets, "delete records of");
}

}  // namespace syncline::kafka
