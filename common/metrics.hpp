// Metrics registry: counters, gauges and histograms with labels, rendered in the Prometheus
// text exposition format 0.0.4.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace syncline::metrics {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Label name -> value. A map, so a series is the same whatever order the caller wrote it in.
using Labels = std::map<std::string, std::string>;

// Monotonic. Thread-safe, lock-free.
class Counter {
 public:
  void inc(double amount = 1.0);  // throws std::invalid_argument for a negative amount
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Goes up and down. Thread-safe, lock-free.
class Gauge {
 public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void inc(double amount = 1.0) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  void dec(double amount = 1.0) noexcept { value_.fetch_sub(amount, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Thread-safe; a mutex keeps sum, count and buckets consistent with each other in a scrape.
class Histogram {
 public:
  struct Snapshot {
    std::vector<double> upper_bounds;       // without +Inf
    std::vector<std::uint64_t> cumulative;  // one per bound, then one for +Inf
    double sum = 0.0;
    std::uint64_t count = 0;
  };

  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  Snapshot snapshot() const;

 private:
  const std::vector<double> upper_bounds_;
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> counts_;  // per bucket (not cumulative), last is +Inf
  double sum_ = 0.0;
  std::uint64_t count_ = 0;
};

// Default buckets, in seconds, for latencies.
std::vector<double> default_latency_buckets();
// `count` buckets starting at `start`, each `factor` times the previous.
std::vector<double> exponential_buckets(double start, double factor, int count);

// Owns every metric. Getters register on first use and return the same object afterwards; the
// references stay valid for the registry's lifetime, so hot paths look a metric up once.
// Registering a name again with another type, help text or bucket layout throws
// std::invalid_argument, as do invalid metric or label names.
class Registry {
 public:
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<double>& upper_bounds, const Labels& labels = {});

  // Families sorted by name, series by labels.
  std::string render() const;

 private:
  enum class Type { counter, gauge, histogram };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> upper_bounds;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };
  Family& family(const std::string& name, Type type, const std::string& help, const Labels& labels,
                 const std::vector<double>& upper_bounds);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

// The process-wide registry the HTTP server exposes by default.
Registry& default_registry();

// Exposed for tests: the text format's escaping and number formatting.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
std::string format_value(double value);

}  // namespace syncline::metrics
