// Operational HTTP server every binary runs: /metrics, /healthz, /readyz and /status.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/metrics.hpp"

namespace httplib {
class Server;
}

namespace syncline::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port, see HttpServer::port()
};

struct Readiness {
  bool ready = false;
  std::string detail;  // why not ready (or a short "ok"), shown in the /readyz body
};

// The callbacks run on the server's worker threads: they must be thread-safe and quick.
struct ServerHandlers {
  std::function<Readiness()> readiness{};    // unset: always ready
  std::function<nlohmann::json()> status{};  // unset: {}
};

// Serves in its own threads from start() until stop() or destruction. Owned by main().
class HttpServer {
 public:
  HttpServer(ServerOptions options, const metrics::Registry& registry, ServerHandlers handlers);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving; throws std::runtime_error naming host:port if binding fails.
  void start();
  // The bound port (the real one when options.port was 0); valid after start().
  int port() const noexcept { return port_; }
  // Stops accepting and joins the server thread. Idempotent.
  void stop();

 private:
  ServerOptions options_;
  const metrics::Registry& registry_;
  ServerHandlers handlers_;
  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;  // after server_: joined (in stop) before the server is destroyed
};

// The "serving /metrics, ... on host:port" line.
void log_serving(const std::string& host, int port);

// What every binary's main() does: serve on host:port for the service's handlers, started and
// logged; nullptr when `port` is 0 (the server turned off). Throws as HttpServer::start().
template <typename Service>
std::unique_ptr<HttpServer> serve(const std::string& host, int port, const metrics::Registry& registry,
                                  Service& service) {
  if (port == 0) return nullptr;
  auto server = std::make_unique<HttpServer>(
      ServerOptions{host, port}, registry,
      ServerHandlers{[&service] { return service.readiness(); }, [&service] { return service.status(); }});
  server->start();
  log_serving(host, server->port());
  return server;
}

}  // namespace syncline::http
