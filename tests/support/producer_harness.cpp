// ProducerHarness: config file, child process, clean-up and a read_committed reader for producer tests.
#include "tests/support/producer_harness.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>

#include "common/http_client.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_test_binaries.hpp"

namespace syncline::test {

namespace {

// Whether a server could bind `port` on 127.0.0.1 now (a port in TIME_WAIT counts as free, as
// servers bind with SO_REUSEADDR).
bool can_bind(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return bound;
}

}  // namespace

// Not the kernel's way (bind to port 0): two of those in a row may return the same port, and the
// ephemeral range it draws from is also where every outgoing connection (Kafka, PostgreSQL clients)
// takes its local port, so the port could be taken again before the binary binds it. A CI run lost
// a test to the first (producer and projector handed one port). Ports 10000-14999 are below the
// ephemeral range and below every port of the local stacks, and none is handed out twice.
int free_port() {
  static std::mutex mutex;
  static std::set<int> given;
  static std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  const std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 2000; ++attempt) {
    const int port = std::uniform_int_distribution<int>(10000, 14999)(random);
    if (given.contains(port) || !can_bind(port)) continue;
    given.insert(port);
    return port;
  }
  throw std::runtime_error("no free TCP port left in 10000-14999 on 127.0.0.1");
}

int http_get_status(int port, const std::string& path) {
  try {
    http::ClientOptions options;
    options.connect_timeout = std::chrono::milliseconds(500);
    options.request_timeout = std::chrono::seconds(2);
    http::HttpClient client(options);
    return static_cast<int>(client.get(fmt::format("http://127.0.0.1:{}{}", port, path)).status);
  } catch (const std::exception&) {
    return 0;
  }
}

ProducerHarness::ProducerHarness(std::string_view name, std::string producer_yaml)
    : name_(unique_name(name)), http_port_(free_port()) {
  const auto& env = stack_env();
  write_db_ = std::make_unique<pg::PgConnection>(env.write_pg_dsn);
  write_db_->exec(fmt::format(
      "CREATE TABLE public.{} (id uuid PRIMARY KEY, aggregate_type text, aggregate_id text, event_type text, "
      "payload jsonb, occurred_at timestamptz NOT NULL DEFAULT now(), headers jsonb)",
      outbox_table()));
  producer_yaml_ = std::move(producer_yaml);
  config_path_ = write_config("", http_port_);
  process_ = std::make_unique<ChildProcess>(producer_binary(), std::vector<std::string>{"--config", config_path_},
                                            fmt::format("/tmp/{}.log", name_));
}

std::string producer_binary() {
  const char* other = std::getenv("SYNCLINE_TEST_PRODUCER_BIN");
  return other != nullptr && *other != '\0' ? std::string(other) : std::string(SYNCLINE_PRODUCER_BIN);
}

void ProducerHarness::reconfigure(std::string producer_yaml) {
  producer_yaml_ = std::move(producer_yaml);
  config_path_ = write_config("", http_port_);
}

ProducerHarness::~ProducerHarness() {
  process_.reset();  // SIGKILL if still running
  try {
    // A fresh connection: the test may have restarted the server under the old one.
    write_db_ = std::make_unique<pg::PgConnection>(stack_env().write_pg_dsn);
    // The walsender of a killed producer may hold the slot for a moment.
    (void)poll_until(
        [&] {
          return write_db_
                     ->exec("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active",
                            {pg::Param(name_)})
                     .get(0, 0) == "0";
        },
        std::chrono::seconds(30), "slot inactive");
    write_db_->exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    {pg::Param(name_)});
    write_db_->exec(fmt::format("DROP PUBLICATION IF EXISTS {}", name_));
    write_db_->exec(fmt::format("DROP TABLE IF EXISTS public.{}", outbox_table()));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "clean-up of " << name_ << " failed: " << e.what();
  }
  try {
    kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
    std::vector<std::string> ours;
    for (const auto& topic : admin.list_topics(std::chrono::seconds(10))) {
      if (topic.name.rfind(name_ + ".", 0) == 0) ours.push_back(topic.name);
    }
    if (!ours.empty()) admin.delete_topics(ours, std::chrono::seconds(30));
  } catch (const std::exception&) {
    // Topics of a unique prefix left behind harm no other test.
  }
  std::remove(config_path_.c_str());
  std::remove(fmt::format("/tmp/{}.twin.yaml", name_).c_str());
}

std::string ProducerHarness::event_topic(std::string_view aggregate_type) const {
  return fmt::format("{}.events.{}", name_, aggregate_type);
}
std::string ProducerHarness::row_topic(std::string_view schema, std::string_view table) const {
  return fmt::format("{}.{}.{}", name_, schema, table);
}
std::string ProducerHarness::dead_letter_topic() const { return name_ + ".dlq.producer"; }

void ProducerHarness::start() { process_->start(); }

std::string ProducerHarness::write_config(std::string_view suffix, int http_port) const {
  const auto& env = stack_env();
  const auto path = fmt::format("/tmp/{}{}.yaml", name_, suffix);
  std::ofstream config(path);
  config << fmt::format(
      "log:\n  level: info\nkafka:\n  bootstrap_servers: {}\n  topic_prefix: {}\nwrite_db:\n  dsn: {}\n"
      "producer:\n  http:\n    port: {}\n  slot: {}\n  publication: {}\n  outbox_table: public.{}\n  message_prefix: {}\n"
      "  heartbeat_interval_ms: 1000\n  status_interval_ms: 200\n  retry_max_backoff_ms: 2000\n{}",
      env.kafka_bootstrap, name_, env.write_pg_dsn, http_port, name_, name_, outbox_table(), message_prefix(),
      producer_yaml_);
  return path;
}

std::unique_ptr<ChildProcess> ProducerHarness::twin() const {
  // Same slot, topics and transactional.id; its own HTTP port, or it could not start at all.
  const auto path = write_config(".twin", free_port());
  return std::make_unique<ChildProcess>(producer_binary(), std::vector<std::string>{"--config", path},
                                        fmt::format("/tmp/{}.twin.log", name_));
}

long ProducerHarness::peak_rss_kib() const { return test::peak_rss_kib(process_->pid()); }

void ProducerHarness::kill() { (void)process_->stop(SIGKILL, std::chrono::seconds(10)); }

std::optional<int> ProducerHarness::stop() { return process_->stop(SIGTERM, std::chrono::seconds(60)); }

::testing::AssertionResult ProducerHarness::wait_ready(std::chrono::milliseconds deadline) {
  auto result = poll_until([&] { return !process_->running() || http_get_status(http_port_, "/readyz") == 200; },
                           deadline, "the producer to be ready (/readyz 200)");
  if (!process_->running()) {
    return ::testing::AssertionFailure() << "the producer exited; its log:\n" << process_->log_tail();
  }
  if (!result) result << "\nproducer log:\n" << process_->log_tail();
  return result;
}

std::vector<ConsumedRecord> ProducerHarness::read_committed(const std::vector<std::string>& topics,
                                                            std::size_t at_least, std::chrono::milliseconds deadline) {
  return read_committed_records(topics, at_least, deadline);
}

std::size_t ProducerHarness::consume_committed(const std::vector<std::string>& topics, std::size_t at_least,
                                               std::chrono::milliseconds deadline,
                                               const std::function<void(const ConsumedRecord&)>& on_record) {
  return consume_committed_records(topics, at_least, deadline, on_record);
}

std::vector<ConsumedRecord> read_committed_records(const std::vector<std::string>& topics, std::size_t at_least,
                                                   std::chrono::milliseconds deadline) {
  std::vector<ConsumedRecord> records;
  consume_committed_records(topics, at_least, deadline, [&](const ConsumedRecord& record) { records.push_back(record); });
  return records;
}

std::size_t consume_committed_records(const std::vector<std::string>& topics, std::size_t at_least,
                                      std::chrono::milliseconds deadline,
                                      const std::function<void(const ConsumedRecord&)>& on_record) {
  kafka::Properties properties{{"bootstrap.servers", stack_env().kafka_bootstrap},
                               {"group.id", unique_name("reader")},
                               {"enable.partition.eof", "false"}};
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  kafka::Consumer consumer(properties);
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(8));
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (const auto& topic : topics) {
    // The producer creates a domain-event topic with its first event: wait for it to exist.
    std::optional<kafka::TopicInfo> info;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (!poll_until([&] { return (info = admin.describe_topic(topic, std::chrono::seconds(10))).has_value(); },
                    left, "topic " + topic + " to exist")) {
      continue;  // nothing to read from it; the caller's count check reports the shortfall
    }
    for (const auto& partition : info->partitions) {
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition.id)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  rd_kafka_assign(consumer.raw(), list.get());
  std::size_t count = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto message = consumer.poll(std::chrono::milliseconds(200));
    if (!message) {
      if (count >= at_least) break;
      continue;
    }
    if (!message->ok()) continue;
    ConsumedRecord record;
    record.topic = message->topic();
    record.partition = message->partition();
    record.offset = message->offset();
    if (auto key = message->key()) record.key = std::string(*key);
    record.value = std::string(message->value());
    record.headers = message->headers();
    on_record(record);
    ++count;
  }
  consumer.close();
  return count;
}

}  // namespace syncline::test
