// Config: syncline.yaml loaded once (env substitution, schema validation) into typed structs.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/logging.hpp"

namespace syncline {

// Every problem of a config file, one per line: "<file>:<line>: <key.path>: <problem>".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using LogConfig = log::Options;

struct HttpConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: no HTTP server
};

inline HttpConfig http_on_port(std::uint16_t port) {
  HttpConfig http;
  http.port = port;
  return http;
}

struct KafkaConfig {
  std::string bootstrap_servers;
  std::string client_id = "syncline";
  std::string topic_prefix = "syncline";
  std::map<std::string, std::string> properties;  // librdkafka properties, as written
};

struct PostgresConfig {
  std::string dsn;
};

struct SearchConfig {
  std::string url;
  std::string username;  // basic auth when set
  std::string password;
  std::string api_key;  // "Authorization: ApiKey" when set
  std::string ca_file;  // empty: the system's CA store
  bool verify_tls = true;
  std::chrono::milliseconds request_timeout{30'000};
};

// One struct per binary; later features add their settings here and in schemas/config.schema.json.
enum class SnapshotMode { initial, never };

struct TableName {
  std::string schema;
  std::string table;
  friend bool operator==(const TableName&, const TableName&) = default;
};

// "schema.table", or "table" meaning public.table.
TableName parse_table_name(std::string_view text);

struct ProducerConfig {
  HttpConfig http = http_on_port(9631);
  std::string slot = "syncline";
  std::string publication = "syncline";
  bool create_slot = true;
  bool create_publication = true;
  SnapshotMode snapshot = SnapshotMode::initial;
  std::optional<TableName> outbox_table = TableName{"public", "outbox"};
  std::string message_prefix = "syncline";
  std::vector<TableName> capture;
  int partitions = 3;
  int replication_factor = -1;
  std::string transactional_id;  // empty: "syncline-producer-<slot>"
  std::size_t batch_max_events = 10'000;
  std::chrono::milliseconds batch_max{100};
  std::chrono::milliseconds heartbeat_interval{10'000};
  std::chrono::milliseconds status_interval{1'000};
  std::uint64_t slot_lag_warning_bytes = 1ULL << 30;
  std::size_t max_message_bytes = 1'000'000;
  std::chrono::milliseconds retry_max_backoff{30'000};
  // A snapshot (the initial one, syncline-ctl resync snapshot) takes a new one at least this often,
  // so no row is published longer than this after it was read: the bound the sinks' delete horizon
  // (tombstone_retention, delete_retention) must exceed. Tables without a key are read in one.
  std::chrono::milliseconds snapshot_max_age{std::chrono::minutes(10)};
  std::size_t snapshot_chunk_rows = 1000;
};

// Row-change topics of `tables` mirrored into same-named tables of the read schema `schema`.
struct MirrorConfig {
  std::string schema = "mirror";
  std::vector<TableName> tables;
  // How long a deleted row's position is remembered, so an older change replayed later (a
  // resync snapshot overlapping the live stream) cannot bring it back.
  std::chrono::milliseconds tombstone_retention{std::chrono::hours(24)};
};

// Statements run, in order, for each event whose type is one of `types`.
struct SqlHandlerConfig {
  std::vector<std::string> types;
  std::vector<std::string> statements;  // SQL with :named.json.path parameters
};

struct SqlProjectionConfig {
  std::string name;
  std::vector<std::string> topics;  // full topic names (aggregate_types resolved with the prefix)
  // The read schema the projection writes into; empty: wherever its SQL says. Its setup and
  // statements may write {{schema}}, replaced by the quoted identifier when they are compiled, so
  // `syncline-ctl resync replay` can compile the same SQL against a shadow schema.
  std::string schema;
  std::string setup;                // idempotent SQL run on every (re)connect; empty: none
  std::vector<SqlHandlerConfig> handlers;
};

struct PgProjectorConfig {
  HttpConfig http = http_on_port(9632);
  std::string group_id = "syncline-pg-projector";
  std::size_t batch_max_events = 1000;
  std::chrono::milliseconds batch_max{50};
  std::chrono::milliseconds retry_max_backoff{30'000};
  std::string dead_letter_topic;  // empty: "<prefix>.dlq.pg-projector"
  std::optional<MirrorConfig> mirror;
  std::vector<SqlProjectionConfig> projections;
};

// An index the es-projector writes through an alias: `name` is the alias, the physical index is
// <name>_v<N> (created as <name>_v1 with these settings and mappings when the alias is absent).
struct EsIndexConfig {
  std::string name;
  std::string settings_json = "{}";  // JSON object text
  std::string mappings_json = "{}";  // JSON object text (the "mappings" body)
};

// Row-change topic of `table` -> documents of the index (alias) `index`, _id = primary key.
struct EsMirrorConfig {
  TableName table;
  std::string index;
};

enum class EsAction { index, update, remove };

// Per event type: which document of `index` the event writes, and how.
struct EsEventMappingConfig {
  std::vector<std::string> types;
  EsAction action = EsAction::index;
  std::string id;  // JSON path of the document id in the envelope, e.g. "payload.message_id"
  std::vector<std::pair<std::string, std::string>> fields;  // document field -> JSON path ("?" suffix: optional)
};

struct EsMappingConfig {
  std::string index;                // alias
  std::vector<std::string> topics;  // full names (aggregate_types resolved with the prefix)
  std::vector<EsEventMappingConfig> events;
};

struct EsProjectorConfig {
  HttpConfig http = http_on_port(9633);
  std::string group_id = "syncline-es-projector";
  std::size_t bulk_max_actions = 1000;
  std::size_t bulk_max_bytes = 5'000'000;
  std::chrono::milliseconds bulk_max{200};
  std::chrono::milliseconds retry_max_backoff{30'000};
  // index.gc_deletes of every index written: how long a delete's tombstone keeps an older write
  // (a snapshot row, a replay) from bringing the document back.
  std::chrono::milliseconds delete_retention{24 * 60 * 60 * 1000};
  bool gzip = false;
  std::string dead_letter_topic;  // empty: "<prefix>.dlq.es-projector"
  std::vector<EsIndexConfig> indices;
  std::vector<EsMirrorConfig> mirror;
  std::vector<EsMappingConfig> mappings;
};

struct CtlConfig {
  HttpConfig http = http_on_port(9634);
};

struct Config {
  std::string source;  // file name (or the name given to config_from_string), for messages

  LogConfig log;
  KafkaConfig kafka;
  // Optional so that a deployment without e.g. Elasticsearch needs no dummy section.
  std::optional<PostgresConfig> write_db;
  std::optional<PostgresConfig> read_db;
  std::optional<SearchConfig> search;

  ProducerConfig producer;
  PgProjectorConfig pg_projector;
  EsProjectorConfig es_projector;
  CtlConfig ctl;

  // The section a binary cannot work without; throws ConfigError naming the file and the section.
  const PostgresConfig& require_write_db() const;
  const PostgresConfig& require_read_db() const;
  const SearchConfig& require_search() const;
};

// Looks up an environment variable; std::nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

std::optional<std::string> process_env(const std::string& name);

// schemas/config.schema.json below schema_dir() ($SYNCLINE_SCHEMA_DIR or the source tree).
std::filesystem::path default_schema_path();

struct LoadOptions {
  EnvLookup env = process_env;
  // Empty: the schema compiled into the binary (schemas/config.schema.json at build time).
  std::filesystem::path schema{};
};

// Replaces ${VAR} and ${VAR:-default} (default also when VAR is empty); "$$" is a literal '$'.
// Throws std::invalid_argument naming the variable when it is unset and has no default.
std::string expand_env(std::string_view text, const EnvLookup& env);

// Reads, substitutes, validates and converts; throws ConfigError listing every problem found.
Config load_config(const std::filesystem::path& file, const LoadOptions& options = {});
Config config_from_string(std::string_view yaml, std::string_view name, const LoadOptions& options = {});

}  // namespace syncline
