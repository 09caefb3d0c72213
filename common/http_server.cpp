// Operational HTTP server on cpp-httplib (see http_server.hpp).
#include "common/http_server.hpp"

#include <httplib.h>

#include <chrono>
#include <stdexcept>

#include "common/logging.hpp"

namespace syncline::http {

namespace {

// Runs a handler callback; a throwing callback answers 500 instead of killing the worker.
template <typename Fn>
void guarded(httplib::Response& response, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log::get("http")->error("HTTP handler failed: {}", e.what());
    response.status = 500;
    response.set_content(std::string("internal error: ") + e.what() + "\n", "text/plain");
  }
}

}  // namespace

HttpServer::HttpServer(ServerOptions options, const metrics::Registry& registry, ServerHandlers handlers)
    : options_(std::move(options)),
      registry_(registry),
      handlers_(std::move(handlers)),
      server_(std::make_unique<httplib::Server>()) {
  // cpp-httplib sets SO_REUSEPORT by default, which lets a second process bind the same port
  // and silently share its traffic; SO_REUSEADDR alone still allows a quick restart.
  server_->set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    guarded(response, [&] { response.set_content(registry_.render(), std::string(metrics::kContentType)); });
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    guarded(response, [&] {
      const Readiness readiness = handlers_.readiness ? handlers_.readiness() : Readiness{true, "ok"};
      response.status = readiness.ready ? 200 : 503;
      const std::string detail =
          readiness.detail.empty() ? (readiness.ready ? "ok" : "not ready") : readiness.detail;
      response.set_content(detail + "\n", "text/plain");
    });
  });
  server_->Get("/status", [this](const httplib::Request&, httplib::Response& response) {
    guarded(response, [&] {
      const nlohmann::json status = handlers_.status ? handlers_.status() : nlohmann::json::object();
      response.set_content(status.dump(), "application/json");
    });
  });
}

HttpServer::~HttpServer() { stop(); }

void log_serving(const std::string& host, int port) {
  log::get("http")->info("serving /metrics, /healthz, /readyz, /status on {}:{}", host, port);
}

void HttpServer::start() {
  if (thread_.joinable()) throw std::logic_error("HTTP server already started");
  const std::string address = options_.host + ":" + std::to_string(options_.port);
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ < 0) throw std::runtime_error("cannot bind the HTTP server to " + address);
  } else {
    if (!server_->bind_to_port(options_.host, options_.port)) {
      throw std::runtime_error("cannot bind the HTTP server to " + address);
    }
    port_ = options_.port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() is a no-op until the listen loop runs, so wait for it here (bounded: it only has to
  // enter the loop on an already bound socket).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log::get("http")->info("HTTP server listening on {}:{}", options_.host, port_);
}

void HttpServer::stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
  log::get("http")->info("HTTP server on {}:{} stopped", options_.host, port_);
}

}  // namespace syncline::http
