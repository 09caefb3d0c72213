// CounterWorkload: domain events that each add 1 to a counter per aggregate, through a SQL
// projection with `n = n + 1`: any event applied twice or lost shows in the counters.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {

class CounterWorkload {
 public:
  explicit CounterWorkload(std::string table) : table_(std::move(table)) {}

  // The pg_projector section keys for a projection named "counters" reading aggregate type "counter".
  std::string projector_yaml(std::size_t batch_max_events = 500) const {
    return fmt::format(
        "  batch_max_events: {1}\n"
        "  projections:\n"
        "    - name: counters\n"
        "      aggregate_types: [counter]\n"
        "      setup: CREATE TABLE IF NOT EXISTS public.{0} (id text PRIMARY KEY, n bigint NOT NULL)\n"
        "      events:\n"
        "        - types: Incremented\n"
        "          sql: INSERT INTO public.{0} (id, n) VALUES (:aggregate_id, :payload.by) "
        "ON CONFLICT (id) DO UPDATE SET n = {0}.n + EXCLUDED.n\n",
        table_, batch_max_events);
  }

  // Publishes `events` increments over `aggregates` counters, `per_transaction` per Kafka
  // transaction, on a background thread.
  void start(const std::string& topic, int events, int aggregates, int per_transaction = 100) {
    total_ = events;
    thread_ = std::thread([=, this] {
      try {
        EventPublisher publisher;
        std::mt19937 random(7);
        for (int sent = 0; sent < events;) {
          publisher.begin();
          for (int i = 0; i < per_transaction && sent < events; ++i, ++sent) {
            const std::string aggregate = "c" + std::to_string(random() % static_cast<unsigned>(aggregates));
            ++expected_[aggregate];
            const auto event = domain_event("e" + std::to_string(sent), "Incremented", "counter", aggregate,
                                            {{"by", 1}}, 0x1000000 + static_cast<std::uint64_t>(sent), 0);
            publisher.send(topic, aggregate, event.dump(), "Incremented");
          }
          publisher.commit();
          published_.store(sent);
        }
      } catch (const std::exception& e) {
        error_ = e.what();
      }
      done_.store(true);
    });
  }

  void join() {
    if (thread_.joinable()) thread_.join();
    ASSERT_TRUE(error_.empty()) << "publishing failed: " << error_;
  }
  bool done() const { return done_.load(); }
  int published() const { return published_.load(); }
  int total() const { return total_; }

  std::int64_t applied_sum(pg::PgConnection& read_db) const {
    return std::stoll(std::string(
        read_db.exec(fmt::format("SELECT coalesce(sum(n), 0) FROM public.{}", table_)).value(0, 0)));
  }

  struct Check {
    int aggregates = 0;
    int wrong = 0;
    std::int64_t lost = 0;
    std::int64_t doubled = 0;
    std::string to_string() const {
      return fmt::format("{} counters, {} wrong, {} events lost, {} applied twice", aggregates, wrong, lost, doubled);
    }
  };
  // Compares every counter with the number of events sent for it. Call after join().
  Check check(pg::PgConnection& read_db) const {
    Check check;
    std::map<std::string, std::int64_t> actual;
    const auto rows = read_db.exec(fmt::format("SELECT id, n FROM public.{}", table_));
    for (int r = 0; r < rows.rows(); ++r) actual[std::string(rows.value(r, 0))] = std::stoll(std::string(rows.value(r, 1)));
    for (const auto& [id, count] : expected_) {
      ++check.aggregates;
      const auto seen = actual.contains(id) ? actual.at(id) : 0;
      if (seen != count) ++check.wrong;
      if (seen < count) check.lost += count - seen;
      if (seen > count) check.doubled += seen - count;
    }
    for (const auto& [id, count] : actual)
      if (!expected_.contains(id)) check.doubled += count;
    return check;
  }

  const std::string& table() const { return table_; }

  void drop(pg::PgConnection& read_db) const { read_db.exec(fmt::format("DROP TABLE IF EXISTS public.{}", table_)); }

 private:
  std::string table_;
  int total_ = 0;
  std::map<std::string, std::int64_t> expected_;  // written by the thread, read after join()
  std::atomic<int> published_{0};
  std::atomic<bool> done_{false};
  std::string error_;
  std::thread thread_;
};

}  // namespace syncline::test
