// syncline-producer: streams the write database's WAL (outbox rows, logical messages, row changes)
// into Kafka, exactly once.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "common/config.hpp"
#include "common/http_server.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "common/shutdown.hpp"
#include "producer/producer_service.hpp"

int main(int argc, char** argv) {
  using namespace syncline;
  CLI::App app{
      "syncline-producer: reads committed transactions of the write PostgreSQL through a logical\n"
      "replication slot (pgoutput) and publishes outbox rows, pg_logical_emit_message() events and\n"
      "row changes of captured tables to Kafka, exactly once (Kafka transactions + a stored position).\n"
      "Serves /metrics, /healthz, /readyz and /status on producer.http. SIGTERM commits the open\n"
      "batch, confirms it to PostgreSQL and exits 0.\n\n"
      "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 configuration or state an operator must fix,\n"
      "2 fenced by another producer with the same transactional.id.",
      "syncline-producer"};
  std::string config_path = "syncline.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "Config file (see examples/syncline.example.yaml)")
      ->capture_default_str();
  app.add_flag("--check-config", check_only, "Validate the config file and exit");
  app.set_version_flag("--version", SYNCLINE_VERSION);
  CLI11_PARSE(app, argc, argv);

  Config config;
  try {
    config = load_config(config_path);
    config.require_write_db();
    log::init(config.log);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "syncline-producer: %s\n", redact_secrets(error.what()).c_str());
    return producer::kExitFatal;
  }
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  auto log = log::get("producer");
  shutdown::install_signal_handlers();
  auto& registry = metrics::default_registry();
  try {
    producer::ProducerService service(config, registry);
    const auto& http = config.producer.http;
    const auto server = http::serve(http.host, http.port, registry, service);
    return service.run();
  } catch (const std::exception& error) {
    log->critical("{}", error.what());
    return producer::kExitFatal;
  }
}
