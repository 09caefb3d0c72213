// syncline-ctl verify: the write snapshot, the read stores, the chunk pass, the extras scan, the
// settle re-checks and the repair (see verify_run.hpp).
#include "tools/ctl/verify_run.hpp"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "common/envelope.hpp"
#include "common/http_client.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"
#include "consumers/es/bulk_action.hpp"
#include "consumers/es/es_client.hpp"
#include "consumers/pg/mirror_projection.hpp"
#include "producer/slot_manager.hpp"
#include "producer/snapshot_reader.hpp"
#include "producer/table_keys.hpp"
#include "producer/value_mapping.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/snapshot.hpp"

namespace syncline::ctl::verify {

using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> logger() { return log::get("verify"); }

// The text forms the producer's replication connection uses, so values read here map to the same
// JSON (see ReplicationConnection, SnapshotReader).
constexpr const char* kSessionSettings =
    "SET DateStyle = 'ISO'; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'; "
    "SET IntervalStyle = 'postgres'";

// A key value as the text a cast to the column's type reads: strings as they are, the rest as JSON.
pg::Param key_text(const json& value) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

std::string quoted_list(const std::vector<std::string>& names, std::string_view prefix = {}) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += prefix;
    out += producer::quote_identifier(name);
  }
  return out;
}

// Column name -> format_type() of a table's columns (no dropped ones).
std::map<std::string, std::string> column_types(pg::PgConnection& connection, const std::string& schema,
                                                const std::string& table) {
  const pg::Result result = connection.exec(
      "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
      "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = "
      "c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
      {schema, table});
  std::map<std::string, std::string> types;
  for (int row = 0; row < result.rows(); ++row) types.emplace(result.value(row, 0), result.value(row, 1));
  return types;
}

// "(SELECT CAST(u.c0 AS t0), ... FROM unnest($1::text[], ...) AS u(c0, ...))": the keys as a set
// of rows of the key columns' types, so the lookup uses the table's key index.
std::string key_set_sql(const std::vector<std::string>& key_columns,
                        const std::map<std::string, std::string>& types) {
  std::string casts;
  std::string arrays;
  std::string names;
  for (std::size_t i = 0; i < key_columns.size(); ++i) {
    const auto found = types.find(key_columns[i]);
    if (found == types.end()) throw std::runtime_error("key column " + key_columns[i] + " does not exist");
    const std::string ref = fmt::format("u.c{}", i);
    if (i > 0) {
      casts += ", ";
      arrays += ", ";
      names += ", ";
    }
    casts += found->second == "bytea" ? fmt::format("decode({}, 'base64')", ref)
                                      : fmt::format("CAST({} AS {})", ref, found->second);
    arrays += fmt::format("${}::text[]", i + 1);
    names += fmt::format("c{}", i);
  }
  return fmt::format("(SELECT {} FROM unnest({}) AS u({}))", casts, arrays, names);
}

std::vector<pg::Param> key_params(const std::vector<std::string>& key_columns,
                                  const std::vector<json>& keys) {
  std::vector<pg::Param> params;
  for (const auto& column : key_columns) {
    std::vector<pg::Param> elements;
    elements.reserve(keys.size());
    for (const auto& key : keys) elements.push_back(key_text(key.value(column, json())));
    params.emplace_back(pg_projector::mirror_sql::text_array_literal(elements));
  }
  return params;
}

json key_of(const json& values, const std::vector<std::string>& key_columns) {
  json key = json::object();
  for (const auto& column : key_columns) key[column] = values.value(column, json());
  return key;
}

json map_value(std::string_view text, Oid type) {
  try {
    return producer::map_text_value(text, type);
  } catch (const producer::ValueMappingError&) {
    return std::string(text);  // shown as it is; the comparison then reports it
  }
}

// ---- the write database ----

// The write side of one table: its relation (as pgoutput describes it) and primary key.
struct WriteTable {
  producer::TableName name;
  producer::RelationInfo relation;
  producer::RelationInfo key_relation;  // the key columns alone: existence checks read no more
  std::vector<std::string> key_columns;
  std::map<std::string, std::string> types;
};

// Rows of `table` whose key is among `keys`, as the producer maps them, on `connection` (in
// whatever transaction it is in).
std::vector<json> write_rows_by_key(pg::PgConnection& connection, const WriteTable& table,
                                    const std::vector<json>& keys, bool keys_only = false) {
  if (keys.empty()) return {};
  const producer::RelationInfo& relation = keys_only ? table.key_relation : table.relation;
  std::vector<std::string> names;
  for (const auto& column : relation.columns) names.push_back(column.name);
  const std::string sql =
      fmt::format("SELECT {} FROM {} WHERE ({}) IN {}", quoted_list(names), producer::quote_table(table.name),
                  quoted_list(table.key_columns), key_set_sql(table.key_columns, table.types));
  const pg::Result result = connection.exec(sql, key_params(table.key_columns, keys));
  std::vector<json> rows;
  producer::TupleData tuple(names.size());
  for (int row = 0; row < result.rows(); ++row) {
    for (int column = 0; column < result.columns(); ++column) {
      auto& cell = tuple[static_cast<std::size_t>(column)];
      cell.kind = result.is_null(row, column) ? producer::ColumnKind::null : producer::ColumnKind::text;
      cell.value.assign(result.value(row, column));
    }
    rows.push_back(producer::tuple_to_json(relation, tuple).values);
  }
  return rows;
}

// One REPEATABLE READ, READ ONLY snapshot of the write database for the whole run: exported by
// one session and imported by the producer's SnapshotReader on another, so rows are read (in key
// order, through a cursor, chunk by chunk) and mapped exactly as the producer's initial snapshot.
// Takes no lock beyond the ACCESS SHARE every SELECT takes.
class WriteSnapshot {
 public:
  WriteSnapshot(const std::string& dsn, std::size_t chunk_rows) : exporter_(dsn), reader_connection_(dsn) {
    exporter_transaction_.emplace(exporter_, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    // The snapshot is taken as this statement starts, the LSN read after it: every transaction
    // the snapshot sees committed at or below this LSN.
    const pg::Result exported =
        exporter_transaction_->exec("SELECT pg_export_snapshot(), pg_current_wal_lsn()::text");
    lsn_ = Lsn::from_string(exported.value(0, 1));
    reader_.emplace(reader_connection_, exported.value(0, 0), chunk_rows);
  }

  Lsn lsn() const { return lsn_; }
  pg::PgConnection& connection() { return reader_connection_; }
  producer::SnapshotReader& reader() { return *reader_; }

  WriteTable describe(const producer::TableName& table) {
    WriteTable out{.name = table,
                   .relation = reader_->describe(table),
                   .key_relation = {},
                   .key_columns = {},
                   .types = {}};
    const auto keys = producer::read_primary_keys(reader_connection_, {{table.schema, table.table}});
    if (const auto found = keys.find({table.schema, table.table}); found != keys.end())
      out.key_columns = found->second;
    out.key_relation = out.relation;
    out.key_relation.columns.clear();
    for (const auto& name : out.key_columns) {
      for (const auto& column : out.relation.columns) {
        if (column.name == name) out.key_relation.columns.push_back(column);
      }
    }
    out.types = column_types(reader_connection_, table.schema, table.table);
    return out;
  }

  std::uint64_t count(const producer::TableName& table) {
    return std::stoull(std::string(
        reader_connection_.exec("SELECT count(*) FROM " + producer::quote_table(table)).value(0, 0)));
  }

 private:
  // Member order: the reader's transaction ends before the exporting one.
  pg::PgConnection exporter_;
  pg::PgConnection reader_connection_;
  std::optional<pg::Transaction> exporter_transaction_;
  std::optional<producer::SnapshotReader> reader_;
  Lsn lsn_;
};

// Fresh reads of the write database for re-checks: each a new short read-only snapshot.
class WriteRecheck {
 public:
  explicit WriteRecheck(const std::string& dsn) : connection_(dsn) {}

  // The rows now (by id) and the LSN every visible transaction committed at or below.
  std::pair<std::map<std::string, json>, Lsn> read(const WriteTable& table, const std::vector<json>& keys,
                                                   const std::function<std::string(const json&)>& id_of) {
    pg::Transaction transaction(connection_, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    transaction.exec(
        "SET LOCAL DateStyle = 'ISO'; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3");
    const Lsn lsn = Lsn::from_string(transaction.exec("SELECT pg_current_wal_lsn()::text").value(0, 0));
    std::map<std::string, json> rows;
    for (auto& row : write_rows_by_key(connection_, table, keys)) {
      const std::string id = id_of(key_of(row, table.key_columns));
      rows.emplace(id, std::move(row));
    }
    transaction.commit();
    return {std::move(rows), lsn};
  }

 private:
  pg::PgConnection connection_;
};

// ---- the read stores ----

class ReadStore {
 public:
  virtual ~ReadStore() = default;
  virtual std::string target() const = 0;
  // The id a key has in this store (and in the maps fetch() returns).
  virtual std::string id_of(const json& key) const = 0;
  virtual std::uint64_t count() = 0;
  // The rows of `keys` the store holds, by id.
  virtual std::map<std::string, StoredRow> fetch(const std::vector<json>& keys) = 0;
  // Every key the store holds, `batch` at a time.
  virtual void scan_keys(std::size_t batch, const std::function<void(std::vector<json>)>& on_batch) = 0;
};

// A table of the read-PostgreSQL mirror: created from events (text, bigint, double precision,
// boolean, jsonb) or by the user with real types. Its values are read as text with their type
// OIDs and mapped by the producer's own mapping, so both shapes compare to the write side.
class PgMirrorStore final : public ReadStore {
 public:
  PgMirrorStore(const std::string& dsn, std::string schema, std::string table,
                std::vector<std::string> key_columns)
      : connection_(dsn),
        schema_(std::move(schema)),
        table_(std::move(table)),
        key_columns_(std::move(key_columns)) {
    connection_.exec(kSessionSettings);
    types_ = column_types(connection_, schema_, table_);
    for (const auto& [name, type] : types_) {
      if (name.rfind("_syncline_", 0) != 0) columns_.push_back(name);
    }
    has_lsn_ = types_.count("_syncline_lsn") > 0;
  }

  std::string target() const override { return schema_ + "." + table_; }
  std::string id_of(const json& key) const override { return canonical_json(key); }

  std::uint64_t count() override {
    if (types_.empty()) return 0;  // not created yet: nothing was projected
    return std::stoull(std::string(connection_.exec("SELECT count(*) FROM " + qualified()).value(0, 0)));
  }

  std::map<std::string, StoredRow> fetch(const std::vector<json>& keys) override {
    std::map<std::string, StoredRow> rows;
    if (types_.empty() || keys.empty()) return rows;
    const std::string sql = fmt::format("SELECT {}{} FROM {} m WHERE ({}) IN {}", quoted_list(columns_, "m."),
                                        has_lsn_ ? ", m._syncline_lsn::text" : "", qualified(),
                                        quoted_list(key_columns_, "m."), key_set_sql(key_columns_, types_));
    const pg::Result result = connection_.exec(sql, key_params(key_columns_, keys));
    for (int row = 0; row < result.rows(); ++row) {
      StoredRow stored;
      for (std::size_t i = 0; i < columns_.size(); ++i) {
        const int column = static_cast<int>(i);
        stored.values[columns_[i]] =
            result.is_null(row, column) ? json()
                                        : map_value(result.value(row, column), PQftype(result.raw(), column));
      }
      if (has_lsn_ && !result.is_null(row, static_cast<int>(columns_.size())))
        stored.position = Lsn::parse(result.value(row, static_cast<int>(columns_.size())));
      rows.emplace(id_of(key_of(stored.values, key_columns_)), std::move(stored));
    }
    return rows;
  }

  void scan_keys(std::size_t batch, const std::function<void(std::vector<json>)>& on_batch) override {
    if (types_.empty()) return;
    // Keyset pagination in the mirror's own key order: each page starts after the last key seen.
    std::vector<pg::Param> last;
    while (true) {
      std::string sql = fmt::format("SELECT {} FROM {}", quoted_list(key_columns_), qualified());
      if (!last.empty()) {
        std::string casts;
        for (std::size_t i = 0; i < key_columns_.size(); ++i) {
          casts += fmt::format("{}CAST(${} AS {})", i > 0 ? ", " : "", i + 1, types_.at(key_columns_[i]));
        }
        sql += fmt::format(" WHERE ({}) > ({})", quoted_list(key_columns_), casts);
      }
      sql += fmt::format(" ORDER BY {} LIMIT {}", quoted_list(key_columns_), batch);
      const pg::Result result = connection_.exec(sql, last);
      std::vector<json> keys;
      for (int row = 0; row < result.rows(); ++row) {
        json key = json::object();
        for (int column = 0; column < result.columns(); ++column) {
          key[key_columns_[static_cast<std::size_t>(column)]] =
              result.is_null(row, column)
                  ? json()
                  : map_value(result.value(row, column), PQftype(result.raw(), column));
        }
        keys.push_back(std::move(key));
      }
      if (result.rows() > 0) {
        last.clear();
        for (int column = 0; column < result.columns(); ++column)
          last.emplace_back(result.get(result.rows() - 1, column));
      }
      const bool done = static_cast<std::size_t>(result.rows()) < batch;
      if (!keys.empty()) on_batch(std::move(keys));
      if (done) break;
    }
  }

 private:
  std::string qualified() const {
    return producer::quote_identifier(schema_) + "." + producer::quote_identifier(table_);
  }

  pg::PgConnection connection_;
  std::string schema_;
  std::string table_;
  std::vector<std::string> key_columns_;
  std::map<std::string, std::string> types_;  // empty: the table does not exist
  std::vector<std::string> columns_;          // compared columns, sorted
  bool has_lsn_ = false;
};

// A mirror index: _id = the primary key (DocumentPlanner's mirror_id), the row as the document
// plus syncline_version (the commit LSN as a number).
class EsMirrorStore final : public ReadStore {
 public:
  EsMirrorStore(const SearchConfig& search, std::string alias, const WriteTable& table)
      : client_(search, false),
        http_(es_projector::EsClient::client_options(search, false)),
        alias_(std::move(alias)),
        table_(table) {}

  std::string target() const override { return "index " + alias_; }

  std::string id_of(const json& key) const override {
    if (key.size() == 1) {
      const json& value = key.begin().value();
      return value.is_string() ? value.get<std::string>() : value.dump();
    }
    return canonical_json(key);
  }

  std::uint64_t count() override {
    // Searches (count, scroll) see what was refreshed; _mget is realtime.
    const auto refreshed = http_.post("/" + alias_ + "/_refresh", "");
    if (refreshed.status == 404) return 0;
    const auto response = http_.get("/" + alias_ + "/_count");
    if (response.status == 404) return 0;
    if (response.status != 200)
      throw std::runtime_error(
          fmt::format("GET /{}/_count: HTTP {}: {}", alias_, response.status, response.body.substr(0, 300)));
    return json::parse(response.body).at("count").get<std::uint64_t>();
  }

  std::map<std::string, StoredRow> fetch(const std::vector<json>& keys) override {
    std::vector<std::pair<std::string, std::string>> documents;
    documents.reserve(keys.size());
    for (const auto& key : keys) documents.emplace_back(alias_, id_of(key));
    std::map<std::string, StoredRow> rows;
    for (auto& [document, current] : client_.fetch(documents)) {
      if (!current) continue;
      StoredRow stored;
      stored.values = std::move(current->source);
      if (stored.values.is_object()) {
        for (const auto field : es_projector::kBookkeepingFields)
          stored.values.erase(std::string(field));
      }
      if (current->version > 0) stored.position = Lsn(static_cast<std::uint64_t>(current->version));
      rows.emplace(document.second, std::move(stored));
    }
    return rows;
  }

  void scan_keys(std::size_t batch, const std::function<void(std::vector<json>)>& on_batch) override {
    const json query = {{"size", batch}, {"_source", false}, {"sort", json::array({"_doc"})}};
    auto page = http_.post("/" + alias_ + "/_search?scroll=2m", query.dump());
    if (page.status == 404) return;
    std::string scroll_id;
    try {
      while (true) {
        if (page.status != 200)
          throw std::runtime_error(
              fmt::format("scroll over {}: HTTP {}: {}", alias_, page.status, page.body.substr(0, 300)));
        const json body = json::parse(page.body);
        scroll_id = body.value("_scroll_id", "");
        const json hits = body.at("hits").value("hits", json::array());
        if (hits.empty()) break;
        std::vector<json> keys;
        for (const auto& hit : hits) keys.push_back(key_of_id(hit.value("_id", "")));
        on_batch(std::move(keys));
        page = http_.post("/_search/scroll", json{{"scroll", "2m"}, {"scroll_id", scroll_id}}.dump());
      }
    } catch (...) {
      free_scroll(scroll_id);
      throw;
    }
    free_scroll(scroll_id);
  }

 private:
  // The primary key an _id stands for, with values typed as the producer maps the write columns.
  json key_of_id(const std::string& id) const {
    if (table_.key_columns.size() == 1) {
      const auto& name = table_.key_columns.front();
      for (const auto& column : table_.relation.columns) {
        if (column.name == name) return json{{name, map_value(id, column.type_oid)}};
      }
      return json{{name, id}};
    }
    json key = json::parse(id, nullptr, false);
    return key.is_object() ? key : json::object();
  }

  void free_scroll(const std::string& scroll_id) {
    if (scroll_id.empty()) return;
    try {
      http_.send({.method = "DELETE",
                  .path = "/_search/scroll",
                  .body = json{{"scroll_id", json::array({scroll_id})}}.dump()});
    } catch (const std::exception& error) {
      logger()->debug("freeing a scroll context: {}", error.what());  // it expires by itself
    }
  }

  es_projector::EsClient client_;
  http::HttpClient http_;
  std::string alias_;
  const WriteTable& table_;
};

// ---- the passes ----

// Re-reads `diffs` on both sides until they agree or `budget` ends; returns what still differs.
// `resolved` counts the keys that agreed.
std::vector<KeyDiff> recheck(WriteRecheck& write, const WriteTable& table, ReadStore& store,
                             std::vector<KeyDiff> diffs, std::chrono::milliseconds budget,
                             std::chrono::milliseconds interval, std::uint64_t& resolved) {
  const auto deadline = Clock::now() + budget;
  const auto id_of = [&store](const json& key) { return store.id_of(key); };
  while (!diffs.empty()) {
    std::vector<json> keys;
    for (const auto& diff : diffs) keys.push_back(diff.key);
    // The read store first: a row it shows then was written before the write snapshot that
    // follows, so lag makes it older, never newer, than the write side.
    const auto read_rows = store.fetch(keys);
    const auto [write_rows, lsn] = write.read(table, keys, id_of);
    std::vector<KeyDiff> still;
    for (const auto& diff : diffs) {
      std::optional<json> write_row;
      if (const auto found = write_rows.find(diff.id); found != write_rows.end()) write_row = found->second;
      std::optional<StoredRow> read_row;
      if (const auto found = read_rows.find(diff.id); found != read_rows.end()) read_row = found->second;
      if (auto again = compare_key(diff.id, diff.key, write_row, read_row, lsn)) {
        still.push_back(std::move(*again));
      } else {
        ++resolved;
      }
    }
    diffs = std::move(still);
    if (diffs.empty() || Clock::now() + interval > deadline) break;
    std::this_thread::sleep_for(interval);
  }
  return diffs;
}

void verify_table(const Config& config, const Options& options, WriteSnapshot& snapshot,
                  const producer::TableName& name,
                  const std::function<std::unique_ptr<ReadStore>(const WriteTable&)>& make_store,
                  TableReport& report) {
  const WriteTable table = snapshot.describe(name);
  if (table.key_columns.empty()) {
    report.error = "the table has no primary key: its rows cannot be matched to the read store's";
    return;
  }
  const auto store = make_store(table);
  report.target = store->target();
  report.write_rows = snapshot.count(name);
  report.read_rows = store->count();

  std::optional<Progress> progress;
  if (options.progress) progress.emplace("rows compared in " + name.to_string());
  std::uint64_t done = 0;
  std::vector<WriteRow> chunk;
  chunk.reserve(options.chunk_rows);
  const auto compare = [&] {
    if (chunk.empty()) return;
    std::vector<json> keys;
    keys.reserve(chunk.size());
    for (const auto& row : chunk) keys.push_back(row.key);
    const ChunkResult result = compare_chunk(chunk, store->fetch(keys), snapshot.lsn());
    ++report.chunks;
    if (!result.digest_equal) ++report.chunks_different;
    report.newer += result.newer;
    report.diffs.insert(report.diffs.end(), result.diffs.begin(), result.diffs.end());
    done += chunk.size();
    chunk.clear();
    if (progress) progress->update(done, report.write_rows);
  };
  snapshot.reader().read_table(name,
                               [&](const producer::RelationInfo& relation, const producer::TupleData& tuple) {
                                 json values = producer::tuple_to_json(relation, tuple).values;
                                 json key = key_of(values, table.key_columns);
                                 std::string id = store->id_of(key);
                                 chunk.push_back({std::move(id), std::move(key), std::move(values)});
                                 if (chunk.size() >= options.chunk_rows) compare();
                               });
  compare();

  // Extras: every key of the read store, looked up in the same write snapshot by key (an index
  // lookup per chunk), then the candidates' read rows for their positions.
  store->scan_keys(options.chunk_rows, [&](std::vector<json> keys) {
    report.extra_keys_scanned += keys.size();
    std::set<std::string> present;
    for (const auto& row : write_rows_by_key(snapshot.connection(), table, keys, /*keys_only=*/true))
      present.insert(store->id_of(key_of(row, table.key_columns)));
    std::vector<json> candidates;
    for (auto& key : keys) {
      if (!present.count(store->id_of(key))) candidates.push_back(std::move(key));
    }
    if (candidates.empty()) return;
    const auto read_rows = store->fetch(candidates);
    for (auto& key : candidates) {
      const std::string id = store->id_of(key);
      const auto found = read_rows.find(id);
      if (found == read_rows.end()) continue;  // gone meanwhile
      if (found->second.position && *found->second.position > snapshot.lsn()) {
        ++report.newer;
        continue;
      }
      report.diffs.push_back({.kind = DiffKind::extra, .id = id, .key = std::move(key), .columns = {}});
    }
  });
  if (progress)
    progress->finish(fmt::format("{}: {} rows compared in {} chunk(s), {} difference(s) before re-checks",
                                 name.to_string(), done, report.chunks, report.diffs.size()));

  WriteRecheck write(config.require_write_db().dsn);
  if (!report.diffs.empty() && options.settle.count() > 0) {
    report.rechecked = report.diffs.size();
    report.diffs = recheck(write, table, *store, std::move(report.diffs), options.settle,
                           options.poll_interval, report.settled);
  }
  if (!options.repair || report.diffs.empty()) return;

  report.repair_attempted = true;
  report.diffs_before_repair = report.diffs;
  SnapshotRequest request;
  request.table = TableName{name.schema, name.table};
  request.keys = std::vector<json>{};
  for (const auto& diff : report.diffs) request.keys->push_back(diff.key);
  request.chunk_rows = std::min<std::size_t>(options.chunk_rows, 1000);
  const SnapshotResult published = publish_snapshot(config, request, nullptr);
  report.repair_rows = published.rows;
  report.repair_deletes = published.deletes;
  report.diffs = recheck(write, table, *store, std::move(report.diffs), options.repair_timeout,
                         options.poll_interval, report.repaired);
}

bool index_has_mappings(const Config& config, const std::string& alias) {
  return std::any_of(config.es_projector.mappings.begin(), config.es_projector.mappings.end(),
                     [&](const EsMappingConfig& mapping) { return mapping.index == alias; });
}

}  // namespace

Report run(const Config& config, const Options& options) {
  const auto all = list_projections(config);
  std::vector<const ProjectionInfo*> chosen;
  if (options.projection) {
    chosen.push_back(&find_projection(all, *options.projection, options.sink));
  } else {
    for (const auto& projection : all) {
      if (!options.sink || projection.sink == *options.sink) chosen.push_back(&projection);
    }
  }

  Report report;
  report.settle_seconds = std::chrono::duration<double>(options.settle).count();
  report.repair = options.repair;
  for (const auto* info : chosen) {
    ProjectionReport projection;
    projection.name = info->name;
    projection.sink = std::string(to_string(info->sink));
    projection.kind = std::string(to_string(info->kind));
    projection.target = info->target;
    if (info->kind == ProjectionKind::pg_sql) {
      projection.verifiable = false;
      projection.reason =
          "a SQL projection holds derived data that cannot be compared row by row with the write database";
    } else if (info->kind == ProjectionKind::es_index && info->tables.empty()) {
      projection.verifiable = false;
      projection.reason = "the index is built from mapped events (derived data), not mirrored rows";
    } else if (info->kind == ProjectionKind::es_index && index_has_mappings(config, info->name)) {
      projection.verifiable = false;
      projection.reason = "the index mixes mirrored rows with documents from mapped events";
    } else if (info->kind == ProjectionKind::es_index && info->tables.size() > 1) {
      projection.verifiable = false;
      projection.reason =
          "several tables are mirrored into the index: its extra documents cannot be told apart";
    }
    report.projections.push_back(std::move(projection));
  }

  const bool any = std::any_of(report.projections.begin(), report.projections.end(),
                               [](const ProjectionReport& projection) { return projection.verifiable; });
  if (!any) return report;

  WriteSnapshot snapshot(config.require_write_db().dsn, std::min<std::size_t>(options.chunk_rows, 5000));
  report.snapshot_lsn = snapshot.lsn();
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const ProjectionInfo& info = *chosen[i];
    ProjectionReport& projection = report.projections[i];
    if (!projection.verifiable) continue;
    for (const auto& table : info.tables) {
      TableReport table_report;
      const producer::TableName source{table.schema, table.table};
      table_report.table = source.to_string();
      std::function<std::unique_ptr<ReadStore>(const WriteTable&)> make_store;
      if (info.sink == Sink::pg) {
        make_store = [&](const WriteTable& write) -> std::unique_ptr<ReadStore> {
          return std::make_unique<PgMirrorStore>(config.require_read_db().dsn, info.target, table.table,
                                                 write.key_columns);
        };
      } else {
        make_store = [&](const WriteTable& write) -> std::unique_ptr<ReadStore> {
          return std::make_unique<EsMirrorStore>(config.require_search(), info.target, write);
        };
      }
      verify_table(config, options, snapshot, source, make_store, table_report);
      projection.tables.push_back(std::move(table_report));
    }
  }
  return report;
}

}  // namespace syncline::ctl::verify
