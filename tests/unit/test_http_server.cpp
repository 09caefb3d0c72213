// Unit tests for the operational HTTP server on a loopback ephemeral port.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>

#include "common/http_server.hpp"

namespace syncline::http {
namespace {

class HttpServerTest : public ::testing::Test {
 protected:
  void start(ServerHandlers handlers) {
    server_ = std::make_unique<HttpServer>(ServerOptions{"127.0.0.1", 0}, registry_, std::move(handlers));
    server_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }

  metrics::Registry registry_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpServerTest, EphemeralPortIsReported) {
  start({});
  EXPECT_GT(server_->port(), 0);
}

TEST_F(HttpServerTest, MetricsServesTheRegistryAsPrometheusText) {
  registry_.counter("requests_total", "Requests.").inc(3);
  start({});
  const auto response = client_->Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response->body, registry_.render());
}

TEST_F(HttpServerTest, HealthzIsAlwaysOk) {
  start({.readiness = [] { return Readiness{false, "kafka down"}; }, .status = {}});
  const auto response = client_->Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpServerTest, ReadyzFollowsTheReadinessCallback) {
  std::atomic<bool> ready{false};
  start({.readiness =
             [&] {
               return Readiness{ready.load(), ready ? "" : "waiting for the first assignment"};
             },
         .status = {}});
  auto response = client_->Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->body, "waiting for the first assignment\n");
  ready = true;
  response = client_->Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpServerTest, ReadyzWithoutCallbackIsReady) {
  start({});
  const auto response = client_->Get("/readyz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpServerTest, StatusServesTheCallbackJson) {
  start({.readiness = {}, .status = [] { return nlohmann::json{{"component", "test"}, {"lag", 3}}; }});
  const auto response = client_->Get("/status");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(nlohmann::json::parse(response->body), (nlohmann::json{{"component", "test"}, {"lag", 3}}));
}

TEST_F(HttpServerTest, ThrowingCallbackAnswers500AndTheServerKeepsServing) {
  start({.readiness = {}, .status = []() -> nlohmann::json { throw std::runtime_error("boom"); }});
  auto response = client_->Get("/status");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  response = client_->Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  start({});
  const auto response = client_->Get("/nope");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
}

TEST_F(HttpServerTest, StopIsIdempotentAndClosesThePort) {
  start({});
  server_->stop();
  server_->stop();
  client_->set_connection_timeout(std::chrono::seconds(1));
  EXPECT_FALSE(client_->Get("/healthz"));
}

TEST_F(HttpServerTest, BindingABusyPortFailsWithTheAddress) {
  start({});
  HttpServer second(ServerOptions{"127.0.0.1", server_->port()}, registry_, {});
  try {
    second.start();
    FAIL() << "expected the bind to fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server_->port())), std::string::npos);
  }
}

}  // namespace
}  // namespace syncline::http
