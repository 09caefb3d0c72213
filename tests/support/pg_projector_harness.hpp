// PgProjectorHarness: a syncline-pg-projector (or syncline-es-projector) run by a test (its own consumer group, config and
// HTTP port, the binary as a child process), plus EventPublisher, which writes envelopes straight
// into Kafka in transactions, as the producer would.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "common/pg.hpp"
#include "tests/support/child_process.hpp"

namespace syncline::test {

// Which projector binary a harness runs.
enum class ProjectorKind { pg, es };

// Owned by one test. The destructor kills its processes, deletes the group's stored offsets
// and the topics under its prefix (when it owns the prefix).
class PgProjectorHarness {
 public:
  // `topic_prefix`: the prefix of the topics to read (a ProducerHarness's prefix, or empty for
  // one of its own, which it then deletes at the end). `projector_yaml`: keys of the
  // `pg_projector:` section, each line indented by 2 spaces.
  // `kind` es: the syncline-es-projector binary, `projector_yaml` then being the keys of the
  // `es_projector:` section.
  PgProjectorHarness(std::string_view name, std::string topic_prefix, std::string projector_yaml,
                     std::string kafka_properties_yaml = {}, ProjectorKind kind = ProjectorKind::pg);
  ~PgProjectorHarness();
  PgProjectorHarness(const PgProjectorHarness&) = delete;
  PgProjectorHarness& operator=(const PgProjectorHarness&) = delete;

  const std::string& name() const { return name_; }    // also the consumer group
  const std::string& prefix() const { return prefix_; }  // topic prefix
  std::string event_topic(std::string_view aggregate_type) const { return prefix_ + ".events." + std::string(aggregate_type); }
  std::string dead_letter_topic() const {
    return prefix_ + (kind_ == ProjectorKind::pg ? ".dlq.pg-projector" : ".dlq.es-projector");
  }
  const std::string& config_path() const { return config_path_; }

  pg::PgConnection& read_db() { return *read_db_; }
  ChildProcess& process() { return *process_; }
  int http_port() const { return http_port_; }

  // Another instance in the same group (its own HTTP port and log).
  std::unique_ptr<ChildProcess> instance(std::string_view suffix, int* http_port = nullptr) const;

  void start() { process_->start(); }
  void kill();                // SIGKILL, reaped
  std::optional<int> stop();  // SIGTERM; the exit status
  // Waits until /readyz answers 200 on `port` (default: the main instance's).
  ::testing::AssertionResult wait_ready(std::chrono::milliseconds deadline = std::chrono::seconds(60),
                                        int port = 0);
  // /status as JSON (null when nothing answered).
  nlohmann::json status(int port = 0) const;
  long peak_rss_kib() const;
  // /status reports a known backlog of 0 (every assigned partition applied to its end).
  bool caught_up(int port = 0) const;

  // The next offsets syncline.offsets holds for this group, summed over partitions of `topic`.
  std::int64_t stored_offsets(const std::string& topic);

 private:
  std::string write_config(std::string_view suffix, int http_port) const;

  const char* binary() const;

  ProjectorKind kind_;
  std::string name_;
  std::string prefix_;
  bool owns_prefix_ = false;
  std::string projector_yaml_;
  std::string kafka_properties_yaml_;
  std::string config_path_;
  int http_port_ = 0;
  std::unique_ptr<pg::PgConnection> read_db_;
  std::unique_ptr<ChildProcess> process_;
};

// Publishes envelopes in Kafka transactions (read_committed consumers see them on commit).
class EventPublisher {
 public:
  EventPublisher();
  // Creates the topics (partitions each, retention forever) if absent.
  static void create_topics(const std::vector<std::string>& topics, int partitions);

  void begin();
  void commit();
  // `value` is sent as is (it need not be JSON: poison tests); `type` goes in the type header.
  void send(const std::string& topic, const std::optional<std::string>& key, const std::string& value,
            const std::string& type);
  // The same to an explicit partition (a truncate's copies, or a test of partition order).
  void send(const std::string& topic, std::int32_t partition, const std::optional<std::string>& key,
            const std::string& value, const std::string& type);

 private:
  std::unique_ptr<kafka::TransactionalProducer> producer_;
};

// A domain-event envelope as the producer writes it; `commit_lsn` and `seq` place it in the
// source's order.
nlohmann::json domain_event(const std::string& id, const std::string& type, const std::string& aggregate_type,
                            const std::string& aggregate_id, nlohmann::json payload, std::uint64_t commit_lsn,
                            std::uint64_t seq);

// A row-change envelope of table public.<table> as the producer writes it (`before` null, the
// row in `after`; `unchanged_toast` lists columns left out of `after`).
nlohmann::json row_change(const std::string& table, char op, nlohmann::json after, std::uint64_t commit_lsn,
                          std::uint64_t seq, std::vector<std::string> unchanged_toast = {});

// The next offsets committed to Kafka by `group`, summed over the partitions of `topic`.
std::int64_t committed_offsets(const std::string& group, const std::string& topic);

// Deletes `topic` and creates it again, empty, with `partitions` (a new topic id under the same
// name); fails when the broker has not finished the deletion within a minute.
::testing::AssertionResult recreate_topic(const std::string& topic, int partitions = 1);

}  // namespace syncline::test
