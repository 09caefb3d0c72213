// Config loading: YAML -> ${ENV} substitution -> JSON -> schema validation -> typed structs.
#include "common/config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include "common/json_schema.hpp"
#include "common/topic_names.hpp"

namespace syncline {

using nlohmann::json;

namespace {

bool is_variable_name(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front())) != 0) return false;
  for (const char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_') return false;
  }
  return true;
}

// A plain (unquoted) YAML scalar typed by the YAML 1.2 core schema, which JSON Schema then checks.
json plain_scalar_to_json(const std::string& text) {
  static const std::regex null_form("~|null|Null|NULL");
  static const std::regex true_form("true|True|TRUE");
  static const std::regex false_form("false|False|FALSE");
  static const std::regex int_form("[-+]?[0-9]+");
  static const std::regex float_form(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (text.empty() || std::regex_match(text, null_form)) return nullptr;
  if (std::regex_match(text, true_form)) return true;
  if (std::regex_match(text, false_form)) return false;
  if (std::regex_match(text, int_form)) {
    const char* begin = text.data() + (text.front() == '+' ? 1 : 0);
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(begin, text.data() + text.size(), value);
    if (error == std::errc{} && end == text.data() + text.size()) return value;
  }
  if (std::regex_match(text, float_form)) return std::strtod(text.c_str(), nullptr);
  return text;
}

std::string key_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

// Converts a YAML tree to JSON, substituting ${ENV} in scalars. Substituting after parsing (not in
// the raw text) keeps comments inert, keeps lines exact and lets a value contain ':' or '#' safely.
class YamlToJson {
 public:
  YamlToJson(std::string_view source, const EnvLookup& env) : source_(source), env_(env) {}

  json convert(const YAML::Node& node, const std::string& path) {
    switch (node.Type()) {
      case YAML::NodeType::Map:
        return convert_map(node, path);
      case YAML::NodeType::Sequence: {
        json array = json::array();
        for (std::size_t i = 0; i < node.size(); ++i)
          array.push_back(convert(node[i], fmt::format("{}[{}]", path, i)));
        return array;
      }
      case YAML::NodeType::Scalar:
        return convert_scalar(node, path);
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return nullptr;
    }
    return nullptr;
  }

  std::vector<std::string> problems;

 private:
  json convert_map(const YAML::Node& node, const std::string& path) {
    json object = json::object();
    for (const auto& entry : node) {
      if (!entry.first.IsScalar()) {
        problem(entry.first.Mark(), path, "keys must be plain names");
        continue;
      }
      const auto& key = entry.first.Scalar();
      if (object.contains(key)) {
        problem(entry.first.Mark(), key_path(path, key), "duplicate key");
        continue;
      }
      object[key] = convert(entry.second, key_path(path, key));
    }
    return object;
  }

  json convert_scalar(const YAML::Node& node, const std::string& path) {
    std::string text = node.Scalar();
    const bool has_variable = text.find('$') != std::string::npos;
    if (has_variable) {
      try {
        text = expand_env(text, env_);
      } catch (const std::invalid_argument& e) {
        problem(node.Mark(), path, e.what());
        return nullptr;
      }
    }
    // "?" marks a plain scalar; quoted or explicitly tagged ones stay strings.
    if (node.Tag() != "?") return text;
    // An empty variable means "empty string", not "key absent" as an empty plain scalar would.
    if (has_variable && text.empty()) return text;
    return plain_scalar_to_json(text);
  }

  void problem(const YAML::Mark& mark, std::string_view path, std::string_view message) {
    problems.push_back(
        fmt::format("{}:{}: {}: {}", source_, mark.line + 1, path.empty() ? "(top level)" : path, message));
  }

  std::string_view source_;
  const EnvLookup& env_;
};

// The line a violation points at: the key of the deepest part of the path that exists in the file.
int line_of(const YAML::Node& node, const SchemaPath& path, std::size_t depth, int line) {
  if (depth == path.size()) return line;
  const auto& step = path[depth];
  if (const auto* key = std::get_if<std::string>(&step); key != nullptr && node.IsMap()) {
    for (const auto& entry : node) {
      if (entry.first.IsScalar() && entry.first.Scalar() == *key) {
        return line_of(entry.second, path, depth + 1, entry.first.Mark().line + 1);
      }
    }
  } else if (const auto* index = std::get_if<std::size_t>(&step); index != nullptr && node.IsSequence()) {
    if (*index < node.size()) {
      const YAML::Node item = node[*index];
      return line_of(item, path, depth + 1, item.Mark().line + 1);
    }
  }
  return line;
}

std::string_view line_text(std::string_view text, int line) {
  for (int i = 0; i < line; ++i) {
    const auto newline = text.find('\n');
    if (newline == std::string_view::npos) return {};
    text.remove_prefix(newline + 1);
  }
  return text.substr(0, text.find('\n'));
}

[[noreturn]] void fail(const std::vector<std::string>& problems) {
  throw ConfigError(fmt::format("{}", fmt::join(problems, "\n")));
}

template <typename T>
void read(const json& object, const char* key, T& out) {
  if (const auto it = object.find(key); it != object.end()) out = it->get<T>();
}

const json& section(const json& document, const char* name) {
  static const json empty = json::object();
  const auto it = document.find(name);
  return it != document.end() ? *it : empty;
}

void read_http(const json& component, HttpConfig& http) {
  const auto& object = section(component, "http");
  read(object, "host", http.host);
  read(object, "port", http.port);
}

std::optional<PostgresConfig> read_postgres(const json& document, const char* name) {
  if (!document.contains(name)) return std::nullopt;
  PostgresConfig postgres;
  read(document[name], "dsn", postgres.dsn);
  return postgres;
}

std::chrono::milliseconds read_ms(const json& object, const char* key, std::chrono::milliseconds fallback) {
  return object.contains(key) ? std::chrono::milliseconds(object[key].get<std::int64_t>()) : fallback;
}

void read_producer(const json& object, ProducerConfig& out) {
  read_http(object, out.http);
  read(object, "slot", out.slot);
  read(object, "publication", out.publication);
  read(object, "create_slot", out.create_slot);
  read(object, "create_publication", out.create_publication);
  if (object.value("snapshot", "initial") == "never") out.snapshot = SnapshotMode::never;
  if (object.contains("outbox_table")) {
    const auto name = object["outbox_table"].get<std::string>();
    out.outbox_table = name.empty() ? std::nullopt : std::optional(parse_table_name(name));
  }
  read(object, "message_prefix", out.message_prefix);
  for (const auto& table : object.value("capture", json::array())) {
    out.capture.push_back(parse_table_name(table.get<std::string>()));
  }
  read(object, "partitions", out.partitions);
  read(object, "replication_factor", out.replication_factor);
  read(object, "transactional_id", out.transactional_id);
  read(object, "batch_max_events", out.batch_max_events);
  out.batch_max = read_ms(object, "batch_max_ms", out.batch_max);
  out.heartbeat_interval = read_ms(object, "heartbeat_interval_ms", out.heartbeat_interval);
  out.status_interval = read_ms(object, "status_interval_ms", out.status_interval);
  read(object, "slot_lag_warning_bytes", out.slot_lag_warning_bytes);
  read(object, "max_message_bytes", out.max_message_bytes);
  out.retry_max_backoff = read_ms(object, "retry_max_backoff_ms", out.retry_max_backoff);
  out.snapshot_max_age = read_ms(object, "snapshot_max_age_ms", out.snapshot_max_age);
  read(object, "snapshot_chunk_rows", out.snapshot_chunk_rows);
  if (out.transactional_id.empty()) out.transactional_id = "syncline-producer-" + out.slot;
}

// A string or a list of strings (the schema's one_or_more_strings).
std::vector<std::string> read_strings(const json& object, const char* key) {
  std::vector<std::string> out;
  if (const auto it = object.find(key); it != object.end()) {
    if (it->is_string()) {
      out.push_back(it->get<std::string>());
    } else {
      for (const auto& item : *it) out.push_back(item.get<std::string>());
    }
  }
  return out;
}

void read_pg_projector(const json& object, const std::string& topic_prefix, std::string_view source,
                       PgProjectorConfig& out) {
  read_http(object, out.http);
  read(object, "group_id", out.group_id);
  read(object, "batch_max_events", out.batch_max_events);
  out.batch_max = read_ms(object, "batch_max_ms", out.batch_max);
  out.retry_max_backoff = read_ms(object, "retry_max_backoff_ms", out.retry_max_backoff);
  read(object, "dead_letter_topic", out.dead_letter_topic);
  if (out.dead_letter_topic.empty()) out.dead_letter_topic = dead_letter_topic_name(topic_prefix, "pg-projector");
  std::vector<std::string> problems;
  if (object.contains("mirror")) {
    const auto& mirror = object["mirror"];
    MirrorConfig& config = out.mirror.emplace();
    read(mirror, "schema", config.schema);
    config.tombstone_retention = read_ms(mirror, "tombstone_retention_ms", config.tombstone_retention);
    std::set<std::string> targets;
    for (const auto& table : mirror["tables"]) {
      config.tables.push_back(parse_table_name(table.get<std::string>()));
      if (!targets.insert(config.tables.back().table).second) {
        problems.push_back(fmt::format("{}: pg_projector.mirror.tables: two tables would both be mirrored as {}.{}",
                                       source, config.schema, config.tables.back().table));
      }
    }
  }
  std::set<std::string> names;
  for (const auto& projection : object.value("projections", json::array())) {
    SqlProjectionConfig& config = out.projections.emplace_back();
    read(projection, "name", config.name);
    if (!names.insert(config.name).second || (out.mirror && config.name == "mirror")) {
      problems.push_back(fmt::format("{}: pg_projector.projections: the name '{}' is used twice", source, config.name));
    }
    for (const auto& type : read_strings(projection, "aggregate_types"))
      config.topics.push_back(event_topic_name(topic_prefix, type));
    for (auto& topic : read_strings(projection, "topics")) config.topics.push_back(std::move(topic));
    read(projection, "schema", config.schema);
    read(projection, "setup", config.setup);
    bool uses_placeholder = config.setup.find("{{schema}}") != std::string::npos;
    for (const auto& handler : projection["events"]) {
      config.handlers.push_back({read_strings(handler, "types"), read_strings(handler, "sql")});
      for (const auto& sql : config.handlers.back().statements)
        uses_placeholder = uses_placeholder || sql.find("{{schema}}") != std::string::npos;
    }
    if (uses_placeholder && config.schema.empty()) {
      problems.push_back(fmt::format("{}: pg_projector.projections: '{}' writes {{{{schema}}}} but has no 'schema' key",
                                     source, config.name));
    }
  }
  if (!problems.empty()) fail(problems);
}

void read_es_projector(const json& object, const std::string& topic_prefix, std::string_view source,
                       EsProjectorConfig& out) {
  read_http(object, out.http);
  read(object, "group_id", out.group_id);
  read(object, "bulk_max_actions", out.bulk_max_actions);
  read(object, "bulk_max_bytes", out.bulk_max_bytes);
  out.bulk_max = read_ms(object, "bulk_max_ms", out.bulk_max);
  out.retry_max_backoff = read_ms(object, "retry_max_backoff_ms", out.retry_max_backoff);
  out.delete_retention = read_ms(object, "delete_retention_ms", out.delete_retention);
  read(object, "gzip", out.gzip);
  read(object, "dead_letter_topic", out.dead_letter_topic);
  if (out.dead_letter_topic.empty()) out.dead_letter_topic = dead_letter_topic_name(topic_prefix, "es-projector");
  std::vector<std::string> problems;
  std::set<std::string> defined;
  for (const auto& index : object.value("indices", json::array())) {
    EsIndexConfig& config = out.indices.emplace_back();
    read(index, "name", config.name);
    if (index.contains("settings")) config.settings_json = index["settings"].dump();
    if (index.contains("mappings")) config.mappings_json = index["mappings"].dump();
    if (!defined.insert(config.name).second) {
      problems.push_back(fmt::format("{}: es_projector.indices: the index '{}' is defined twice", source, config.name));
    }
  }
  for (const auto& mirror : object.value("mirror", json::array())) {
    EsMirrorConfig& config = out.mirror.emplace_back();
    config.table = parse_table_name(mirror["table"].get<std::string>());
    config.index = mirror.value("index", config.table.table);
  }
  for (const auto& mapping : object.value("mappings", json::array())) {
    EsMappingConfig& config = out.mappings.emplace_back();
    read(mapping, "index", config.index);
    for (const auto& type : read_strings(mapping, "aggregate_types"))
      config.topics.push_back(event_topic_name(topic_prefix, type));
    for (auto& topic : read_strings(mapping, "topics")) config.topics.push_back(std::move(topic));
    for (const auto& event : mapping["events"]) {
      EsEventMappingConfig& handler = config.events.emplace_back();
      handler.types = read_strings(event, "types");
      const auto action = event.value("action", "index");
      handler.action = action == "update" ? EsAction::update : action == "delete" ? EsAction::remove : EsAction::index;
      read(event, "id", handler.id);
      if (const auto fields = event.find("fields"); fields != event.end()) {
        for (const auto& [field, path] : fields->items()) handler.fields.emplace_back(field, path.get<std::string>());
      }
    }
  }
  // Every written index needs a definition; one without is created with default settings.
  std::vector<std::string> used;
  for (const auto& mirror : out.mirror) used.push_back(mirror.index);
  for (const auto& mapping : out.mappings) used.push_back(mapping.index);
  for (const auto& name : used) {
    if (defined.insert(name).second) out.indices.push_back({name, "{}", "{}"});
  }
  if (!problems.empty()) fail(problems);
}

// Only called on a document that passed the schema, so types and enums are known to be right.
Config to_config(const json& document, std::string_view source) {
  Config config;
  config.source = source;

  const auto& log = section(document, "log");
  read(log, "level", config.log.level);
  if (log.value("format", "text") == "json") config.log.format = log::Format::json;

  const auto& kafka = section(document, "kafka");
  read(kafka, "bootstrap_servers", config.kafka.bootstrap_servers);
  read(kafka, "client_id", config.kafka.client_id);
  read(kafka, "topic_prefix", config.kafka.topic_prefix);
  for (const auto& [name, value] : section(kafka, "properties").items()) {
    // librdkafka takes every property as a string; "linger.ms: 5" is written as a number in YAML.
    config.kafka.properties[name] = value.is_string() ? value.get<std::string>() : value.dump();
  }

  config.write_db = read_postgres(document, "write_db");
  config.read_db = read_postgres(document, "read_db");
  if (document.contains("search")) {
    const auto& search = document["search"];
    SearchConfig& out = config.search.emplace();
    read(search, "url", out.url);
    read(search, "username", out.username);
    read(search, "password", out.password);
    read(search, "api_key", out.api_key);
    read(search, "ca_file", out.ca_file);
    read(search, "verify_tls", out.verify_tls);
    if (search.contains("request_timeout_ms")) {
      out.request_timeout = std::chrono::milliseconds(search["request_timeout_ms"].get<std::int64_t>());
    }
  }

  read_producer(section(document, "producer"), config.producer);
  read_pg_projector(section(document, "pg_projector"), config.kafka.topic_prefix, source, config.pg_projector);
  read_es_projector(section(document, "es_projector"), config.kafka.topic_prefix, source, config.es_projector);
  read_http(section(document, "ctl"), config.ctl.http);
  // A snapshot row may reach a sink up to snapshot_max_age after a newer delete of its key: the
  // sinks must remember deletes at least that long (docs/PG_PROJECTOR.md, docs/ES_PROJECTOR.md).
  std::vector<std::string> problems;
  const auto snapshot_max_age = config.producer.snapshot_max_age;
  if (config.pg_projector.mirror && config.pg_projector.mirror->tombstone_retention < snapshot_max_age) {
    problems.push_back(fmt::format(
        "{}: pg_projector.mirror.tombstone_retention_ms ({}) is below producer.snapshot_max_age_ms ({}): a "
        "snapshot row older than a delete could bring the deleted row back",
        source, config.pg_projector.mirror->tombstone_retention.count(), snapshot_max_age.count()));
  }
  if (config.es_projector.delete_retention < snapshot_max_age) {
    problems.push_back(fmt::format(
        "{}: es_projector.delete_retention_ms ({}) is below producer.snapshot_max_age_ms ({}): a snapshot row "
        "older than a delete could bring the deleted document back",
        source, config.es_projector.delete_retention.count(), snapshot_max_age.count()));
  }
  if (!problems.empty()) fail(problems);
  return config;
}

template <typename T>
const T& require(const std::optional<T>& value, const Config& config, std::string_view name) {
  if (!value)
    throw ConfigError(
        fmt::format("{}: section '{}' is required by this program but missing", config.source, name));
  return *value;
}

}  // namespace

const PostgresConfig& Config::require_write_db() const { return require(write_db, *this, "write_db"); }
const PostgresConfig& Config::require_read_db() const { return require(read_db, *this, "read_db"); }
const SearchConfig& Config::require_search() const { return require(search, *this, "search"); }

TableName parse_table_name(std::string_view text) {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos) return {"public", std::string(text)};
  return {std::string(text.substr(0, dot)), std::string(text.substr(dot + 1))};
}

std::optional<std::string> process_env(const std::string& name) {
  if (const char* value = std::getenv(name.c_str()); value != nullptr) return std::string(value);
  return std::nullopt;
}

std::filesystem::path default_schema_path() { return schema_dir() / "config.schema.json"; }

std::string expand_env(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (c != '$' || (next != '$' && next != '{')) {
      out += c;
      continue;
    }
    if (next == '$') {
      out += '$';
      ++i;
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      throw std::invalid_argument("unterminated '${' (write '$$' for a literal '$')");
    }
    const auto inner = text.substr(i + 2, close - i - 2);
    const auto separator = inner.find(":-");
    const auto name = std::string(inner.substr(0, separator));
    if (!is_variable_name(name)) {
      throw std::invalid_argument(fmt::format("'${{{}}}' is not a valid variable reference", inner));
    }
    auto value = env(name);
    if (separator != std::string_view::npos) {
      if (!value || value->empty()) value = std::string(inner.substr(separator + 2));
    } else if (!value) {
      throw std::invalid_argument(fmt::format(
          "environment variable {} is not set (write ${{{}:-default}} to give a default)", name, name));
    }
    out += *value;
    i = close;
  }
  return out;
}

Config config_from_string(std::string_view yaml, std::string_view name, const LoadOptions& options) {
  const YAML::Node root = [&] {
    try {
      return YAML::Load(std::string(yaml));
    } catch (const YAML::ParserException& e) {
      std::string problem = fmt::format("{}:{}: invalid YAML: {}", name, e.mark.line + 1, e.msg);
      // '{' and '}' are YAML flow indicators, so "{port: ${PORT}}" cannot parse.
      if (line_text(yaml, e.mark.line).find("${") != std::string_view::npos) {
        problem += " (write a ${VAR} reference in block style, not inside { } or [ ])";
      }
      fail({problem});
    }
  }();

  YamlToJson converter(name, options.env);
  const json document = converter.convert(root, "");
  if (!converter.problems.empty()) fail(converter.problems);

  JsonSchema schema = [&] {
    try {
      return options.schema.empty() ? JsonSchema::embedded("config") : JsonSchema::load(options.schema);
    } catch (const std::runtime_error& e) {
      throw ConfigError(fmt::format("{}: cannot check the config: {}", name, e.what()));
    }
  }();
  const auto violations = schema.validate(document);
  if (!violations.empty()) {
    std::vector<std::pair<int, std::string>> located;
    for (const auto& violation : violations) {
      const int line = line_of(root, violation.path, 0, std::max(root.Mark().line, 0) + 1);
      located.emplace_back(line, fmt::format("{}:{}: {}: {}", name, line, format_json_path(violation.path),
                                             violation.message));
    }
    std::stable_sort(located.begin(), located.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> problems;
    problems.reserve(located.size());
    for (auto& [line, problem] : located) problems.push_back(std::move(problem));
    fail(problems);
  }
  return to_config(document, name);
}

Config load_config(const std::filesystem::path& file, const LoadOptions& options) {
  std::ifstream in(file);
  if (!in)
    throw ConfigError(
        fmt::format("{}: cannot read the config file: {}", file.string(), std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return config_from_string(text.str(), file.string(), options);
}

}  // namespace syncline
