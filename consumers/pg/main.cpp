// syncline-pg-projector: applies events from Kafka to the read PostgreSQL (mirror tables and
// declarative SQL projections), exactly once, with offsets stored in the read database.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "common/config.hpp"
#include "common/http_server.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "common/shutdown.hpp"
#include "consumers/pg/mirror_projection.hpp"
#include "consumers/pg/projector_service.hpp"
#include "consumers/pg/sql_projection.hpp"

namespace {

std::vector<std::unique_ptr<syncline::pg_projector::Projection>> projections_from(const syncline::Config& config) {
  using namespace syncline::pg_projector;
  std::vector<std::unique_ptr<Projection>> projections;
  if (config.pg_projector.mirror) {
    projections.push_back(std::make_unique<MirrorProjection>(*config.pg_projector.mirror, config.kafka.topic_prefix,
                                                               config.pg_projector.group_id));
  }
  for (const auto& projection : config.pg_projector.projections) {
    projections.push_back(std::make_unique<SqlProjection>(projection));
  }
  return projections;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace syncline;
  CLI::App app{
      "syncline-pg-projector: applies Syncline events from Kafka to the read PostgreSQL.\n"
      "Mirror projections copy row-change topics into same-named tables of a read schema; SQL\n"
      "projections run the statements configured per event type with parameters bound from the\n"
      "event (:payload.x, :occurred_at, :source.commit_lsn). Each batch is one transaction that\n"
      "also advances syncline.offsets, so every event takes effect exactly once. Instances with\n"
      "the same pg_projector.group_id share the partitions. Events that can never apply go to the\n"
      "dead-letter topic; transient failures are retried with back-off while partitions are paused.\n"
      "Serves /metrics, /healthz, /readyz and /status on pg_projector.http. SIGTERM applies the\n"
      "batch in hand and exits 0.\n\n"
      "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 configuration or state an operator must fix.",
      "syncline-pg-projector"};
  std::string config_path = "syncline.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "Config file (see examples/syncline.example.yaml)")
      ->capture_default_str();
  app.add_flag("--check-config", check_only, "Validate the config file (and compile the projections' SQL) and exit");
  app.set_version_flag("--version", SYNCLINE_VERSION);
  CLI11_PARSE(app, argc, argv);

  Config config;
  std::vector<std::unique_ptr<pg_projector::Projection>> projections;
  try {
    config = load_config(config_path);
    config.require_read_db();
    log::init(config.log);
    projections = projections_from(config);
    if (projections.empty()) {
      throw ConfigError(config_path + ": pg_projector: configure mirror.tables or at least one projection");
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "syncline-pg-projector: %s\n", redact_secrets(error.what()).c_str());
    return pg_projector::kExitFatal;
  }
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  auto log = log::get("pg-projector");
  shutdown::install_signal_handlers();
  auto& registry = metrics::default_registry();
  try {
    pg_projector::ProjectorService service(config, registry, std::move(projections));
    const auto& http = config.pg_projector.http;
    const auto server = http::serve(http.host, http.port, registry, service);
    return service.run();
  } catch (const std::exception& error) {
    log->critical("{}", error.what());
    return pg_projector::kExitFatal;
  }
}
