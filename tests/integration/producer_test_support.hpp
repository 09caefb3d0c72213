// Helpers shared by the producer's integration tests: waiting for published records, reading their
// headers, writing domain events, and tables or databases that a test creates and drops.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_client.hpp"
#include "common/kafka.hpp"
#include "common/pg.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {

// The value of the record's header `name`, or nullopt when it has none.
inline std::optional<std::string> header_of(const ConsumedRecord& record, std::string_view name) {
  for (const auto& header : record.headers) {
    if (header.key == name) return header.value;
  }
  return std::nullopt;
}

inline std::vector<ConsumedRecord> on_topic(const std::vector<ConsumedRecord>& records, const std::string& topic) {
  std::vector<ConsumedRecord> selected;
  for (const auto& record : records) {
    if (record.topic == topic) selected.push_back(record);
  }
  return selected;
}

// Waits until the producer created `topics`, then reads them from the beginning (read_committed) until
// at least `at_least` records are there. One read, not rounds: closing the reader while records are
// still arriving trips a librdkafka assertion in Consumer::close (rd_kafka_q_serve).
inline ::testing::AssertionResult await_records(ProducerHarness& harness, const std::vector<std::string>& topics,
                                                std::size_t at_least, std::vector<ConsumedRecord>& records,
                                                std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  auto result = poll_until(
      [&] {
        return std::all_of(topics.begin(), topics.end(), [&](const std::string& topic) {
          return admin.describe_topic(topic, std::chrono::seconds(5)).has_value();
        });
      },
      deadline, fmt::format("topics {} to exist", fmt::join(topics, ", ")));
  if (result) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    records = harness.read_committed(topics, at_least, std::max(left, std::chrono::milliseconds(1000)));
    result = records.size() >= at_least
                 ? ::testing::AssertionSuccess()
                 : ::testing::AssertionFailure() << "timed out waiting for " << at_least << " committed record(s) in "
                                                 << fmt::format("{}", fmt::join(topics, ", "));
  }
  if (!result) result << " (got " << records.size() << ")\nproducer log:\n" << harness.process().log_tail();
  return result;
}

// A domain event as the application writes it: an outbox row or a logical message.
struct DomainEvent {
  std::string aggregate_type;
  std::optional<std::string> aggregate_id;
  std::optional<std::string> event_type;
  std::optional<std::string> payload;  // JSON text; nullopt is SQL NULL
  std::optional<std::string> headers = std::nullopt;
};

// Inserts `event` into the harness's outbox in its own transaction; returns the row's id.
inline std::string insert_outbox_row(ProducerHarness& harness, const DomainEvent& event) {
  return std::string(harness.write_db()
                         .exec(fmt::format("INSERT INTO public.{} (id, aggregate_type, aggregate_id, event_type, "
                                           "payload, headers) VALUES (gen_random_uuid(), $1, $2, $3, $4::jsonb, "
                                           "$5::jsonb) RETURNING id",
                                           harness.outbox_table()),
                               {event.aggregate_type, event.aggregate_id, event.event_type, event.payload,
                                event.headers})
                         .value(0, 0));
}

// Emits `event` with the harness's message prefix as a transactional logical message in the current
// transaction of `db` (autocommit: its own); returns the message's LSN. occurred_at is written as the
// envelope wants it: ISO-8601 UTC with a 'Z'.
inline std::string emit_event_message(ProducerHarness& harness, pg::PgConnection& db, const std::string& id,
                                      const DomainEvent& event) {
  return std::string(
      db.exec("SELECT pg_logical_emit_message(true, $1, json_build_object('id', $2::uuid, 'aggregate_type', "
              "$3::text, 'aggregate_id', $4::text, 'event_type', $5::text, 'payload', $6::json, 'occurred_at', "
              "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text)",
              {harness.message_prefix(), id, event.aggregate_type, event.aggregate_id, event.event_type,
               event.payload})
          .value(0, 0));
}

inline std::string new_uuid(pg::PgConnection& db) {
  return std::string(db.exec("SELECT gen_random_uuid()").value(0, 0));
}

// Something a test creates on the write server and drops when it ends.
class ScratchObject {
 public:
  ScratchObject(pg::PgConnection& db, std::string name, const std::string& create_sql, std::string drop_sql)
      : db_(db), name_(std::move(name)), drop_sql_(std::move(drop_sql)) {
    db_.exec(create_sql);
  }
  ~ScratchObject() {
    try {
      db_.exec(drop_sql_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << drop_sql_ << " failed: " << e.what();
    }
  }
  ScratchObject(const ScratchObject&) = delete;
  ScratchObject& operator=(const ScratchObject&) = delete;

  const std::string& name() const { return name_; }

 private:
  pg::PgConnection& db_;
  std::string name_;
  std::string drop_sql_;
};

// A table in schema public; `columns_sql` is its column list.
class ScratchTable : public ScratchObject {
 public:
  ScratchTable(pg::PgConnection& db, const std::string& name, std::string_view columns_sql)
      : ScratchObject(db, name, fmt::format("CREATE TABLE public.{} ({})", name, columns_sql),
                      fmt::format("DROP TABLE IF EXISTS public.{}", name)) {}
  std::string qualified() const { return "public." + name(); }
};

// A database of the write server, dropped with any connection still open to it.
class ScratchDatabase : public ScratchObject {
 public:
  ScratchDatabase(pg::PgConnection& server, const std::string& name)
      : ScratchObject(server, name, fmt::format("CREATE DATABASE {}", name),
                      fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)) {}
};

// The services every producer test needs: ASSERT_TRUE(require_producer_stack()) before anything else.
inline ::testing::AssertionResult require_producer_stack() {
  if (auto pg = require_write_pg(); !pg) return pg;
  return require_kafka();
}

// Starts the producer and waits until it streams from its slot.
inline ::testing::AssertionResult start_streaming(ProducerHarness& harness) {
  harness.start();
  return harness.wait_ready();
}

// The producer's /metrics text, or "" when it does not answer.
inline std::string scrape_metrics(int port) {
  try {
    http::ClientOptions options;
    options.connect_timeout = std::chrono::milliseconds(500);
    options.request_timeout = std::chrono::seconds(2);
    http::HttpClient client(options);
    return client.get(fmt::format("http://127.0.0.1:{}/metrics", port)).body;
  } catch (const std::exception&) {
    return {};
  }
}

// The value of an unlabelled sample `name` in Prometheus text, or nullopt when absent.
inline std::optional<double> metric_value(const std::string& metrics_text, std::string_view name) {
  const std::string needle = fmt::format("\n{} ", name);
  const auto text = "\n" + metrics_text;
  const auto at = text.find(needle);
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + needle.size()));
}

}  // namespace syncline::test
