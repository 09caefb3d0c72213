// Metrics registry and Prometheus text rendering (see metrics.hpp).
#include "common/metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace syncline::metrics {

namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  auto ok = [allow_colon](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
  };
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0)) return false;
  }
  return true;
}

void append_labels(std::string& out, const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += key;
    out += "=\"";
    out += escape_label_value(value);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, const std::string& name, const Labels& labels, const std::string& value,
                   const std::string* le = nullptr) {
  out += name;
  append_labels(out, labels, le);
  out += ' ';
  out += value;
  out += '\n';
}

}  // namespace

namespace {

// The text format escapes backslash and newline everywhere, and double quotes in label values.
std::string escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view value) { return escape(value, true); }

std::string escape_help(std::string_view help) { return escape(help, false); }

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Shortest text that reads back as the same double: "1", "0.25", "1e+21".
  std::array<char, 32> buffer{};
  const auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (error != std::errc()) return "NaN";
  return {buffer.data(), end};
}

// ---------------------------------------------------------------------------------------------

void Counter::inc(double amount) {
  if (amount < 0) throw std::invalid_argument("a counter cannot decrease");
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  // Buckets are "less than or equal": the first bound >= value. NaN only fits +Inf.
  const auto bucket =
      std::isnan(value)
          ? upper_bounds_.size()
          : static_cast<std::size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) -
                                     upper_bounds_.begin());
  const std::lock_guard lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  const std::lock_guard lock(mutex_);
  std::uint64_t running = 0;
  for (const auto count : counts_) {
    running += count;
    snapshot.cumulative.push_back(running);
  }
  snapshot.sum = sum_;
  snapshot.count = count_;
  return snapshot;
}

std::vector<double> default_latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (start <= 0 || factor <= 1 || count < 1)
    throw std::invalid_argument("exponential buckets need start > 0, factor > 1, count >= 1");
  std::vector<double> bounds;
  for (double bound = start; static_cast<int>(bounds.size()) < count; bound *= factor)
    bounds.push_back(bound);
  return bounds;
}

// ---------------------------------------------------------------------------------------------

Registry::Family& Registry::family(const std::string& name, Type type, const std::string& help,
                                   const Labels& labels, const std::vector<double>& upper_bounds) {
  if (!valid_name(name, true)) throw std::invalid_argument("invalid metric name '" + name + "'");
  for (const auto& [key, value] : labels) {
    if (!valid_name(key, false) || key.starts_with("__") || (type == Type::histogram && key == "le")) {
      throw std::invalid_argument(
          std::string("invalid label name '").append(key).append("' on metric ").append(name));
    }
  }
  auto [it, inserted] = families_.try_emplace(name, Family{type, help, upper_bounds, {}, {}, {}});
  Family& found = it->second;
  if (!inserted && (found.type != type || found.help != help || found.upper_bounds != upper_bounds)) {
    throw std::invalid_argument("metric " + name +
                                " is already registered with another type, help or buckets");
  }
  return found;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  const std::lock_guard lock(mutex_);
  auto& slot = family(name, Type::counter, help, labels, {}).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  const std::lock_guard lock(mutex_);
  auto& slot = family(name, Type::gauge, help, labels, {}).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const std::vector<double>& upper_bounds, const Labels& labels) {
  if (upper_bounds.empty() || !std::is_sorted(upper_bounds.begin(), upper_bounds.end()) ||
      std::adjacent_find(upper_bounds.begin(), upper_bounds.end()) != upper_bounds.end() ||
      std::any_of(upper_bounds.begin(), upper_bounds.end(), [](double b) { return !std::isfinite(b); })) {
    throw std::invalid_argument("histogram " + name + " needs finite, strictly increasing bucket bounds");
  }
  const std::lock_guard lock(mutex_);
  auto& slot = family(name, Type::histogram, help, labels, upper_bounds).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(upper_bounds);
  return *slot;
}

std::string Registry::render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + ' ' + escape_help(family.help) + '\n';
    switch (family.type) {
      case Type::counter:
        out += "# TYPE " + name + " counter\n";
        for (const auto& [labels, counter] : family.counters)
          append_sample(out, name, labels, format_value(counter->value()));
        break;
      case Type::gauge:
        out += "# TYPE " + name + " gauge\n";
        for (const auto& [labels, gauge] : family.gauges)
          append_sample(out, name, labels, format_value(gauge->value()));
        break;
      case Type::histogram:
        out += "# TYPE " + name + " histogram\n";
        for (const auto& [labels, histogram] : family.histograms) {
          const auto snapshot = histogram->snapshot();
          for (std::size_t i = 0; i <= snapshot.upper_bounds.size(); ++i) {
            const std::string le =
                i < snapshot.upper_bounds.size() ? format_value(snapshot.upper_bounds[i]) : "+Inf";
            append_sample(out, name + "_bucket", labels, std::to_string(snapshot.cumulative[i]), &le);
          }
          append_sample(out, name + "_sum", labels, format_value(snapshot.sum));
          append_sample(out, name + "_count", labels, std::to_string(snapshot.count));
        }
        break;
    }
  }
  return out;
}

Registry& default_registry() {
  static Registry registry;
  return registry;
}

}  // namespace syncline::metrics
