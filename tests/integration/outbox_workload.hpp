// A workload of numbered domain events for producer tests, and the exactly-once/in-order check
// of what a read_committed consumer saw.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>

#include "common/envelope.hpp"
#include "common/pg.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {

// Writes events of aggregate type `aggregate_type` in transactions of 1-40 events, four in five as
// outbox rows and one in five through pg_logical_emit_message, each carrying its aggregate's
// sequence number, so a reader can tell lost, doubled and reordered events apart.
class OutboxWorkload {
 public:
  OutboxWorkload(const ProducerHarness& harness, std::string aggregate_type, int aggregates, unsigned seed = 42)
      : outbox_(harness.outbox_table()),
        message_prefix_(harness.message_prefix()),
        aggregate_type_(std::move(aggregate_type)),
        next_(static_cast<std::size_t>(aggregates), 1),
        random_(seed) {}

  // Writes `events` more events; returns after their last transaction committed.
  void write(int events) {
    pg::PgConnection db(stack_env().write_pg_dsn);
    int written = 0;
    while (written < events) {
      const int size = std::min(events - written, std::uniform_int_distribution<int>(1, 40)(random_));
      db.exec(transaction_sql(size));
      written += size;
      written_.fetch_add(size);
    }
  }

  int events_written() const { return written_.load(); }

 private:
  std::string transaction_sql(int size) {
    const bool as_messages = std::uniform_int_distribution<int>(0, 4)(random_) == 0;
    std::string sql = "BEGIN;";
    std::string values;
    for (int i = 0; i < size; ++i) {
      const auto aggregate = std::uniform_int_distribution<std::size_t>(0, next_.size() - 1)(random_);
      const std::string payload = fmt::format(R"({{"agg":"a{}","n":{}}})", aggregate, next_[aggregate]++);
      if (as_messages) {
        sql += fmt::format(
            "SELECT pg_logical_emit_message(true, '{}', json_build_object('id', gen_random_uuid(), "
            "'aggregate_type', '{}', 'aggregate_id', 'a{}', 'event_type', 'Counted', 'payload', '{}'::json, "
            "'occurred_at', now())::text);",
            message_prefix_, aggregate_type_, aggregate, payload);
      } else {
        values += fmt::format("{}(gen_random_uuid(), '{}', 'a{}', 'Counted', '{}')", values.empty() ? "" : ",",
                              aggregate_type_, aggregate, payload);
      }
    }
    if (!values.empty()) {
      sql += fmt::format("INSERT INTO public.{} (id, aggregate_type, aggregate_id, event_type, payload) VALUES {};",
                         outbox_, values);
    }
    return sql + "COMMIT;";
  }

  std::string outbox_;
  std::string message_prefix_;
  std::string aggregate_type_;
  std::vector<int> next_;
  std::mt19937 random_;
  std::atomic<int> written_{0};
};

struct DeliveryCheck {
  std::size_t records = 0;
  int missing = 0;
  int duplicated = 0;
  int aggregates_out_of_order = 0;
  std::string to_string() const {
    return fmt::format("{} records read, {} missing, {} duplicated, {} aggregates out of order", records, missing,
                       duplicated, aggregates_out_of_order);
  }
};

// Every record must be a distinct event, and each aggregate's sequence numbers must read 1, 2, 3, …
// in partition order (the key is the aggregate, so one aggregate lives in one partition).
inline DeliveryCheck check_delivery(const std::vector<ConsumedRecord>& records, int events_written) {
  DeliveryCheck check;
  check.records = records.size();
  std::set<std::string> ids;
  std::map<std::string, int> last;
  std::set<std::string> out_of_order;
  for (const auto& record : records) {
    const auto envelope = decode_envelope(record.value);
    if (!ids.insert(envelope.id).second) ++check.duplicated;
    const int n = envelope.payload.at("n").get<int>();
    int& previous = last[envelope.aggregate_id];
    if (n != previous + 1 || !record.key || *record.key != envelope.aggregate_id) {
      out_of_order.insert(envelope.aggregate_id);
    }
    previous = n;
  }
  check.missing = events_written - static_cast<int>(ids.size());
  check.aggregates_out_of_order = static_cast<int>(out_of_order.size());
  return check;
}

}  // namespace syncline::test
