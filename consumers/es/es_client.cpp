// EsClient: index/alias setup, bulk writes, _mget lookups and truncates (see es_client.hpp).
#include "consumers/es/es_client.hpp"

#include <fmt/format.h>

#include <chrono>

#include <algorithm>
#include <set>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/logging.hpp"

namespace syncline::es_projector {

namespace {

using nlohmann::json;

constexpr std::string_view kVersionType = "external_gte";
// Only what parse_bulk_response reads: the full per-item answer is several times larger.
constexpr std::string_view kBulkFilter = "filter_path=items.*.status,items.*.error,items.*.result";
constexpr std::size_t kScrollPage = 1000;
constexpr std::string_view kScrollKeepAlive = "1m";

std::shared_ptr<spdlog::logger> logger() { return log::get("es-client"); }

// Index names cannot hold '/', but an alias from a config file is still a user string.
std::string path_segment(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '_' || c == '.') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", byte);
    }
  }
  return out;
}

struct EngineError {
  std::string type;
  std::string reason;
  std::string caused_by;  // "<type>: <reason>" of error.caused_by, when present
};

// The engine answers {"error": {"type", "reason", "caused_by"}} or, for a few 404s,
// {"error": "alias [x] missing"}; a proxy in between may answer anything.
EngineError engine_error(const json& error) {
  EngineError result;
  if (error.is_string()) {
    result.reason = error.get<std::string>();
  } else if (error.is_object()) {
    result.type = error.value("type", "");
    result.reason = error.value("reason", "");
    if (const auto cause = error.find("caused_by"); cause != error.end() && cause->is_object()) {
      result.caused_by = cause->value("type", "") + ": " + cause->value("reason", "");
    }
  }
  return result;
}

std::string describe(long status, const EngineError& error) {
  std::string text =
      fmt::format("{} {}: {}", status, error.type.empty() ? "error" : error.type, error.reason);
  if (!error.caused_by.empty()) text += " (caused by " + error.caused_by + ")";
  return text;
}

EngineError engine_error(const http::Response& response) {
  const json body = json::parse(response.body, nullptr, false);
  if (body.is_object()) {
    if (const auto error = body.find("error"); error != body.end()) return engine_error(*error);
  }
  // Not the engine's JSON (a proxy's page, say): keep the start of it.
  return EngineError{"", response.body.substr(0, 200), ""};
}

[[noreturn]] void throw_for(std::string_view request, const http::Response& response) {
  const EngineError error = engine_error(response);
  const std::string what = fmt::format("{}: {}", request, describe(response.status, error));
  if (http::is_retriable_status(response.status)) throw SearchUnavailable(what, response.status);
  throw SearchRequestError(what, response.status, error.type, error.reason);
}

// Sends `request`, turning transport failures into SearchError (retriable when they may pass).
http::Response send(http::HttpClient& client, const http::Request& request) {
  try {
    return client.send(request);
  } catch (const http::HttpError& e) {
    // HttpError's message names the URL with credentials redacted.
    if (e.retriable()) throw SearchUnavailable(e.what(), 0);
    throw SearchError(e.what(), false);
  }
}

http::Request get(std::string path) { return {.method = "GET", .path = std::move(path)}; }
http::Request post(std::string path, std::string body) {
  return {.method = "POST", .path = std::move(path), .body = std::move(body)};
}

std::string json_string(std::string_view text) { return json(text).dump(); }

// Why the engine would refuse `action` together with the whole request, or nullopt.
std::optional<std::string> invalid_action(const BulkAction& action) {
  if (action.id.empty()) return "empty document id";
  if (action.id.size() > EsClient::kMaxIdBytes) {
    return fmt::format("document id of {} bytes; the engine accepts at most {}", action.id.size(),
                       EsClient::kMaxIdBytes);
  }
  if (action.version < 0) return fmt::format("negative version {}", action.version);
  if (action.kind == BulkAction::Kind::index &&
      action.source.find_first_not_of(" \t\r\n") == std::string::npos) {
    return "index action without a document source";
  }
  try {
    (void)json_string(action.id);
    (void)json_string(action.index);
  } catch (const json::exception&) {
    return "document id or index name is not valid UTF-8";
  }
  return std::nullopt;
}

ItemResult classify_item(const json& item) {
  if (!item.is_object() || item.size() != 1 || !item.begin()->is_object()) {
    return {ItemOutcome::retry, 0, "unreadable bulk response item"};
  }
  const std::string& action = item.begin().key();
  const json& result = item.begin().value();
  const auto status_field = result.find("status");
  const long status =
      status_field != result.end() && status_field->is_number_integer() ? status_field->get<long>() : 0;
  const auto error_field = result.find("error");
  const bool has_error = error_field != result.end();
  const EngineError error = has_error ? engine_error(*error_field) : EngineError{};
  const std::string reason = has_error ? describe(status, error) : std::string();

  switch (status) {
    case 200:
    case 201:
      return {ItemOutcome::done, status, {}};
    case 404:
      // A delete of an absent document is done (its tombstone holds the version); a missing
      // index or alias is an operator's problem, not the event's: wait rather than dead-letter.
      if (!has_error && action == "delete") return {ItemOutcome::done, status, {}};
      if (error.type == "index_not_found_exception") return {ItemOutcome::retry, status, reason};
      break;
    case 403:
      // A write block (set by a resync's hand-over, or the engine's flood-stage disk protection)
      // passes: wait for it rather than dead-letter the event.
      if (error.type == "cluster_block_exception") return {ItemOutcome::retry, status, reason};
      break;
    case 409:
      return {ItemOutcome::stale, status, reason};
    case 0:
      return {ItemOutcome::retry, status, "bulk response item without a status"};
    case 429:
    case 502:
    case 503:
    case 504:
      return {ItemOutcome::retry, status, reason};
    default:
      break;
  }
  return {ItemOutcome::reject, status,
          has_error ? reason : fmt::format("{} from {} without an error", status, action)};
}

std::vector<ItemResult> all(std::size_t count, const ItemResult& result) {
  std::vector<ItemResult> results(count, result);  // not braces: that would be a 2-element list
  return results;
}

// The create-index body of the physical index behind the alias: the configured settings and
// mappings, what versioned writes need, and (with_alias) the alias itself.
// index.gc_deletes as the engine takes it.
std::string gc_deletes_value(std::chrono::milliseconds retention) { return fmt::format("{}ms", retention.count()); }

// The mappings of Syncline's bookkeeping fields (kVersionField is checked separately).
json bookkeeping_properties() {
  return {{std::string(kTableField), {{"type", "keyword"}}},
          {std::string(kSeqField), {{"type", "long"}}},
          {std::string(kKeyField), {{"type", "keyword"}}},
          {std::string(kMergedField), {{"type", "boolean"}}}};
}

json create_index_body(const EsIndexConfig& index, std::chrono::milliseconds delete_retention,
                       bool with_alias = true) {
  const auto object_from = [&](const std::string& text, std::string_view what) {
    json parsed = json::parse(text.empty() ? std::string("{}") : text, nullptr, false);
    if (!parsed.is_object()) {
      throw IndexSetupError(fmt::format("index {}: {} must be a JSON object", index.name, what));
    }
    return parsed;
  };
  json settings = object_from(index.settings_json, "settings");
  json mappings = object_from(index.mappings_json, "mappings");

  // Tombstones of deletes keep their version only gc_deletes long (60 s by default): an older
  // write after that (a snapshot row, a replay) would bring a deleted document back. The horizon
  // is delete_retention_ms; a gc_deletes in the configured settings gives way to it.
  settings.erase("gc_deletes");
  if (settings.contains("index") && settings["index"].is_object()) settings["index"].erase("gc_deletes");
  settings["index.gc_deletes"] = gc_deletes_value(delete_retention);

  json& properties = mappings["properties"];
  if (properties.is_null()) properties = json::object();
  if (!properties.is_object())
    throw IndexSetupError(fmt::format("index {}: mappings.properties must be an object", index.name));
  const std::string version_field(kVersionField);
  if (properties.contains(version_field)) {
    const json& mapping = properties[version_field];
    if (!mapping.is_object() || mapping.value("type", "") != "long") {
      throw IndexSetupError(fmt::format("index {}: {} is mapped as {}, it must be a long", index.name,
                                        version_field, mapping.dump()));
    }
  } else {
    properties[version_field] = {{"type", "long"}};
  }
  const json bookkeeping = bookkeeping_properties();
  for (auto field = bookkeeping.begin(); field != bookkeeping.end(); ++field) {
    if (!properties.contains(field.key())) properties[field.key()] = field.value();
  }
  if (!with_alias) return {{"settings", settings}, {"mappings", mappings}};
  return {{"settings", settings}, {"mappings", mappings}, {"aliases", {{index.name, json::object()}}}};
}

}  // namespace

http::ClientOptions EsClient::client_options(const SearchConfig& config, bool gzip) {
  http::ClientOptions options;
  options.base_url = config.url;
  options.request_timeout = config.request_timeout;
  if (!config.username.empty()) {
    options.username = config.username;
    options.password = config.password;
  }
  if (!config.api_key.empty()) options.api_key = config.api_key;
  options.ca_file = config.ca_file;
  options.verify_tls = config.verify_tls;
  options.gzip_requests = gzip;
  return options;
}

EsClient::EsClient(const SearchConfig& config, bool gzip, std::chrono::milliseconds delete_retention)
    : client_(client_options(config, gzip)), delete_retention_(delete_retention) {}

std::optional<std::string> EsClient::find_alias_target(const std::string& alias) {
  const std::string request = "GET /_alias/" + alias;
  const http::Response response = send(client_, get("/_alias/" + path_segment(alias)));
  if (response.status == 404) return std::nullopt;
  if (response.status != 200) throw_for(request, response);
  const json body = json::parse(response.body, nullptr, false);
  if (!body.is_object() || body.empty())
    throw SearchUnavailable(request + ": unreadable answer", response.status);
  if (body.size() == 1) return body.begin().key();
  // Several indices (e.g. mid-swap by hand): writes go to the one marked as write index.
  for (const auto& [physical, entry] : body.items()) {
    const json* membership = nullptr;
    if (entry.contains("aliases") && entry["aliases"].contains(alias)) membership = &entry["aliases"][alias];
    if (membership != nullptr && membership->is_object() && membership->value("is_write_index", false))
      return physical;
  }
  throw IndexSetupError(
      fmt::format("alias {} points to {} indices and none is its write index", alias, body.size()));
}

void EsClient::adopt_index(const std::string& alias, const std::string& physical) {
  const std::string wanted = gc_deletes_value(delete_retention_);
  const std::string path = "/" + path_segment(physical) + "/_settings/index.gc_deletes?include_defaults=true";
  const http::Response current = send(client_, get(path));
  if (current.status != 200) throw_for("GET /" + physical + "/_settings", current);
  const json body = json::parse(current.body, nullptr, false);
  std::string value = "60s (the engine's default)";
  if (body.is_object() && body.contains(physical)) {
    for (const char* where : {"settings", "defaults"}) {
      const json& entry = body[physical];
      if (entry.contains(where) && entry[where].contains("index") && entry[where]["index"].contains("gc_deletes") &&
          entry[where]["index"]["gc_deletes"].is_string()) {
        value = entry[where]["index"]["gc_deletes"].get<std::string>();
        break;
      }
    }
  }
  if (value != wanted) {
    const http::Response updated =
        send(client_, {.method = "PUT",
                       .path = "/" + path_segment(physical) + "/_settings",
                       .body = json{{"index", {{"gc_deletes", wanted}}}}.dump()});
    if (updated.status != 200) throw_for("PUT /" + physical + "/_settings", updated);
    logger()->info("index {} behind alias {}: index.gc_deletes was {}, set to {} (delete_retention_ms)", physical,
                   alias, value, wanted);
  }
  // An index made before these fields existed: map them now (new fields only; a field already
  // mapped otherwise stays, and truncates of a keyword-less syncline_table match nothing).
  const http::Response mapped = send(client_, {.method = "PUT",
                                               .path = "/" + path_segment(physical) + "/_mapping",
                                               .body = json{{"properties", bookkeeping_properties()}}.dump()});
  if (mapped.status != 200) {
    logger()->warn("index {} behind alias {}: could not map {}, {}, {}: {} {}", physical, alias, kTableField,
                   kSeqField, kKeyField, mapped.status, engine_error(mapped).reason);
  }
}

void EsClient::ensure_index(const EsIndexConfig& index) {
  if (const auto physical = find_alias_target(index.name)) {
    adopt_index(index.name, *physical);
    return;
  }

  const std::string name_path = "/" + path_segment(index.name);
  const http::Response existing = send(client_, get(name_path));
  if (existing.status == 200) {
    // Something answers to the name: the alias another instance just created, or a concrete
    // index (or data stream) that writes would go to instead of an alias we could swap.
    if (const auto target = find_alias_target(index.name)) {
      adopt_index(index.name, *target);
      return;
    }
    throw IndexSetupError(fmt::format(
        "{} exists as a concrete index, not as an alias; the projector writes to an alias {} over a "
        "versioned index ({}_v1). Reindex it into {}_v1 and replace it by the alias, or delete it",
        index.name, index.name, index.name, index.name));
  }
  if (existing.status != 404) throw_for("GET /" + index.name, existing);

  const std::string physical = index.name + "_v1";
  const std::string request = "PUT /" + physical;
  const http::Response created =
      send(client_,
           {.method = "PUT", .path = "/" + path_segment(physical), .body = create_index_body(index, delete_retention_).dump()});
  if (created.status == 200) {
    logger()->info("created index {} behind alias {}", physical, index.name);
    return;
  }
  if (created.status == 400 && engine_error(created).type == "resource_already_exists_exception") {
    // Another instance won the race; it created the index and the alias in one request.
    if (const auto target = find_alias_target(index.name)) {
      adopt_index(index.name, *target);
      return;
    }
    throw IndexSetupError(
        fmt::format("index {} exists without the alias {}; add the alias to it (POST /_aliases) or delete it",
                    physical, index.name));
  }
  throw_for(request, created);
}

void EsClient::create_index(const EsIndexConfig& index, const std::string& physical, const json& meta) {
  json body = create_index_body(index, delete_retention_, false);
  if (meta.is_object() && !meta.empty()) {
    json& stored = body["mappings"]["_meta"];
    if (!stored.is_object()) stored = json::object();
    for (const auto& [key, value] : meta.items()) stored[key] = value;
  }
  const http::Response created =
      send(client_, {.method = "PUT", .path = "/" + path_segment(physical), .body = body.dump()});
  if (created.status != 200) throw_for("PUT /" + physical, created);
  logger()->info("created index {} (not aliased)", physical);
}

std::vector<IndexInfo> EsClient::indices(const std::string& pattern) {
  // '*' stays a wildcard; everything else is escaped as in any other path.
  std::string path = "/";
  std::string_view rest = pattern;
  for (auto star = rest.find('*'); star != std::string_view::npos; star = rest.find('*')) {
    path += path_segment(rest.substr(0, star)) + "*";
    rest.remove_prefix(star + 1);
  }
  path += path_segment(rest);
  const std::string request = "GET /" + pattern;
  const http::Response response = send(client_, get(path + "?expand_wildcards=open,closed"));
  if (response.status == 404) return {};
  if (response.status != 200) throw_for(request, response);
  const json body = json::parse(response.body, nullptr, false);
  if (!body.is_object()) throw SearchUnavailable(request + ": unreadable answer", response.status);
  std::vector<IndexInfo> found;
  for (const auto& [name, entry] : body.items()) {
    IndexInfo info{name, {}, json::object()};
    if (entry.is_object() && entry.contains("aliases") && entry["aliases"].is_object()) {
      for (const auto& [alias, ignored] : entry["aliases"].items()) info.aliases.push_back(alias);
    }
    if (entry.is_object() && entry.contains("mappings") && entry["mappings"].is_object() &&
        entry["mappings"].contains("_meta") && entry["mappings"]["_meta"].is_object()) {
      info.meta = entry["mappings"]["_meta"];
    }
    found.push_back(std::move(info));
  }
  std::sort(found.begin(), found.end(),
            [](const IndexInfo& a, const IndexInfo& b) { return a.name < b.name; });
  return found;
}

void EsClient::swap_alias(const std::string& alias, const std::string& from, const std::string& to) {
  const json actions = {{"actions", json::array({{{"remove", {{"index", from}, {"alias", alias}}}},
                                                 {{"add", {{"index", to}, {"alias", alias}}}}})}};
  const http::Response response = send(client_, post("/_aliases", actions.dump()));
  if (response.status != 200)
    throw_for(fmt::format("POST /_aliases (move {} from {} to {})", alias, from, to), response);
  logger()->info("alias {} moved from {} to {}", alias, from, to);
}

void EsClient::set_write_block(const std::string& physical, bool blocked) {
  const std::string path = "/" + path_segment(physical) + "/_settings";
  const json body = {{"index", {{"blocks", {{"write", blocked ? json(true) : json(nullptr)}}}}}};
  const http::Response response = send(client_, {.method = "PUT", .path = path, .body = body.dump()});
  if (response.status != 200) throw_for("PUT /" + physical + "/_settings", response);
}

void EsClient::merge_meta(const std::string& physical, const json& meta) {
  const std::string path = "/" + path_segment(physical) + "/_mapping";
  const http::Response current = send(client_, get(path));
  if (current.status != 200) throw_for("GET /" + physical + "/_mapping", current);
  const json body = json::parse(current.body, nullptr, false);
  json merged = json::object();
  if (body.is_object() && body.contains(physical) && body[physical].is_object()) {
    const json& mappings = body[physical].value("mappings", json::object());
    if (mappings.is_object() && mappings.contains("_meta") && mappings["_meta"].is_object())
      merged = mappings["_meta"];
  }
  for (const auto& [key, value] : meta.items()) merged[key] = value;
  const http::Response updated =
      send(client_, {.method = "PUT", .path = path, .body = json{{"_meta", merged}}.dump()});
  if (updated.status != 200) throw_for("PUT /" + physical + "/_mapping", updated);
}

void EsClient::delete_index(const std::string& physical) {
  const http::Response response = send(client_, {.method = "DELETE", .path = "/" + path_segment(physical)});
  if (response.status == 404) return;
  if (response.status != 200) throw_for("DELETE /" + physical, response);
  logger()->info("deleted index {}", physical);
}

std::int64_t EsClient::count(const std::string& index) {
  const http::Response response = send(client_, get("/" + path_segment(index) + "/_count"));
  if (response.status != 200) throw_for("GET /" + index + "/_count", response);
  const json body = json::parse(response.body, nullptr, false);
  if (!body.is_object() || !body.contains("count") || !body["count"].is_number_integer())
    throw SearchUnavailable("GET /" + index + "/_count: unreadable answer", response.status);
  return body["count"].get<std::int64_t>();
}

std::string EsClient::physical_index(const std::string& alias) {
  if (auto physical = find_alias_target(alias)) return *physical;
  const std::string reason = "alias [" + alias + "] missing";
  throw SearchRequestError("GET /_alias/" + alias + ": " + reason, 404, "alias_not_found", reason);
}

std::string EsClient::bulk_body(const std::vector<const BulkAction*>& actions) {
  std::string body;
  for (const BulkAction* action : actions) {
    const bool index = action->kind == BulkAction::Kind::index;
    body += index ? R"({"index":{"_index":)" : R"({"delete":{"_index":)";
    body += json_string(action->index);
    body += R"(,"_id":)";
    body += json_string(action->id);
    body += fmt::format(R"(,"version":{},"version_type":"{}"}}}})", action->version, kVersionType);
    body += '\n';
    if (index) {
      const std::size_t start = body.size();
      body += action->source;
      // A raw line break in JSON text can only be whitespace between tokens (inside strings it
      // is escaped), but it would end the NDJSON line: make it a space.
      std::replace_if(
          body.begin() + static_cast<std::ptrdiff_t>(start), body.end(),
          [](char c) { return c == '\n' || c == '\r'; }, ' ');
      body += '\n';
    }
  }
  return body;
}

std::vector<ItemResult> EsClient::parse_bulk_response(std::string_view body, std::size_t count) {
  const json response = json::parse(body, nullptr, false);
  if (!response.is_object() || !response.contains("items") || !response["items"].is_array()) {
    return all(count,
               {ItemOutcome::retry, 0, "unreadable bulk response: " + std::string(body.substr(0, 200))});
  }
  const json& items = response["items"];
  if (items.size() != count) {
    return all(count, {ItemOutcome::retry, 0,
                       fmt::format("bulk response with {} items for {} actions", items.size(), count)});
  }
  std::vector<ItemResult> results;
  results.reserve(count);
  for (const json& item : items) results.push_back(classify_item(item));
  return results;
}

std::vector<ItemResult> EsClient::bulk(const std::vector<const BulkAction*>& actions, bool require_alias) {
  std::vector<ItemResult> results(actions.size());
  std::vector<const BulkAction*> sent;
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < actions.size(); ++i) {
    if (auto problem = invalid_action(*actions[i])) {
      results[i] = {ItemOutcome::reject, 0, *problem};
    } else {
      sent.push_back(actions[i]);
      positions.push_back(i);
    }
  }
  if (sent.empty()) return results;

  std::string path = "/_bulk?";
  if (require_alias) path += "require_alias=true&";
  path += kBulkFilter;
  std::vector<ItemResult> answered;
  try {
    const http::Response response = client_.post(path, bulk_body(sent), "application/x-ndjson");
    if (response.status == 200) {
      answered = parse_bulk_response(response.body, sent.size());
    } else if (response.status == 413 || http::is_retriable_status(response.status)) {
      answered = all(sent.size(), {ItemOutcome::retry, response.status,
                                   "bulk request: " + describe(response.status, engine_error(response))});
    } else {
      throw_for(fmt::format("POST /_bulk ({} actions)", sent.size()), response);
    }
  } catch (const http::HttpError& e) {
    if (!e.retriable()) throw SearchError(e.what(), false);
    answered = all(sent.size(), {ItemOutcome::retry, 0, e.what()});
  }
  for (std::size_t i = 0; i < sent.size(); ++i) results[positions[i]] = std::move(answered[i]);
  return results;
}

std::map<std::pair<std::string, std::string>, std::optional<CurrentDocument>> EsClient::fetch(
    const std::vector<std::pair<std::string, std::string>>& documents) {
  std::map<std::pair<std::string, std::string>, std::optional<CurrentDocument>> found;
  for (std::size_t first = 0; first < documents.size(); first += kMaxMgetDocuments) {
    const std::size_t last = std::min(documents.size(), first + kMaxMgetDocuments);
    json docs = json::array();
    for (std::size_t i = first; i < last; ++i)
      docs.push_back({{"_index", documents[i].first}, {"_id", documents[i].second}});
    const http::Response response = send(client_, post("/_mget", json{{"docs", docs}}.dump()));
    if (response.status != 200) throw_for("POST /_mget", response);

    const json body = json::parse(response.body, nullptr, false);
    if (!body.is_object() || !body.contains("docs") || !body["docs"].is_array() ||
        body["docs"].size() != last - first) {
      throw SearchUnavailable("POST /_mget: unreadable answer", response.status);
    }
    // The answer lists the documents in the order asked, with the physical index as _index.
    for (std::size_t i = first; i < last; ++i) {
      const json& doc = body["docs"][i - first];
      std::optional<CurrentDocument>& slot = found[documents[i]];
      if (const auto error = doc.find("error"); error != doc.end()) {
        const EngineError cause = engine_error(*error);
        if (cause.type == "index_not_found_exception") continue;  // nothing there yet
        throw SearchUnavailable(
            fmt::format("POST /_mget: {} {}: {}", documents[i].first, cause.type, cause.reason),
            response.status);
      }
      if (!doc.value("found", false)) continue;
      CurrentDocument current;
      current.source = doc.contains("_source") ? doc["_source"] : json::object();
      if (current.source.is_object()) {
        const auto version = current.source.find(std::string(kVersionField));
        if (version != current.source.end() && version->is_number()) {
          current.version = version->is_number_float() ? static_cast<std::int64_t>(version->get<double>())
                                                       : version->get<std::int64_t>();
        }
        const auto key = current.source.find(std::string(kKeyField));
        if (key != current.source.end() && key->is_string()) current.key = key->get<std::string>();
        const auto merged = current.source.find(std::string(kMergedField));
        current.merged = merged != current.source.end() && merged->is_boolean() && merged->get<bool>();
      }
      slot = std::move(current);
    }
  }
  return found;
}

namespace {

// Frees a scroll context on the engine when the scan ends, however it ends; failures to free
// are harmless (the context expires by itself after its keep-alive).
class ScrollGuard {
 public:
  explicit ScrollGuard(http::HttpClient& client) : client_(client) {}
  ~ScrollGuard() {
    if (id.empty()) return;
    try {
      client_.send({.method = "DELETE",
                    .path = "/_search/scroll",
                    .body = json{{"scroll_id", json::array({id})}}.dump()});
    } catch (const std::exception& e) {
      logger()->debug("freeing a scroll context: {}", e.what());
    }
  }
  ScrollGuard(const ScrollGuard&) = delete;
  ScrollGuard& operator=(const ScrollGuard&) = delete;

  std::string id;

 private:
  http::HttpClient& client_;
};

}  // namespace

std::uint64_t EsClient::delete_older(const DeleteOlder& request) {
  if (request.version <= 0) return 0;  // versions are never negative: nothing is older
  const std::string alias_path = "/" + path_segment(request.index);

  // The scan sees what is searchable: first make every acknowledged write searchable.
  const http::Response refreshed = send(client_, post(alias_path + "/_refresh", ""));
  if (refreshed.status == 404) return 0;
  if (refreshed.status != 200) throw_for("POST /" + request.index + "/_refresh", refreshed);

  const std::string version_field(kVersionField);
  const std::string seq_field(kSeqField);
  const std::string table_field(kTableField);
  // (version, seq) below the truncate's; a document without kSeqField counts as seq 0.
  const json older = {{"range", {{version_field, {{"lt", request.version}}}}}};
  json version_match = older;
  if (request.seq > 0) {
    const json no_seq = {{"bool", {{"must_not", json::array({{{"exists", {{"field", seq_field}}}}})}}}};
    const json earlier_in_transaction = {
        {"bool",
         {{"filter", json::array({{{"term", {{version_field, request.version}}}}})},
          {"should", json::array({{{"range", {{seq_field, {{"lt", request.seq}}}}}}, no_seq})},
          {"minimum_should_match", 1}}}};
    version_match = {{"bool", {{"should", json::array({older, earlier_in_transaction})}, {"minimum_should_match", 1}}}};
  }
  json mine = {{"term", {{table_field, request.table}}}};
  if (request.untagged_too) {
    const json untagged = {{"bool", {{"must_not", json::array({{{"exists", {{"field", table_field}}}}})}}}};
    mine = {{"bool", {{"should", json::array({mine, untagged})}, {"minimum_should_match", 1}}}};
  }
  const json query = {{"size", kScrollPage},
                      {"_source", json::array({version_field})},
                      {"sort", json::array({"_doc"})},
                      {"query", {{"bool", {{"filter", json::array({mine, version_match})}}}}}};
  http::Response page =
      send(client_, post(fmt::format("{}/_search?scroll={}", alias_path, kScrollKeepAlive), query.dump()));
  if (page.status == 404) return 0;
  if (page.status != 200) throw_for("POST /" + request.index + "/_search", page);

  ScrollGuard scroll(client_);
  std::uint64_t deleted = 0;
  while (true) {
    const json body = json::parse(page.body, nullptr, false);
    if (!body.is_object())
      throw SearchUnavailable("scroll over " + request.index + ": unreadable answer", page.status);
    scroll.id = body.value("_scroll_id", "");
    const json hits = body.contains("hits") ? body["hits"].value("hits", json::array()) : json::array();
    if (hits.empty()) break;

    std::vector<BulkAction> deletes;
    deletes.reserve(hits.size());
    for (const json& hit : hits) {
      // A document of an older version is deleted at version - 1 (no other transaction commits at
      // that LSN): a newer write racing the scan, even one of the truncate's own transaction at
      // its version, then wins with a 409. Only one of the truncate's transaction from before it
      // needs the truncate's own version.
      std::int64_t stored = 0;
      if (hit.contains("_source") && hit["_source"].contains(version_field) &&
          hit["_source"][version_field].is_number())
        stored = hit["_source"][version_field].get<std::int64_t>();
      // The hit's physical index: the alias could be swapped meanwhile, the scan could not.
      deletes.push_back({.kind = BulkAction::Kind::remove,
                         .index = hit.value("_index", request.index),
                         .id = hit.value("_id", ""),
                         .version = stored < request.version ? request.version - 1 : request.version,
                         .source = {},
                         .event = request.event});
    }
    std::vector<const BulkAction*> pointers;
    pointers.reserve(deletes.size());
    for (const BulkAction& action : deletes) pointers.push_back(&action);
    const std::vector<ItemResult> results = bulk(pointers, false);
    for (std::size_t i = 0; i < results.size(); ++i) {
      const ItemResult& result = results[i];
      switch (result.outcome) {
        case ItemOutcome::done:
          if (result.status == 200) ++deleted;  // 404: gone already
          break;
        case ItemOutcome::stale:
          break;  // rewritten at a newer version since the scan: it stays
        case ItemOutcome::retry:
          throw SearchUnavailable(
              fmt::format("truncate of {}: delete of {}: {}", request.index, deletes[i].id, result.reason),
              result.status);
        case ItemOutcome::reject:
          throw SearchRequestError(
              fmt::format("truncate of {}: delete of {}: {}", request.index, deletes[i].id, result.reason),
              result.status, "", result.reason);
      }
    }
    if (scroll.id.empty()) break;
    page = send(client_,
                post("/_search/scroll", json{{"scroll", kScrollKeepAlive}, {"scroll_id", scroll.id}}.dump()));
    if (page.status != 200) throw_for("POST /_search/scroll", page);
  }
  logger()->debug("truncate of {} in {} below version {} seq {}: {} document(s) deleted", request.table,
                  request.index, request.version, request.seq, deleted);
  return deleted;
}

void EsClient::refresh(const std::string& alias) {
  const http::Response response = send(client_, post("/" + path_segment(alias) + "/_refresh", ""));
  if (response.status != 200) throw_for("POST /" + alias + "/_refresh", response);
}

bool EsClient::healthy() {
  try {
    const http::Response response = client_.get("/_cluster/health");
    if (response.status != 200) return false;
    const json body = json::parse(response.body, nullptr, false);
    const std::string status = body.is_object() ? body.value("status", "") : "";
    return status == "green" || status == "yellow";
  } catch (const std::exception&) {
    return false;
  }
}

BulkRetry sort_bulk_results(const std::vector<const BulkAction*>& actions, const std::vector<ItemResult>& results,
                            const std::function<void(const BulkAction&, const ItemResult&)>& settled) {
  BulkRetry retry;
  std::set<std::pair<std::string, std::string>> retrying;  // (index, id) with an item to resend
  for (std::size_t i = 0; i < actions.size(); ++i) {
    const BulkAction& action = *actions[i];
    std::pair<std::string, std::string> document{action.index, action.id};
    if (results[i].outcome == ItemOutcome::retry || retrying.contains(document)) {
      retry.again.push_back(&action);
      retrying.insert(std::move(document));
      if (retry.reason.empty()) retry.reason = results[i].reason;
      continue;
    }
    settled(action, results[i]);
  }
  return retry;
}

bool too_large_for_engine(std::size_t actions, const std::vector<ItemResult>& results) {
  return actions > 1 && !results.empty() &&
         std::all_of(results.begin(), results.end(), [](const ItemResult& r) { return r.status == 413; });
}

}  // namespace syncline::es_projector
