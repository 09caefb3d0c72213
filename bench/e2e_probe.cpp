// syncline-bench-e2e-probe: the observer of `scripts/bench e2e`. It watches the read database and
// the search index for the chat demo's events and records, per event, how long after its write
// commit (`source.commit_ts`) it became visible; plus one line of figures per second for the plot.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/http_client.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"

namespace syncline::bench {
namespace {

using Clock = std::chrono::system_clock;  // commit_ts is wall-clock time of the same machine
using json = nlohmann::json;

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

// "2026-11-22T10:00:00.125Z" (the producer's commit_ts: up to 6 fraction digits, always UTC) in
// microseconds since the epoch; nullopt for anything else.
std::optional<std::int64_t> parse_commit_ts(const std::string& text) {
  std::tm tm{};
  int fraction_at = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &fraction_at) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::int64_t micros = 0;
  std::size_t at = static_cast<std::size_t>(fraction_at);
  if (at < text.size() && text[at] == '.') {
    int digits = 0;
    for (++at; at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])) != 0; ++at, ++digits) {
      if (digits < 6) micros = micros * 10 + (text[at] - '0');
    }
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (at >= text.size() || text[at] != 'Z') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm)) * 1'000'000 + micros;
}

// The latencies one sink (read database or index) showed, overall and for the current second.
struct Sink {
  std::mutex mutex;
  std::vector<double> all_ms;
  std::vector<double> second_ms;
  std::int64_t since_us = 0;          // events committed earlier belong to an earlier run
  std::int64_t newest_commit_us = 0;  // the newest commit visible so far
  std::int64_t polls = 0;
  std::int64_t errors = 0;
  std::string last_error;
  // The lag (age of the newest visible commit) at every poll of the current second: its mean does
  // not depend on where in the index's refresh cycle a once-a-second sample would fall.
  double age_sum_ms = 0;
  std::int64_t age_count = 0;

  void polled(std::int64_t at_us) {
    ++polls;
    age_sum_ms += static_cast<double>(at_us - newest_commit_us) / 1000.0;
    ++age_count;
  }

  void seen(std::int64_t commit_us, std::int64_t seen_us) {
    newest_commit_us = std::max(newest_commit_us, commit_us);
    if (commit_us < since_us) return;
    const double ms = static_cast<double>(seen_us - commit_us) / 1000.0;
    all_ms.push_back(ms);
    second_ms.push_back(ms);
  }
  void failed(const std::string& what) {
    ++errors;
    last_error = what;
  }
};

double percentile(std::vector<double>& values, double share) {
  if (values.empty()) return 0;
  const auto at = static_cast<std::size_t>(share * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(at), values.end());
  return values[at];
}

json summary_of(Sink& sink) {
  std::lock_guard lock(sink.mutex);
  auto& values = sink.all_ms;
  json out = {{"events", values.size()}, {"polls", sink.polls}, {"errors", sink.errors}};
  if (!sink.last_error.empty()) out["last_error"] = sink.last_error;
  if (values.empty()) return out;
  out["p50_ms"] = percentile(values, 0.50);
  out["p95_ms"] = percentile(values, 0.95);
  out["p99_ms"] = percentile(values, 0.99);
  out["max_ms"] = *std::max_element(values.begin(), values.end());
  double sum = 0;
  for (const double value : values) sum += value;
  out["mean_ms"] = sum / static_cast<double>(values.size());
  return out;
}

struct Options {
  std::string read_dsn;
  std::string seen_table;  // schema.table of the bench's SQL projection
  std::string search_url;
  std::string index;  // alias of the messages index
  std::string write_dsn;
  std::string slot;
  std::vector<std::string> status_urls;  // the projectors' /status: queue_size per second
  std::string samples_path;
  int pg_interval_ms = 5;
  int es_interval_ms = 50;
  int es_window_ms = 3000;
  double duration = 3600;
};

// Polls the SQL projection's table for rows newer than the last one seen. The projector is its
// only writer, one transaction at a time, so `seq` grows in commit order.
void watch_read_db(const Options& options, Sink& sink) {
  std::unique_ptr<pg::PgConnection> db;
  std::int64_t last_seq = 0;
  const auto query = fmt::format(
      "SELECT seq, (extract(epoch FROM commit_ts) * 1000000)::bigint FROM {} WHERE seq > $1 ORDER BY seq "
      "LIMIT 50000",
      options.seen_table);
  while (!g_stop) {
    const auto started = std::chrono::steady_clock::now();
    try {
      if (!db) {
        db = std::make_unique<pg::PgConnection>(options.read_dsn);
        // Rows of earlier runs are skipped without being read.
        if (last_seq == 0) {
          last_seq = std::stoll(std::string(
              db->exec(fmt::format("SELECT coalesce(max(seq), 0) FROM {}", options.seen_table)).value(0, 0)));
        }
      }
      const auto sent_us = now_us();  // an upper bound of the moment the rows became visible
      const auto result = db->exec(query, {pg::Param(std::to_string(last_seq))});
      std::lock_guard lock(sink.mutex);
      for (int row = 0; row < result.rows(); ++row) {
        last_seq = std::stoll(std::string(result.value(row, 0)));
        sink.seen(std::stoll(std::string(result.value(row, 1))), sent_us);
      }
      sink.polled(sent_us);
    } catch (const pg::PgError& error) {
      // Before the projector's first connect the table does not exist yet.
      std::lock_guard lock(sink.mutex);
      sink.failed(redact_secrets(error.what()));
      db.reset();  // reconnects, and reads the starting row again
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::this_thread::sleep_until(started + std::chrono::milliseconds(options.pg_interval_ms));
  }
}

// Polls the index cheaply (count and newest commit_ts) and, when that changed (a refresh made
// documents visible), fetches the documents of the last few seconds and records the new ones.
void watch_index(const Options& options, Sink& sink) {
  http::HttpClient client{
      http::ClientOptions{.base_url = options.search_url, .request_timeout = std::chrono::seconds(10)}};
  const std::string path = "/" + options.index + "/_search";
  const std::string cheap =
      R"({"size":0,"track_total_hits":true,"aggs":{"newest":{"max":{"field":"commit_ts"}}}})";
  std::unordered_set<std::string> seen_ids;
  std::string last_state;
  while (!g_stop) {
    const auto started = std::chrono::steady_clock::now();
    try {
      const auto state = client.post(path + "?filter_path=hits.total,aggregations", cheap);
      if (state.status == 200 && state.body != last_state) {
        std::int64_t watermark_ms = 0;
        {
          std::lock_guard lock(sink.mutex);
          watermark_ms = sink.newest_commit_us / 1000 - options.es_window_ms;
        }
        const auto sent_us = now_us();  // after the change was noticed: an upper bound
        const auto page = client.post(
            path + "?filter_path=hits.hits._id,hits.hits._source",
            fmt::format(
                R"({{"size":10000,"_source":["commit_ts"],"query":{{"range":{{"commit_ts":{{"gte":{},"format":"epoch_millis"}}}}}}}})",
                std::max<std::int64_t>(watermark_ms, 0)));
        if (page.status != 200) throw std::runtime_error(fmt::format("_search answered {}", page.status));
        const auto body = json::parse(page.body);
        std::lock_guard lock(sink.mutex);
        if (body.contains("hits") && body["hits"].contains("hits")) {
          const auto& hits = body["hits"]["hits"];
          if (hits.size() >= 10000)
            sink.failed("a fetch returned 10000 documents: some may have been missed");
          for (const auto& hit : hits) {
            auto id = hit.value("_id", "");
            if (seen_ids.contains(id)) continue;
            const auto commit = parse_commit_ts(hit["_source"].value("commit_ts", ""));
            if (!commit) continue;
            seen_ids.insert(std::move(id));
            sink.seen(*commit, sent_us);
          }
        }
        sink.polled(sent_us);
        last_state = state.body;
      } else if (state.status == 200) {
        std::lock_guard lock(sink.mutex);
        sink.polled(now_us());
      } else {
        std::lock_guard lock(sink.mutex);
        sink.failed(fmt::format("_search answered {} (the index may not exist yet)", state.status));
      }
    } catch (const std::exception& error) {
      std::lock_guard lock(sink.mutex);
      sink.failed(error.what());
    }
    std::this_thread::sleep_until(started + std::chrono::milliseconds(options.es_interval_ms));
  }
}

// queue_size of a projector's /status, -1 when it does not answer.
std::int64_t queue_size(const std::string& url) {
  try {
    http::HttpClient client{http::ClientOptions{.base_url = url, .request_timeout = std::chrono::seconds(2)}};
    const auto response = client.get("/status");
    if (response.status != 200) return -1;
    return json::parse(response.body).value("queue_size", std::int64_t{-1});
  } catch (const std::exception&) {
    return -1;
  }
}

int run(int argc, char** argv) {
  Options options;
  CLI::App app{
      "syncline-bench-e2e-probe: commit -> visible latency of the chat demo's events (scripts/bench e2e)."};
  app.add_option("--read-dsn", options.read_dsn, "read database DSN")->required();
  app.add_option("--seen-table", options.seen_table,
                 "schema.table of the bench's SQL projection (seq, commit_ts)")
      ->required();
  app.add_option("--search-url", options.search_url, "search engine URL")->required();
  app.add_option("--index", options.index, "the messages index (alias); its documents carry commit_ts")
      ->required();
  app.add_option("--write-dsn", options.write_dsn, "write database DSN, for the slot's lag");
  app.add_option("--slot", options.slot, "the producer's replication slot");
  app.add_option("--status", options.status_urls,
                 "a projector's base URL: its /status queue_size every second");
  app.add_option("--samples", options.samples_path, "file for one line of figures per second")->required();
  app.add_option("--pg-interval-ms", options.pg_interval_ms, "read database poll interval")
      ->capture_default_str();
  app.add_option("--es-interval-ms", options.es_interval_ms, "index poll interval")->capture_default_str();
  app.add_option("--es-window-ms", options.es_window_ms,
                 "fetch documents committed up to this long before the newest seen")
      ->capture_default_str();
  app.add_option("--duration", options.duration, "seconds at most (SIGTERM ends it earlier)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  Sink read_db;
  Sink index;
  for (auto* sink : {&read_db, &index}) sink->since_us = sink->newest_commit_us = now_us();
  std::thread pg_thread(watch_read_db, std::cref(options), std::ref(read_db));
  std::thread es_thread(watch_index, std::cref(options), std::ref(index));

  std::unique_ptr<pg::PgConnection> write;
  const auto slot_lag = [&]() -> std::int64_t {
    if (options.write_dsn.empty() || options.slot.empty()) return -1;
    try {
      if (!write) write = std::make_unique<pg::PgConnection>(options.write_dsn);
      const auto result = write->exec(
          "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE "
          "slot_name = $1",
          {pg::Param(options.slot)});
      return result.rows() == 1 && !result.is_null(0, 0) ? std::stoll(std::string(result.value(0, 0))) : -1;
    } catch (const pg::PgError&) {
      write.reset();
      return -1;
    }
  };

  std::ofstream samples(options.samples_path);
  samples << "# second pg_events pg_p50_ms pg_max_ms es_events es_p50_ms es_max_ms pg_lag_ms es_lag_ms "
             "slot_lag_bytes";
  for (std::size_t i = 0; i < options.status_urls.size(); ++i) samples << " queue_" << i;
  samples << '\n';
  const auto start = std::chrono::steady_clock::now();
  for (int second = 1; !g_stop && second <= options.duration; ++second) {
    // Short sleeps, so a SIGTERM ends the probe promptly.
    while (!g_stop && std::chrono::steady_clock::now() < start + std::chrono::seconds(second)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto now = now_us();
    std::string line = fmt::format("{}", second);
    for (auto* sink : {&read_db, &index}) {
      std::lock_guard lock(sink->mutex);
      auto& values = sink->second_ms;
      const double max = values.empty() ? 0 : *std::max_element(values.begin(), values.end());
      line += fmt::format(" {} {:.1f} {:.1f}", values.size(), percentile(values, 0.5), max);
      values.clear();
    }
    for (auto* sink : {&read_db, &index}) {
      std::lock_guard lock(sink->mutex);
      line += sink->age_count == 0
                  ? fmt::format(" {:.1f}", static_cast<double>(now - sink->newest_commit_us) / 1000.0)
                  : fmt::format(" {:.1f}", sink->age_sum_ms / static_cast<double>(sink->age_count));
      sink->age_sum_ms = 0;
      sink->age_count = 0;
    }
    line += fmt::format(" {}", slot_lag());
    for (const auto& url : options.status_urls) line += fmt::format(" {}", queue_size(url));
    samples << line << '\n' << std::flush;
  }
  g_stop = true;
  pg_thread.join();
  es_thread.join();
  std::cout << json{{"read_db", summary_of(read_db)}, {"index", summary_of(index)}}.dump(2) << '\n';
  return 0;
}

}  // namespace
}  // namespace syncline::bench

int main(int argc, char** argv) {
  try {
    return syncline::bench::run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "syncline-bench-e2e-probe: " << syncline::redact_secrets(error.what()) << '\n';
    return 2;
  }
}
