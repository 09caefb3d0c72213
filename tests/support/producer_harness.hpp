// ProducerHarness: a syncline-producer run by a test — its own slot, publication, outbox table and
// topic prefix, the binary as a child process, and a read_committed reader of what it published.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "common/pg.hpp"
#include "tests/support/child_process.hpp"

namespace syncline::test {

struct ConsumedRecord {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string> key;
  std::string value;
  std::vector<kafka::Header> headers;
};

// Owned by one test. The names are unique per harness, so tests never see each other's data;
// the destructor stops the producer and drops the slot, publication, outbox table and topics.
class ProducerHarness {
 public:
  // `producer_yaml`: extra keys of the `producer:` section, each line indented by 2 spaces
  // (e.g. "  capture: [public.t1]\n"). The outbox table is created as <name>_outbox in public.
  explicit ProducerHarness(std::string_view name, std::string producer_yaml = {});
  ~ProducerHarness();
  ProducerHarness(const ProducerHarness&) = delete;
  ProducerHarness& operator=(const ProducerHarness&) = delete;

  const std::string& name() const { return name_; }
  const std::string& prefix() const { return name_; }  // the topic prefix
  const std::string& slot() const { return name_; }
  std::string outbox_table() const { return name_ + "_outbox"; }  // in schema public
  // Logical messages are not tied to a table: every producer on the database sees every message,
  // so each harness listens to its own prefix (pg_logical_emit_message(true, message_prefix(), …)).
  const std::string& message_prefix() const { return name_; }
  std::string event_topic(std::string_view aggregate_type) const;
  std::string row_topic(std::string_view schema, std::string_view table) const;
  std::string dead_letter_topic() const;

  pg::PgConnection& write_db() { return *write_db_; }
  ChildProcess& process() { return *process_; }
  int http_port() const { return http_port_; }
  // The configuration file the producer runs with (syncline-ctl reads the same one).
  const std::string& config_path() const { return config_path_; }

  // A second producer process with the same configuration (same slot and transactional.id).
  std::unique_ptr<ChildProcess> twin() const;
  // Peak resident set of the running producer, from the kernel's accounting (VmHWM), in KiB.
  long peak_rss_kib() const;

  void start();
  // Replaces the extra `producer:` keys for the next start() (the same names and slot).
  void reconfigure(std::string producer_yaml);
  void kill();                        // SIGKILL, reaped
  std::optional<int> stop();          // SIGTERM; the exit status
  // Waits until /readyz answers 200 (the producer is streaming).
  ::testing::AssertionResult wait_ready(std::chrono::milliseconds deadline = std::chrono::seconds(60));

  // Everything committed in `topics` (all partitions) so far, read with read_committed, waiting
  // until at least `at_least` records arrived or `deadline` passed.
  std::vector<ConsumedRecord> read_committed(const std::vector<std::string>& topics, std::size_t at_least,
                                             std::chrono::milliseconds deadline);
  // The same, handing each record to `on_record` instead of keeping it (for very many records);
  // returns how many were read.
  std::size_t consume_committed(const std::vector<std::string>& topics, std::size_t at_least,
                                std::chrono::milliseconds deadline,
                                const std::function<void(const ConsumedRecord&)>& on_record);

 private:
  std::string write_config(std::string_view suffix, int http_port) const;

  std::string name_;
  std::string producer_yaml_;
  std::string config_path_;
  int http_port_ = 0;
  std::unique_ptr<pg::PgConnection> write_db_;
  std::unique_ptr<ChildProcess> process_;
};

// Everything committed in `topics` (all partitions), read with read_committed by a fresh reader,
// waiting until at least `at_least` records arrived or `deadline` passed.
std::vector<ConsumedRecord> read_committed_records(const std::vector<std::string>& topics, std::size_t at_least,
                                                   std::chrono::milliseconds deadline);
std::size_t consume_committed_records(const std::vector<std::string>& topics, std::size_t at_least,
                                      std::chrono::milliseconds deadline,
                                      const std::function<void(const ConsumedRecord&)>& on_record);

// The syncline-producer the harnesses run: SYNCLINE_TEST_PRODUCER_BIN when set (to run a regression
// test against another build, e.g. the one before a fix), else the one built with the tests.
std::string producer_binary();

// A TCP port on 127.0.0.1 that nothing listens on, never handed out twice in this process; from
// 10000-14999, below the ephemeral range (see producer_harness.cpp).
int free_port();
// HTTP GET on 127.0.0.1:port; the status code, or 0 when nothing answered.
int http_get_status(int port, const std::string& path);

}  // namespace syncline::test
