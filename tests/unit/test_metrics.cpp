// Unit tests for the metrics registry and its Prometheus text exposition (format 0.0.4).
#include <gtest/gtest.h>

#include <limits>
#include <thread>

#include "common/metrics.hpp"

namespace syncline::metrics {
namespace {

TEST(MetricsRendering, CounterWithLabelsRendersHelpTypeAndSortedSeries) {
  Registry registry;
  registry.counter("syncline_events_total", "Events published.", {{"topic", "b"}}).inc(2);
  registry.counter("syncline_events_total", "Events published.", {{"topic", "a"}}).inc();
  EXPECT_EQ(registry.render(),
            "# HELP syncline_events_total Events published.\n"
            "# TYPE syncline_events_total counter\n"
            "syncline_events_total{topic=\"a\"} 1\n"
            "syncline_events_total{topic=\"b\"} 2\n");
}

TEST(MetricsRendering, GaugeWithoutLabelsAndFractionalValue) {
  Registry registry;
  Gauge& gauge = registry.gauge("syncline_lag_seconds", "Freshness of the projection.");
  gauge.set(3);
  gauge.inc(0.5);
  gauge.dec(1);
  EXPECT_EQ(registry.render(),
            "# HELP syncline_lag_seconds Freshness of the projection.\n"
            "# TYPE syncline_lag_seconds gauge\n"
            "syncline_lag_seconds 2.5\n");
}

TEST(MetricsRendering, LabelValuesEscapeBackslashQuoteAndNewline) {
  Registry registry;
  registry.gauge("g", "Help with \\ and\nnewline.", {{"path", "C:\\dir \"x\"\nnext"}, {"a", "1"}}).set(1);
  EXPECT_EQ(registry.render(),
            "# HELP g Help with \\\\ and\\nnewline.\n"
            "# TYPE g gauge\n"
            "g{a=\"1\",path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
}

TEST(MetricsRendering, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& histogram =
      registry.histogram("syncline_batch_seconds", "Batch latency.", {0.1, 0.5, 1}, {{"sink", "es"}});
  histogram.observe(0.05);
  histogram.observe(0.1);  // a bound is inclusive ("le")
  histogram.observe(0.3);
  histogram.observe(2);
  EXPECT_EQ(registry.render(),
            "# HELP syncline_batch_seconds Batch latency.\n"
            "# TYPE syncline_batch_seconds histogram\n"
            "syncline_batch_seconds_bucket{sink=\"es\",le=\"0.1\"} 2\n"
            "syncline_batch_seconds_bucket{sink=\"es\",le=\"0.5\"} 3\n"
            "syncline_batch_seconds_bucket{sink=\"es\",le=\"1\"} 3\n"
            "syncline_batch_seconds_bucket{sink=\"es\",le=\"+Inf\"} 4\n"
            "syncline_batch_seconds_sum{sink=\"es\"} 2.45\n"
            "syncline_batch_seconds_count{sink=\"es\"} 4\n");
}

TEST(MetricsRendering, EmptyHistogramWithoutLabels) {
  Registry registry;
  registry.histogram("h", "H.", {1});
  EXPECT_EQ(registry.render(),
            "# HELP h H.\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\n"
            "h_bucket{le=\"+Inf\"} 0\n"
            "h_sum 0\n"
            "h_count 0\n");
}

TEST(MetricsRendering, FamiliesAreSortedByName) {
  Registry registry;
  registry.gauge("zeta", "Z.").set(1);
  registry.counter("alpha_total", "A.").inc();
  EXPECT_EQ(registry.render(),
            "# HELP alpha_total A.\n# TYPE alpha_total counter\nalpha_total 1\n"
            "# HELP zeta Z.\n# TYPE zeta gauge\nzeta 1\n");
}

TEST(MetricsValues, SpecialValuesUsePrometheusSpelling) {
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.001), "0.001");
  EXPECT_EQ(format_value(-7.5), "-7.5");
}

TEST(MetricsRegistry, SameNameAndLabelsReturnTheSameMetric) {
  Registry registry;
  Counter& first = registry.counter("c_total", "C.", {{"k", "v"}});
  Counter& second = registry.counter("c_total", "C.", {{"k", "v"}});
  EXPECT_EQ(&first, &second);
}

TEST(MetricsRegistry, ConflictingRegistrationsAreRejected) {
  Registry registry;
  registry.counter("m", "M.");
  EXPECT_THROW(registry.gauge("m", "M."), std::invalid_argument);
  EXPECT_THROW(registry.counter("m", "Other help."), std::invalid_argument);
  registry.histogram("h", "H.", {1, 2});
  EXPECT_THROW(registry.histogram("h", "H.", {1, 3}), std::invalid_argument);
}

TEST(MetricsRegistry, InvalidNamesAndBucketsAreRejected) {
  Registry registry;
  EXPECT_THROW(registry.counter("1bad", "B."), std::invalid_argument);
  EXPECT_THROW(registry.counter("bad-name", "B."), std::invalid_argument);
  EXPECT_THROW(registry.counter("ok", "B.", {{"bad-label", "x"}}), std::invalid_argument);
  EXPECT_THROW(registry.counter("ok", "B.", {{"__reserved", "x"}}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h", "H.", {1}, {{"le", "x"}}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h", "H.", {2, 1}), std::invalid_argument);
  EXPECT_THROW(registry.histogram("h", "H.", {}), std::invalid_argument);
}

TEST(MetricsRegistry, CounterCannotDecrease) {
  Registry registry;
  EXPECT_THROW(registry.counter("c_total", "C.").inc(-1), std::invalid_argument);
}

TEST(MetricsRegistry, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  Counter& counter = registry.counter("c_total", "C.");
  Histogram& histogram = registry.histogram("h", "H.", {1});
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.inc();
        histogram.observe(0.5);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), 40000);
  EXPECT_EQ(histogram.snapshot().count, 40000u);
}

TEST(MetricsBuckets, ExponentialBuckets) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_THROW(exponential_buckets(0, 2, 4), std::invalid_argument);
}

}  // namespace
}  // namespace syncline::metrics
