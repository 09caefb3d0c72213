// Integration test: the operational HTTP server scraped over real HTTP with the curl client.
#include <gtest/gtest.h>

#include <atomic>

#include "common/http_client.hpp"
#include "common/http_server.hpp"

namespace syncline::http {
namespace {

TEST(MetricsScrape, ServesMetricsHealthReadinessAndStatusOverHttp) {
  metrics::Registry registry;
  metrics::Counter& events = registry.counter("syncline_events_total", "Events published.", {{"topic", "t"}});
  metrics::Histogram& latency = registry.histogram("syncline_batch_seconds", "Batch latency.", {0.5, 1});
  std::atomic<bool> ready{false};
  HttpServer server(ServerOptions{"127.0.0.1", 0}, registry,
                    {.readiness =
                         [&] {
                           return Readiness{ready.load(), ""};
                         },
                     .status =
                         [&] {
                           return nlohmann::json{{"events", events.value()}};
                         }});
  server.start();
  HttpClient client(ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(server.port())});

  events.inc(3);
  latency.observe(0.7);
  Response response = client.get("/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(response.body.find("syncline_events_total{topic=\"t\"} 3\n"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("syncline_batch_seconds_bucket{le=\"0.5\"} 0\n"), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("syncline_batch_seconds_bucket{le=\"1\"} 1\n"), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("syncline_batch_seconds_count 1\n"), std::string::npos) << response.body;

  events.inc();
  response = client.get("/metrics");  // same keep-alive connection
  EXPECT_NE(response.body.find("syncline_events_total{topic=\"t\"} 4\n"), std::string::npos) << response.body;

  EXPECT_EQ(client.get("/healthz").status, 200);
  EXPECT_EQ(client.get("/readyz").status, 503);
  ready = true;
  EXPECT_EQ(client.get("/readyz").status, 200);

  response = client.get("/status");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(nlohmann::json::parse(response.body)["events"], 4);

  server.stop();
  EXPECT_THROW(client.get("/healthz"), HttpError);
}

}  // namespace
}  // namespace syncline::http
