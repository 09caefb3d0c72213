// PgProjectorHarness and EventPublisher (see pg_projector_harness.hpp).
#include "tests/support/pg_projector_harness.hpp"

#include <fmt/format.h>

#include <csignal>
#include <fstream>

#include "common/http_client.hpp"
#include "common/lsn.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_test_binaries.hpp"

namespace syncline::test {

PgProjectorHarness::PgProjectorHarness(std::string_view name, std::string topic_prefix, std::string projector_yaml,
                                       std::string kafka_properties_yaml, ProjectorKind kind)
    : kind_(kind),
      name_(unique_name(name)),
      prefix_(std::move(topic_prefix)),
      projector_yaml_(std::move(projector_yaml)),
      kafka_properties_yaml_(std::move(kafka_properties_yaml)),
      http_port_(free_port()) {
  if (prefix_.empty()) {
    prefix_ = name_;
    owns_prefix_ = true;
  }
  read_db_ = std::make_unique<pg::PgConnection>(stack_env().read_pg_dsn);
  config_path_ = write_config("", http_port_);
  process_ = std::make_unique<ChildProcess>(binary(), std::vector<std::string>{"--config", config_path_},
                                            fmt::format("/tmp/{}.log", name_));
}

PgProjectorHarness::~PgProjectorHarness() {
  process_.reset();
  try {
    read_db_ = std::make_unique<pg::PgConnection>(stack_env().read_pg_dsn);
    read_db_->exec("DELETE FROM syncline.offsets WHERE consumer_group = $1", {pg::Param(name_)});
  } catch (const std::exception&) {
    // The table may not exist if the projector never started.
  }
  try {
    kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
    std::vector<std::string> ours;
    for (const auto& topic : admin.list_topics(std::chrono::seconds(10))) {
      if (owns_prefix_ && topic.name.rfind(prefix_ + ".", 0) == 0) ours.push_back(topic.name);
    }
    if (!ours.empty()) admin.delete_topics(ours, std::chrono::seconds(30));
  } catch (const std::exception&) {
    // Topics of a unique prefix left behind harm no other test.
  }
  std::remove(config_path_.c_str());
}

const char* PgProjectorHarness::binary() const {
#ifdef SYNCLINE_ES_PROJECTOR_BIN
  if (kind_ == ProjectorKind::es) return SYNCLINE_ES_PROJECTOR_BIN;
#endif
  return SYNCLINE_PG_PROJECTOR_BIN;
}

std::string PgProjectorHarness::write_config(std::string_view suffix, int http_port) const {
  const auto& env = stack_env();
  const std::string target = kind_ == ProjectorKind::pg ? fmt::format("read_db:\n  dsn: {}\n", env.read_pg_dsn)
                                                        : fmt::format("search:\n  url: {}\n", env.search_url);
  const char* section = kind_ == ProjectorKind::pg ? "pg_projector" : "es_projector";
  const auto path = fmt::format("/tmp/{}{}.yaml", name_, suffix);
  std::ofstream config(path);
  config << fmt::format(
      "log:\n  level: info\nkafka:\n  bootstrap_servers: {}\n  topic_prefix: {}\n  properties:\n"
      // Static membership: a restarted instance takes its partitions back at once instead of
      // waiting for the killed one's session to time out.
      "    group.instance.id: {}{}\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 500\n{}"
      "{}{}:\n  http:\n    port: {}\n  group_id: {}\n  retry_max_backoff_ms: 1000\n{}",
      env.kafka_bootstrap, prefix_, name_, suffix, kafka_properties_yaml_, target, section, http_port, name_,
      projector_yaml_);
  return path;
}

std::unique_ptr<ChildProcess> PgProjectorHarness::instance(std::string_view suffix, int* http_port) const {
  const int port = free_port();
  if (http_port != nullptr) *http_port = port;
  const auto path = write_config(fmt::format(".{}", suffix), port);
  return std::make_unique<ChildProcess>(binary(), std::vector<std::string>{"--config", path},
                                        fmt::format("/tmp/{}.{}.log", name_, suffix));
}

void PgProjectorHarness::kill() { (void)process_->stop(SIGKILL, std::chrono::seconds(10)); }

std::optional<int> PgProjectorHarness::stop() { return process_->stop(SIGTERM, std::chrono::seconds(60)); }

::testing::AssertionResult PgProjectorHarness::wait_ready(std::chrono::milliseconds deadline, int port) {
  if (port == 0) port = http_port_;
  auto result = poll_until([&] { return !process_->running() || http_get_status(port, "/readyz") == 200; },
                           deadline, "the projector to be ready (/readyz 200)");
  if (port == http_port_ && !process_->running()) {
    return ::testing::AssertionFailure() << "the projector exited; its log:\n" << process_->log_tail();
  }
  if (!result) return result << "\nits log:\n" << process_->log_tail();
  return result;
}

nlohmann::json PgProjectorHarness::status(int port) const {
  try {
    http::ClientOptions options;
    options.connect_timeout = std::chrono::milliseconds(500);
    options.request_timeout = std::chrono::seconds(2);
    http::HttpClient client(options);
    const auto response = client.get(fmt::format("http://127.0.0.1:{}/status", port == 0 ? http_port_ : port));
    return nlohmann::json::parse(response.body);
  } catch (const std::exception&) {
    return nullptr;
  }
}

bool PgProjectorHarness::caught_up(int port) const {
  const auto current = status(port);
  return current.is_object() && current.contains("queue_size") && current["queue_size"].is_number() &&
         current["queue_size"].get<std::int64_t>() == 0;
}

long PgProjectorHarness::peak_rss_kib() const { return test::peak_rss_kib(process_->pid()); }

std::int64_t PgProjectorHarness::stored_offsets(const std::string& topic) {
  const auto result = read_db_->exec(
      "SELECT coalesce(sum(next_offset), 0) FROM syncline.offsets WHERE consumer_group = $1 AND topic = $2",
      {pg::Param(name_), pg::Param(topic)});
  return std::stoll(std::string(result.value(0, 0)));
}

EventPublisher::EventPublisher() {
  producer_ = std::make_unique<kafka::TransactionalProducer>(
      kafka::Properties{{"bootstrap.servers", stack_env().kafka_bootstrap},
                        {"transactional.id", unique_name("syncline_test_publisher")},
                        {"linger.ms", "5"}});
  producer_->init_transactions(std::chrono::seconds(30));
}

void EventPublisher::create_topics(const std::vector<std::string>& topics, int partitions) {
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  std::vector<kafka::NewTopic> requests;
  for (const auto& topic : topics) requests.push_back({topic, partitions, 1, {{"retention.ms", "-1"}}});
  admin.create_topics(requests, std::chrono::seconds(30));
}

void EventPublisher::begin() { producer_->begin_transaction(); }

void EventPublisher::commit() { producer_->commit_transaction(); }

void EventPublisher::send(const std::string& topic, const std::optional<std::string>& key, const std::string& value,
                          const std::string& type) {
  producer_->produce({.topic = topic, .key = key, .value = value, .headers = {{"syncline-event-type", type}}});
}

void EventPublisher::send(const std::string& topic, std::int32_t partition, const std::optional<std::string>& key,
                          const std::string& value, const std::string& type) {
  producer_->produce({.topic = topic,
                      .partition = partition,
                      .key = key,
                      .value = value,
                      .headers = {{"syncline-event-type", type}}});
}

nlohmann::json domain_event(const std::string& id, const std::string& type, const std::string& aggregate_type,
                            const std::string& aggregate_id, nlohmann::json payload, std::uint64_t commit_lsn,
                            std::uint64_t seq) {
  const std::string lsn = Lsn(commit_lsn).to_string();
  return {{"id", id},
          {"type", type},
          {"aggregate_type", aggregate_type},
          {"aggregate_id", aggregate_id},
          {"occurred_at", "2026-11-22T10:00:00.000Z"},
          {"payload", std::move(payload)},
          {"op", nullptr},
          {"before", nullptr},
          {"after", nullptr},
          {"source",
           {{"db", "write"},
            {"schema", "public"},
            {"table", "outbox"},
            {"lsn", lsn},
            {"commit_lsn", lsn},
            {"seq", seq},
            {"txid", 1},
            {"commit_ts", "2026-11-22T10:00:00.000Z"},
            {"snapshot", false}}}};
}

nlohmann::json row_change(const std::string& table, char op, nlohmann::json after, std::uint64_t commit_lsn,
                          std::uint64_t seq, std::vector<std::string> unchanged_toast) {
  auto event = domain_event(Lsn(commit_lsn).to_string() + ":" + std::to_string(seq),
                            fmt::format("public.{}.{}", table, op), "public." + table, "", nullptr, commit_lsn, seq);
  event["op"] = std::string(1, op);
  event["source"]["table"] = table;
  if (op == 'd') {
    event["before"] = std::move(after);
  } else if (op != 't') {
    event["after"] = std::move(after);
  }
  if (!unchanged_toast.empty()) event["source"]["unchanged_toast"] = unchanged_toast;
  return event;
}

std::int64_t committed_offsets(const std::string& group, const std::string& topic) {
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  const auto info = admin.describe_topic(topic, std::chrono::seconds(10));
  if (!info) return 0;
  std::vector<kafka::TopicPartition> partitions;
  for (const auto& partition : info->partitions) partitions.push_back({topic, partition.id});
  kafka::Consumer reader({{"bootstrap.servers", stack_env().kafka_bootstrap}, {"group.id", group}});
  std::int64_t sum = 0;
  for (const auto& offset : reader.committed(partitions, std::chrono::seconds(10)))
    if (offset.offset > 0) sum += offset.offset;
  reader.close();
  return sum;
}

::testing::AssertionResult recreate_topic(const std::string& topic, int partitions) {
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  admin.delete_topics({topic}, std::chrono::seconds(30));
  // Deletion is asynchronous: creating succeeds once the broker has finished it.
  return poll_until(
      [&] {
        try {
          EventPublisher::create_topics({topic}, partitions);
          return admin.describe_topic(topic, std::chrono::seconds(5)).has_value();
        } catch (const std::exception&) {
          return false;
        }
      },
      std::chrono::seconds(60), "topic " + topic + " deleted and created again");
}

}  // namespace syncline::test
