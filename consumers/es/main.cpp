// syncline-es-projector: indexes Syncline events from Kafka into Elasticsearch (or OpenSearch)
// through the bulk API, with external versions so that replays never overwrite newer documents.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "common/config.hpp"
#include "common/http_server.hpp"
#include "common/logging.hpp"
#include "common/metrics.hpp"
#include "common/shutdown.hpp"
#include "consumers/es/document_planner.hpp"
#include "consumers/es/es_projector_service.hpp"

int main(int argc, char** argv) {
  using namespace syncline;
  CLI::App app{
      "syncline-es-projector: indexes Syncline events from Kafka into Elasticsearch 8 / OpenSearch 2.\n"
      "Mirror: row-change topics become documents (_id = primary key, document = the row); mappings:\n"
      "domain events become documents with fields taken from JSON paths (index, partial update or\n"
      "delete). Every write carries version_type=external_gte with the source commit position, so a\n"
      "replay never overwrites newer data; partial updates compare a stored syncline_version first.\n"
      "Indices are written through aliases (<name> -> <name>_v1, created with the configured\n"
      "mappings). Offsets are committed to Kafka once every item of a bulk request is acknowledged,\n"
      "stale or dead-lettered; 429/5xx items are retried with back-off while partitions are paused.\n"
      "Serves /metrics, /healthz, /readyz and /status on es_projector.http. SIGTERM finishes the\n"
      "batch in hand and exits 0.\n\n"
      "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 configuration or state an operator must fix.",
      "syncline-es-projector"};
  std::string config_path = "syncline.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "Config file (see examples/syncline.example.yaml)")
      ->capture_default_str();
  app.add_flag("--check-config", check_only, "Validate the config file (and the mappings' JSON paths) and exit");
  app.set_version_flag("--version", SYNCLINE_VERSION);
  CLI11_PARSE(app, argc, argv);

  Config config;
  try {
    config = load_config(config_path);
    config.require_search();
    log::init(config.log);
    const es_projector::DocumentPlanner planner(config.es_projector, config.kafka.topic_prefix);
    if (planner.topics().empty()) {
      throw ConfigError(config_path + ": es_projector: configure mirror tables or at least one mapping");
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "syncline-es-projector: %s\n", redact_secrets(error.what()).c_str());
    return es_projector::kExitFatal;
  }
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }

  auto log = log::get("es-projector");
  shutdown::install_signal_handlers();
  auto& registry = metrics::default_registry();
  try {
    es_projector::EsProjectorService service(config, registry);
    const auto& http = config.es_projector.http;
    const auto server = http::serve(http.host, http.port, registry, service);
    return service.run();
  } catch (const std::exception& error) {
    log->critical("{}", redact_secrets(error.what()));
    return es_projector::kExitFatal;
  }
}
