// MirrorProjection: row changes -> mirror tables, in multi-row statements (see mirror_projection.hpp).
#include "consumers/pg/mirror_projection.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>

#include "common/envelope.hpp"
#include "common/pg_types.hpp"
#include "common/topic_names.hpp"
#include "common/logging.hpp"
#include "common/lsn.hpp"

namespace syncline::pg_projector {

using json = nlohmann::json;

namespace {

constexpr std::string_view kLsnColumn = "_syncline_lsn";
constexpr std::string_view kSeqColumn = "_syncline_seq";
constexpr int kDdlAttempts = 5;

std::shared_ptr<spdlog::logger> logger() { return log::get("mirror"); }

bool is_reserved_column(std::string_view name) { return name == kLsnColumn || name == kSeqColumn; }

// SQLSTATEs of losing a CREATE ... IF NOT EXISTS race: the catalog's unique index saw the other
// session's object before IF NOT EXISTS could.
bool lost_creation_race(std::string_view sqlstate) {
  return sqlstate == "23505" || sqlstate == "42P06" || sqlstate == "42P07" || sqlstate == "42701" ||
         sqlstate == "42710";
}

using pg::append_array_element;

void check_no_nul(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) {
    throw std::invalid_argument("a value holds a NUL character, which PostgreSQL text cannot store");
  }
}

std::string dump(const json& value) {
  std::string text = value.dump();
  check_no_nul(text);
  return text;
}

// A JSON array as a PostgreSQL array literal: nested JSON arrays become nested dimensions unless
// the elements are JSON themselves (json[]), whose elements are JSON texts.
void append_array_literal(std::string& out, const json& array, bool json_elements) {
  out += '{';
  bool first = true;
  for (const auto& element : array) {
    if (!first) out += ',';
    first = false;
    if (element.is_null()) {
      out += "NULL";
    } else if (!json_elements && element.is_array()) {
      append_array_literal(out, element, false);
    } else if (!json_elements && element.is_string()) {
      const auto& text = element.get_ref<const std::string&>();
      check_no_nul(text);
      append_array_element(out, text);
    } else {
      append_array_element(out, dump(element));  // JSON elements, numbers, booleans, objects
    }
  }
  out += '}';
}

std::string join_quoted(const std::vector<std::string>& names, std::string_view prefix = {}) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += prefix;
    out += mirror_sql::quote_identifier(name);
  }
  return out;
}

// `ref` (a text value) as a value of `column`'s type.
std::string cast_to(const std::string& ref, const MirrorColumn& column) {
  if (column.kind == ValueKind::bytea) {
    return fmt::format("CAST(decode({}, 'base64') AS {})", ref, column.type);
  }
  return fmt::format("CAST({} AS {})", ref, column.type);
}

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// The catalog of the session's connection.
class PgMirrorCatalog final : public MirrorCatalog {
 public:
  std::optional<MirrorTableShape> describe(Session& session, const std::string& schema,
                                           const std::string& table) override {
    auto& connection = session.connection();
    // Domains are looked through to their base type, which decides how values are written.
    const pg::Result columns = connection.exec(
        "SELECT c.relkind, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), b.typname, "
        "b.typcategory, e.typname "
        "FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid "
        "END "
        "LEFT JOIN pg_catalog.pg_type e ON e.oid = b.typelem AND b.typcategory = 'A' "
        "WHERE n.nspname = $1 AND c.relname = $2 "
        "ORDER BY a.attnum",
        {schema, table});
    if (columns.rows() == 0) return std::nullopt;
    const std::string_view relkind = columns.value(0, 0);
    if (relkind != "r" && relkind != "p") {
      throw pg::PgError("42809", fmt::format("{}.{} exists but is not a table", schema, table));
    }
    MirrorTableShape shape;
    for (int row = 0; row < columns.rows(); ++row) {
      if (columns.is_null(row, 1)) continue;  // a table without columns
      const std::string_view category = columns.value(row, 4);
      shape.columns.push_back(MirrorColumn{
          .name = std::string(columns.value(row, 1)),
          .type = std::string(columns.value(row, 2)),
          .kind = mirror_sql::value_kind_of(columns.value(row, 3), category.empty() ? 'X' : category.front(),
                                            columns.value(row, 5)),
      });
    }
    // Only indexes ON CONFLICT can infer: unique, valid, immediate, no predicate, no expressions;
    // INCLUDE columns (past indnkeyatts) are not part of the key.
    const pg::Result indexes = connection.exec(
        "SELECT i.indexrelid::text, i.indisprimary, a.attname "
        "FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid AND i.indimmediate "
        "AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts "
        "ORDER BY i.indexrelid, k.ord",
        {schema, table});
    std::string current;
    std::vector<std::string> key;
    const auto finish = [&] {
      if (!key.empty()) shape.unique_keys.push_back(sorted(std::move(key)));
      key.clear();
    };
    for (int row = 0; row < indexes.rows(); ++row) {
      if (indexes.value(row, 0) != current) {
        finish();
        current = std::string(indexes.value(row, 0));
      }
      key.emplace_back(indexes.value(row, 2));
      if (indexes.value(row, 1) == "t") shape.primary_key.emplace_back(indexes.value(row, 2));
    }
    finish();
    return shape;
  }

  void execute(Session& session, const std::string& sql, const std::vector<pg::Param>& params) override {
    for (int attempt = 1;; ++attempt) {
      try {
        session.connection().exec(sql, params);
        return;
      } catch (const pg::PgError& error) {
        if (!lost_creation_race(error.sqlstate()) || attempt >= kDdlAttempts) throw;
        logger()->debug("lost a creation race to another session, retrying: {}", error.what());
      }
    }
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pure helpers

namespace mirror_sql {

std::string quote_identifier(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_literal(std::string_view text) {
  const bool escape_backslashes = text.find('\\') != std::string_view::npos;
  std::string out = escape_backslashes ? "E'" : "'";
  for (const char c : text) {
    if (c == '\'' || (escape_backslashes && c == '\\')) out += c;
    out += c;
  }
  out += '\'';
  return out;
}

std::string text_array_literal(std::span<const pg::Param> elements) {
  std::string out = "{";
  for (std::size_t i = 0; i < elements.size(); ++i) {
    if (i != 0) out += ',';
    if (elements[i]) {
      append_array_element(out, *elements[i]);
    } else {
      out += "NULL";
    }
  }
  out += '}';
  return out;
}

std::string column_type_of(const json& value) {
  switch (value.type()) {
    case json::value_t::number_integer:
      return "bigint";
    case json::value_t::number_unsigned:
      return value.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                 ? "numeric"
                 : "bigint";
    case json::value_t::number_float:
      return "double precision";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::object:
    case json::value_t::array:
      return "jsonb";
    default:
      return "text";  // strings, null (the type is not known yet), anything else
  }
}

ValueKind value_kind_of(std::string_view base_type, char category, std::string_view element_type) {
  if (base_type == "json" || base_type == "jsonb") return ValueKind::json;
  if (base_type == "bytea") return ValueKind::bytea;
  if (category == 'A') {
    return element_type == "json" || element_type == "jsonb" ? ValueKind::json_array : ValueKind::array;
  }
  return ValueKind::plain;
}

std::optional<std::string> column_text(const json& value, ValueKind kind) {
  if (value.is_null()) return std::nullopt;
  if (kind == ValueKind::json) return dump(value);
  if ((kind == ValueKind::array || kind == ValueKind::json_array) && value.is_array()) {
    std::string out;
    append_array_literal(out, value, kind == ValueKind::json_array);
    return out;
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    check_no_nul(text);
    return text;
  }
  return dump(value);  // numbers, booleans (true/false), objects and arrays as JSON text
}

}  // namespace mirror_sql

const MirrorColumn* MirrorTableShape::column(std::string_view name) const {
  const auto it = std::find_if(columns.begin(), columns.end(), [&](const auto& c) { return c.name == name; });
  return it == columns.end() ? nullptr : &*it;
}

bool MirrorTableShape::has_unique_key(std::vector<std::string> names) const {
  std::sort(names.begin(), names.end());
  return std::find(unique_keys.begin(), unique_keys.end(), names) != unique_keys.end();
}

std::unique_ptr<MirrorCatalog> make_pg_mirror_catalog() { return std::make_unique<PgMirrorCatalog>(); }

// ---------------------------------------------------------------------------------------------
// Planning state

// A row change that passed validation, in batch order.
struct MirrorProjection::Change {
  std::size_t index = 0;
  std::size_t table = 0;  // into the plan's TableBatch list
  Op op = Op::create;
  const json* after = nullptr;   // c/u/r: an object
  const json* before = nullptr;  // an object, or nullptr
  std::optional<json> key;       // the Kafka key: an object naming at least one column
  std::string lsn;               // the source version (epoch << 56 | commit LSN) as a pg_lsn prints it
  std::string seq;
  std::string_view topic;
  std::int32_t partition = 0;
  std::optional<std::string> commit_ts;  // source.commit_ts: when a delete's tombstone may go
  std::vector<std::string> unchanged_toast;

  bool is_toasted(const std::string& column) const {
    return std::find(unchanged_toast.begin(), unchanged_toast.end(), column) != unchanged_toast.end();
  }
};

// Rows of one table with the same statement shape, waiting to become one statement. Values are
// kept per column, as they travel: one text[] parameter per column.
struct MirrorProjection::Group {
  GroupKind kind = GroupKind::upsert;
  std::vector<std::string> columns;            // sorted
  std::vector<std::string> key_columns;        // sorted; the ON CONFLICT target of an upsert
  std::vector<std::vector<pg::Param>> values;  // [column][row]
  std::vector<pg::Param> lsns;
  std::vector<pg::Param> seqs;
  std::vector<pg::Param> keys;  // canonical JSON keys; empty for append
  // Deletes only: where each was read and when it was committed (its tombstone's horizon).
  std::vector<pg::Param> topics;
  std::vector<pg::Param> partitions;
  std::vector<pg::Param> commit_times;
  std::vector<std::size_t> events;
};

// One mirror table's part of a plan() call.
struct MirrorProjection::TableBatch {
  std::string table;
  // Columns the events bring -> the type a new column gets (nullopt while only nulls were seen).
  std::map<std::string, std::optional<std::string>> columns;
  std::vector<std::string> create_key;  // key columns of the first keyed change
  bool needs_table = false;             // some change writes to it (a truncate alone does not)
  bool unkeyed_inserts = false;
  const MirrorTableShape* shape = nullptr;  // null: the table does not exist
  std::optional<std::string> failure;       // why its DDL failed permanently
  std::vector<Group> pending;
  std::unordered_set<std::string> pending_keys;  // keys in `pending`: a repeat must start anew

  void need_column(const std::string& name, const json& value) {
    auto& type = columns[name];
    if (!type && !value.is_null()) type = mirror_sql::column_type_of(value);
  }
};

namespace {

// Thrown inside plan() for an event that can never be applied; the message is the reason.
class Rejection : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

const json* member(const json& object, std::string_view name) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

std::string string_member(const json& object, std::string_view name, std::string_view what) {
  const json* value = member(object, name);
  if (value == nullptr || !value->is_string()) throw Rejection(fmt::format("row change lacks '{}'", what));
  return value->get<std::string>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// MirrorProjection

MirrorProjection::MirrorProjection(const MirrorConfig& config, const std::string& topic_prefix,
                                   std::string consumer_group, std::unique_ptr<MirrorCatalog> catalog, Clock clock)
    : schema_(config.schema),
      tombstone_retention_(config.tombstone_retention),
      consumer_group_(std::move(consumer_group)),
      catalog_(catalog ? std::move(catalog) : make_pg_mirror_catalog()),
      clock_(std::move(clock)),
      // The truncate's tombstones are older than its floor, which now keeps what they kept out.
      drop_tombstones_sql_("DELETE FROM syncline.mirror_tombstones WHERE mirror_schema = $1 AND table_name = $2 "
                           "AND (commit_lsn, seq) < ($3::pg_lsn, $4::bigint)"),
      // A table's floor only rises: every copy of one truncate, and an older truncate read late,
      // leave it where the newest put it.
      truncate_floor_sql_(
          "INSERT INTO syncline.mirror_truncates AS tf (mirror_schema, table_name, commit_lsn, seq) "
          "VALUES ($1, $2, $3::pg_lsn, $4::bigint) ON CONFLICT (mirror_schema, table_name) DO UPDATE "
          "SET commit_lsn = EXCLUDED.commit_lsn, seq = EXCLUDED.seq, truncated_at = now() "
          "WHERE (tf.commit_lsn, tf.seq) < (EXCLUDED.commit_lsn, EXCLUDED.seq)") {
  for (const auto& table : config.tables) {
    const auto [it, added] = targets_.emplace(std::pair{table.schema, table.table}, table.table);
    if (!added) continue;
    for (const auto& [source, target] : targets_) {
      if (target == table.table && source != it->first) {
        throw std::invalid_argument(fmt::format("mirror: {}.{} and {}.{} would both be mirrored into {}.{}",
                                                source.first, source.second, table.schema, table.table,
                                                schema_, table.table));
      }
    }
    // Tables whose names sanitize alike share a topic; plan() tells them apart by event source.
    std::string topic = row_change_topic_name(topic_prefix, table.schema, table.table);
    if (topic_set_.insert(topic).second) topics_.push_back(std::move(topic));
  }
}

MirrorProjection::~MirrorProjection() = default;

bool MirrorProjection::wants(std::string_view topic, std::string_view /*type*/) const {
  return topic_set_.contains(topic);
}

void MirrorProjection::setup(Session& session) {
  reset();  // a new connection may face a changed database
  catalog_->execute(session, "CREATE SCHEMA IF NOT EXISTS " + mirror_sql::quote_identifier(schema_));
  catalog_->execute(session, "CREATE SCHEMA IF NOT EXISTS syncline");
  catalog_->execute(session,
                    "CREATE TABLE IF NOT EXISTS syncline.mirror_tombstones ("
                    "mirror_schema text NOT NULL, table_name text NOT NULL, "
                    "key text NOT NULL, "  // canonical JSON of the primary key
                    "commit_lsn pg_lsn NOT NULL, seq bigint NOT NULL, "
                    "deleted_at timestamptz NOT NULL DEFAULT now(), "
                    "PRIMARY KEY (mirror_schema, table_name, key))");
  // Where the delete was read and when it was committed: its partition's applied source time says
  // when it may be forgotten. NULL in tombstones written before these columns existed.
  catalog_->execute(session,
                    "ALTER TABLE syncline.mirror_tombstones ADD COLUMN IF NOT EXISTS topic text, "
                    "ADD COLUMN IF NOT EXISTS kafka_partition integer, ADD COLUMN IF NOT EXISTS commit_ts timestamptz");
  // One row per truncated table: the newest truncate's position. Changes at or below it are
  // older than the truncate and never written, whichever partition they come from.
  catalog_->execute(session,
                    "CREATE TABLE IF NOT EXISTS syncline.mirror_truncates ("
                    "mirror_schema text NOT NULL, table_name text NOT NULL, "
                    "commit_lsn pg_lsn NOT NULL, seq bigint NOT NULL, "
                    "truncated_at timestamptz NOT NULL DEFAULT now(), "
                    "PRIMARY KEY (mirror_schema, table_name))");
  prune_tombstones(session);
}

void MirrorProjection::prune_tombstones(Session& session) {
  try {
    // Only this mirror schema's: another projector may mirror into another schema with another
    // retention. Never by the wall clock: a tombstone goes when the partition its delete was read
    // from has applied a change committed `tombstone_retention` after the delete, so a projector
    // stopped for a week forgets nothing. Only snapshot rows can arrive after a newer delete of
    // their key, and no snapshot row is published more than snapshot_max_age after it was read.
    const std::string retention = std::to_string(tombstone_retention_.count());
    const std::vector<pg::Param> topics(topics_.begin(), topics_.end());
    // Tombstones of an older version know neither topic nor commit time: they go when every
    // partition of the mirror's topics has applied past their (later than commit) deletion time.
    catalog_->execute(
        session,
        "DELETE FROM syncline.mirror_tombstones tb WHERE tb.mirror_schema = $1 AND CASE WHEN tb.topic IS NOT NULL "
        "THEN tb.commit_ts < (SELECT o.last_commit_ts FROM syncline.offsets o WHERE o.consumer_group = $2 "
        "AND o.topic = tb.topic AND o.partition = tb.kafka_partition) - $3::bigint * interval '1 millisecond' "
        "ELSE tb.deleted_at < (SELECT min(o.last_commit_ts) FROM syncline.offsets o WHERE o.consumer_group = $2 "
        "AND o.topic = ANY($4::text[])) - $3::bigint * interval '1 millisecond' END",
        {schema_, consumer_group_, retention, mirror_sql::text_array_literal(topics)});
  } catch (const pg::PgError& error) {
    if (error.retriable()) throw;
    // Expired tombstones only cost space: a prune that cannot run must not stop the mirror.
    logger()->warn("pruning the tombstones of mirror schema {} failed: {}", schema_, error.what());
  }
  last_prune_ = clock_();
}

void MirrorProjection::reset() { shapes_.clear(); }

const MirrorTableShape* MirrorProjection::describe_cached(Session& session, const std::string& table) {
  if (const auto it = shapes_.find(table); it != shapes_.end()) return &it->second;
  auto shape = catalog_->describe(session, schema_, table);
  if (!shape) return nullptr;
  auto& cached = shapes_[table];
  cached = std::move(*shape);
  return &cached;
}

void MirrorProjection::ensure_table(Session& session, TableBatch& batch) {
  const std::string target =
      mirror_sql::quote_identifier(schema_) + "." + mirror_sql::quote_identifier(batch.table);
  const auto redescribe = [&] {
    shapes_.erase(batch.table);
    batch.shape = describe_cached(session, batch.table);
    if (batch.shape == nullptr) {
      throw pg::PgError("42P01",
                        fmt::format("mirror table {}.{} is missing after its DDL", schema_, batch.table));
    }
  };
  try {
    batch.shape = describe_cached(session, batch.table);
    if (batch.shape == nullptr) {
      if (!batch.needs_table) return;
      std::string sql = "CREATE TABLE IF NOT EXISTS " + target + " (";
      for (const auto& [column, type] : batch.columns) {
        sql += fmt::format("{} {}, ", mirror_sql::quote_identifier(column), type.value_or("text"));
      }
      sql += fmt::format("{} pg_lsn NOT NULL, {} bigint NOT NULL, ", mirror_sql::quote_identifier(kLsnColumn),
                         mirror_sql::quote_identifier(kSeqColumn));
      // Without a key, the position identifies a row: a replayed insert is recognised, not doubled.
      sql += batch.create_key.empty()
                 ? fmt::format("UNIQUE ({}, {}))", mirror_sql::quote_identifier(kLsnColumn),
                               mirror_sql::quote_identifier(kSeqColumn))
                 : fmt::format("PRIMARY KEY ({}))", join_quoted(batch.create_key));
      logger()->info("creating mirror table {}.{}", schema_, batch.table);
      catalog_->execute(session, sql);
      redescribe();
    }
    // A table created by someone else may lack the position columns: added nullable, since it
    // may hold rows already; the guards treat a NULL position as older than any change.
    std::vector<std::string> additions;
    for (const auto& [column, type] : batch.columns) {
      if (batch.shape->column(column) == nullptr) {
        additions.push_back(mirror_sql::quote_identifier(column) + " " + type.value_or("text"));
      }
    }
    if (batch.shape->column(kLsnColumn) == nullptr) {
      additions.push_back(mirror_sql::quote_identifier(kLsnColumn) + " pg_lsn");
    }
    if (batch.shape->column(kSeqColumn) == nullptr) {
      additions.push_back(mirror_sql::quote_identifier(kSeqColumn) + " bigint");
    }
    if (!additions.empty()) {
      std::string sql = "ALTER TABLE " + target;
      for (std::size_t i = 0; i < additions.size(); ++i) {
        sql += (i == 0 ? " ADD COLUMN IF NOT EXISTS " : ", ADD COLUMN IF NOT EXISTS ") + additions[i];
      }
      logger()->info("adding {} column(s) to mirror table {}.{}", additions.size(), schema_, batch.table);
      catalog_->execute(session, sql);
      redescribe();
    }
    const std::vector<std::string> position{std::string(kLsnColumn), std::string(kSeqColumn)};
    if (batch.unkeyed_inserts && batch.shape->primary_key.empty() && !batch.shape->has_unique_key(position)) {
      catalog_->execute(session, fmt::format("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})",
                                             mirror_sql::quote_identifier(batch.table + "_syncline_position"),
                                             target, join_quoted(position)));
      redescribe();
    }
  } catch (const pg::PgError& error) {
    if (error.error_class() != pg::ErrorClass::permanent) throw;
    logger()->warn("mirror table {}.{} cannot be prepared: {}", schema_, batch.table, error.what());
    shapes_.erase(batch.table);
    batch.shape = nullptr;
    batch.failure = fmt::format("mirror table {}.{} cannot be created or altered: {}", schema_, batch.table,
                                error.what());
  }
}

void MirrorProjection::plan(std::span<const Event* const> events,
                            const std::unordered_set<std::size_t>& isolated, Session& session,
                            PlanSink& sink) {
  if (!last_prune_ || clock_() - *last_prune_ >= kPruneInterval) prune_tombstones(session);

  // 1. Validate every event and learn which tables and columns the batch needs.
  std::vector<TableBatch> batches;
  std::map<std::string, std::size_t, std::less<>> batch_of;
  std::vector<Change> changes;
  changes.reserve(events.size());
  for (const Event* event : events) {
    try {
      const json& value = *event->value;
      if (!value.is_object()) throw Rejection("event value is not a JSON object");
      const json* op_field = member(value, "op");
      std::optional<Op> op;
      if (op_field != nullptr && op_field->is_string() &&
          op_field->get_ref<const std::string&>().size() == 1) {
        op = op_from_code(op_field->get_ref<const std::string&>().front());
      }
      if (!op) throw Rejection("not a row change: 'op' is missing or not one of c, u, d, r, t");
      const json* source = member(value, "source");
      if (source == nullptr || !source->is_object()) throw Rejection("row change lacks 'source'");
      const auto source_schema = string_member(*source, "schema", "source.schema");
      const auto source_table = string_member(*source, "table", "source.table");
      const auto target = targets_.find({source_schema, source_table});
      if (target == targets_.end()) {
        // A table that is not mirrored but shares a (sanitized) topic name with one that is.
        sink.skip(event->index);
        continue;
      }
      Change change;
      change.index = event->index;
      change.op = *op;
      const json* commit_lsn = member(*source, "commit_lsn");
      const auto lsn = commit_lsn != nullptr && commit_lsn->is_string()
                           ? Lsn::parse(commit_lsn->get_ref<const std::string&>())
                           : std::nullopt;
      if (!lsn) {
        throw Rejection(fmt::format("source.commit_lsn {} is not a WAL position",
                                    commit_lsn != nullptr ? commit_lsn->dump() : "(missing)"));
      }
      // Ordered by source version, so a new source epoch outranks the old one whatever its LSNs.
      try {
        change.lsn = Lsn(source_version_of(value)).to_string();
      } catch (const EnvelopeError& error) {
        throw Rejection(error.what());
      }
      change.topic = event->topic;
      change.partition = event->partition;
      if (const json* commit_ts = member(*source, "commit_ts"); commit_ts != nullptr && commit_ts->is_string()) {
        change.commit_ts = commit_ts->get<std::string>();
      }
      const json* seq = member(*source, "seq");
      if (seq == nullptr || !seq->is_number_integer() ||
          (!seq->is_number_unsigned() && seq->get<std::int64_t>() < 0) ||
          (seq->is_number_unsigned() &&
           seq->get<std::uint64_t>() >
               static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))) {
        throw Rejection("source.seq is missing or not a non-negative 64-bit integer");
      }
      change.seq = seq->dump();
      if (const json* toast = member(*source, "unchanged_toast"); toast != nullptr && toast->is_array()) {
        for (const auto& column : *toast) {
          if (column.is_string()) change.unchanged_toast.push_back(column.get<std::string>());
        }
      }
      if (change.op != Op::truncate) {
        const json* after = member(value, "after");
        const json* before = member(value, "before");
        change.after = after != nullptr && after->is_object() ? after : nullptr;
        change.before = before != nullptr && before->is_object() ? before : nullptr;
        if (change.op != Op::remove && change.after == nullptr) {
          throw Rejection(fmt::format("row change with op '{}' has no 'after' object", op_code(*op)));
        }
        if (event->key && !event->key->empty()) {
          auto key = json::parse(*event->key, nullptr, false);
          if (!key.is_null()) {
            if (!key.is_object() || key.empty()) {
              throw Rejection("the Kafka key is not a JSON object of primary-key columns");
            }
            change.key = std::move(key);
          }
        }
        for (const json* row :
             {change.after, change.key ? static_cast<const json*>(&*change.key) : nullptr}) {
          if (row == nullptr) continue;
          for (const auto& [column, column_value] : row->items()) {
            if (is_reserved_column(column)) {
              throw Rejection(
                  fmt::format("column '{}' is reserved for the mirror's own bookkeeping", column));
            }
          }
        }
      }

      auto [slot, added] = batch_of.try_emplace(target->second, batches.size());
      if (added) {
        batches.emplace_back();
        batches.back().table = target->second;
      }
      TableBatch& batch = batches[slot->second];
      change.table = slot->second;
      if (change.op != Op::remove && change.op != Op::truncate) {
        batch.needs_table = true;
        for (const auto& [column, column_value] : change.after->items()) {
          if (!change.is_toasted(column)) batch.need_column(column, column_value);
        }
        if (!change.key && change.op != Op::update) batch.unkeyed_inserts = true;
      }
      if (change.key) {
        batch.needs_table = true;  // a delete's tombstone needs the key columns' types too
        for (const auto& [column, column_value] : change.key->items()) {
          batch.need_column(column, column_value);
        }
        if (batch.create_key.empty()) {
          for (const auto& [column, column_value] : change.key->items()) batch.create_key.push_back(column);
        }
      }
      changes.push_back(std::move(change));
    } catch (const Rejection& rejection) {
      sink.reject(event->index, rejection.what());
    } catch (const json::exception& error) {
      sink.reject(event->index, fmt::format("malformed row change: {}", error.what()));
    }
  }

  // 2. DDL, in autocommit before the batch transaction: create or widen what the batch needs.
  for (auto& batch : batches) ensure_table(session, batch);

  // 3. Statements, in batch order per table.
  for (const auto& change : changes) {
    TableBatch& batch = batches[change.table];
    if (batch.failure) {
      sink.reject(change.index, *batch.failure);
      continue;
    }
    try {
      plan_change(change, batch, isolated.contains(change.index), sink);
    } catch (const Rejection& rejection) {
      sink.reject(change.index, rejection.what());
    } catch (const std::invalid_argument& error) {
      sink.reject(change.index, fmt::format("row change cannot be written to {}.{}: {}", schema_, batch.table,
                                            error.what()));
    }
  }
  for (auto& batch : batches) flush(batch, sink);
}

void MirrorProjection::plan_change(const Change& change, TableBatch& batch, bool isolated, PlanSink& sink) {
  const MirrorTableShape* shape = batch.shape;
  if (change.op == Op::truncate) {
    // Every copy (one per partition) applies: it raises the table's floor, removes the rows below
    // its position and leaves the newer ones, which another partition may already have brought.
    // See docs/PG_PROJECTOR.md for the argument per interleaving.
    flush(batch, sink);
    sink.add(Statement{.sql = &truncate_floor_sql_,
                       .params = {schema_, batch.table, change.lsn, change.seq},
                       .events = {change.index}});
    sink.add(Statement{.sql = &drop_tombstones_sql_,
                       .params = {schema_, batch.table, change.lsn, change.seq},
                       .events = {change.index}});
    if (shape != nullptr) {
      sink.add(Statement{.sql = &truncate_rows_sql(batch.table), .params = {change.lsn, change.seq}, .events = {change.index}});
    }
    return;
  }

  // The row's key: the Kafka key, else taken from the row by the table's primary key.
  std::optional<json> derived;
  const json* key = change.key ? &*change.key : nullptr;
  if (key == nullptr && shape != nullptr && !shape->primary_key.empty()) {
    const json* row = change.op == Op::remove ? change.before : change.after;
    if (row == nullptr) {
      throw Rejection(fmt::format("delete on keyed table {}.{} has neither a Kafka key nor 'before'", schema_,
                                  batch.table));
    }
    derived = json::object();
    for (const auto& column : shape->primary_key) {
      const json* value = member(*row, column);
      if (value == nullptr) {
        throw Rejection(
            fmt::format("row change has no Kafka key and its row lacks primary-key column '{}' of {}.{}",
                        column, schema_, batch.table));
      }
      (*derived)[column] = *value;
    }
    key = &*derived;
  }
  if (key == nullptr && (change.op == Op::update || change.op == Op::remove)) {
    sink.skip(change.index);  // a table without a key is append-only: no row to update or delete
    return;
  }
  if (shape == nullptr) {
    throw Rejection(fmt::format("mirror table {}.{} does not exist", schema_, batch.table));
  }
  const GroupKind kind = key == nullptr            ? GroupKind::append
                         : change.op == Op::remove ? GroupKind::remove
                                                   : GroupKind::upsert;
  std::vector<std::string> key_columns;  // sorted, as a JSON object iterates
  if (key != nullptr) {
    for (const auto& [column, value] : key->items()) key_columns.push_back(column);
    if (!shape->has_unique_key(key_columns)) {
      throw Rejection(
          fmt::format("mirror table {}.{} has no primary key or unique index on ({}), the key of "
                      "this row change",
                      schema_, batch.table, fmt::join(key_columns, ", ")));
    }
  }

  // Column -> value, sorted by column name: the group's shape.
  std::map<std::string, const json*> row;
  if (kind != GroupKind::remove) {
    for (const auto& [column, value] : change.after->items()) {
      if (!change.is_toasted(column)) row[column] = &value;
    }
  }
  if (key != nullptr) {
    for (const auto& [column, value] : key->items()) row.try_emplace(column, &value);
  }
  std::vector<std::string> columns;
  std::vector<pg::Param> values;
  columns.reserve(row.size());
  values.reserve(row.size());
  for (const auto& [column, value] : row) {
    const MirrorColumn* target = shape->column(column);
    if (target == nullptr) {
      throw Rejection(fmt::format("mirror table {}.{} has no column '{}'", schema_, batch.table, column));
    }
    columns.push_back(column);
    values.push_back(mirror_sql::column_text(*value, target->kind));
  }
  const std::string key_text = key != nullptr ? canonical_json(*key) : std::string();

  Group single;
  Group* group = nullptr;
  if (isolated) {
    flush(batch, sink);  // what came before it in the batch runs first
    group = &single;
  } else {
    // A multi-row upsert cannot touch one row twice, and a key's changes apply in order.
    if (key != nullptr && batch.pending_keys.contains(key_text)) flush(batch, sink);
    const auto it = std::find_if(batch.pending.begin(), batch.pending.end(), [&](const Group& g) {
      return g.kind == kind && g.columns == columns && g.key_columns == key_columns;
    });
    group = it != batch.pending.end() ? &*it : &batch.pending.emplace_back();
    if (key != nullptr) batch.pending_keys.insert(key_text);
  }
  if (group->events.empty()) {
    group->kind = kind;
    group->columns = columns;
    group->key_columns = key_columns;
    group->values.resize(columns.size());
  }
  for (std::size_t i = 0; i < values.size(); ++i) group->values[i].push_back(std::move(values[i]));
  group->lsns.emplace_back(change.lsn);
  group->seqs.emplace_back(change.seq);
  if (key != nullptr) group->keys.emplace_back(key_text);
  if (kind == GroupKind::remove) {
    group->topics.emplace_back(std::string(change.topic));
    group->partitions.emplace_back(std::to_string(change.partition));
    group->commit_times.emplace_back(change.commit_ts);
  }
  group->events.push_back(change.index);
  if (isolated) emit(batch, single, sink);
}

void MirrorProjection::flush(TableBatch& batch, PlanSink& sink) {
  for (auto& group : batch.pending) emit(batch, group, sink);
  batch.pending.clear();
  batch.pending_keys.clear();
}

void MirrorProjection::emit(TableBatch& batch, Group& group, PlanSink& sink) {
  Statement statement;
  statement.sql = &statement_sql(group.kind, batch.table, *batch.shape, group.columns, group.key_columns);
  statement.params.reserve(group.columns.size() + 3);
  for (const auto& column : group.values) {
    statement.params.emplace_back(mirror_sql::text_array_literal(column));
  }
  statement.params.emplace_back(mirror_sql::text_array_literal(group.lsns));
  statement.params.emplace_back(mirror_sql::text_array_literal(group.seqs));
  if (group.kind != GroupKind::append) {
    statement.params.emplace_back(mirror_sql::text_array_literal(group.keys));
  }
  if (group.kind == GroupKind::remove) {
    statement.params.emplace_back(mirror_sql::text_array_literal(group.topics));
    statement.params.emplace_back(mirror_sql::text_array_literal(group.partitions));
    statement.params.emplace_back(mirror_sql::text_array_literal(group.commit_times));
  }
  statement.events = std::move(group.events);
  sink.add(std::move(statement));
}

const std::string& MirrorProjection::truncate_rows_sql(const std::string& table) {
  auto [it, added] = sql_cache_.try_emplace(std::string("t\x1f") + table);
  if (added) {
    // Rows without a position were not written by the mirror: older than any truncate.
    it->second = fmt::format("DELETE FROM {}.{} WHERE (({}, {}) < ($1::pg_lsn, $2::bigint)) IS NOT FALSE",
                             mirror_sql::quote_identifier(schema_), mirror_sql::quote_identifier(table),
                             mirror_sql::quote_identifier(kLsnColumn), mirror_sql::quote_identifier(kSeqColumn));
  }
  return it->second;
}

const std::string& MirrorProjection::statement_sql(GroupKind kind, const std::string& table,
                                                   const MirrorTableShape& shape,
                                                   const std::vector<std::string>& columns,
                                                   const std::vector<std::string>& key_columns) {
  // The casts come from the catalog, so the types are part of the text's identity: after a
  // reset() a recreated table gets new texts and the old ones stay valid.
  std::string cache_key{static_cast<char>(kind)};
  cache_key += '\x1f';
  cache_key += table;
  std::vector<const MirrorColumn*> targets;
  for (const auto& column : columns) {
    const MirrorColumn* target = shape.column(column);
    if (target == nullptr) {
      throw std::logic_error("mirror: statement for a column the table lacks: " + column);
    }
    targets.push_back(target);
    cache_key += fmt::format("\x1f{}\x1e{}\x1e{}", column, target->type, static_cast<int>(target->kind));
  }
  cache_key += fmt::format("\x1f{}", fmt::join(key_columns, "\x1e"));
  if (const auto it = sql_cache_.find(cache_key); it != sql_cache_.end()) return it->second;

  using mirror_sql::quote_identifier;
  using mirror_sql::quote_literal;
  const std::string target = quote_identifier(schema_) + "." + quote_identifier(table);
  const std::string lsn = quote_identifier(kLsnColumn);
  const std::string seq = quote_identifier(kSeqColumn);
  const bool keyed = kind != GroupKind::append;

  // unnest($1::text[], ...) AS v(c1, ..., p_lsn, p_seq[, p_key]): positional aliases, so no source
  // column name can clash with the mirror's own.
  std::string arrays;
  std::string aliases;
  const bool remove = kind == GroupKind::remove;
  const std::size_t arity = columns.size() + (keyed ? 3 : 2) + (remove ? 3 : 0);
  for (std::size_t i = 1; i <= arity; ++i) arrays += fmt::format("{}${}::text[]", i == 1 ? "" : ", ", i);
  for (std::size_t i = 1; i <= columns.size(); ++i) aliases += fmt::format("c{}, ", i);
  aliases += keyed ? "p_lsn, p_seq, p_key" : "p_lsn, p_seq";
  if (remove) aliases += ", p_topic, p_part, p_ts";
  const std::string from = fmt::format("unnest({}) AS v({})", arrays, aliases);
  std::string casts;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    casts += cast_to(fmt::format("v.c{}", i + 1), *targets[i]) + ", ";
  }
  casts += "v.p_lsn::pg_lsn, v.p_seq::bigint";
  const std::string tombstone_of_table = fmt::format("tb.mirror_schema = {} AND tb.table_name = {}",
                                                     quote_literal(schema_), quote_literal(table));
  // Above the table's truncate floor (or no floor): a change at or below it is older than the
  // newest truncate and must not come back. The subquery runs once per statement.
  const std::string above_floor = fmt::format(
      "((v.p_lsn::pg_lsn, v.p_seq::bigint) > (SELECT tf.commit_lsn, tf.seq FROM syncline.mirror_truncates tf "
      "WHERE tf.mirror_schema = {} AND tf.table_name = {})) IS NOT FALSE",
      quote_literal(schema_), quote_literal(table));

  std::string sql;
  switch (kind) {
    case GroupKind::append:
      sql =
          fmt::format("INSERT INTO {} ({}{}{}, {}) SELECT {} FROM {} WHERE {} ON CONFLICT ({}, {}) DO NOTHING",
                      target, join_quoted(columns), columns.empty() ? "" : ", ", lsn, seq, casts, from,
                      above_floor, lsn, seq);
      break;
    case GroupKind::upsert: {
      // The conflict target is the key's columns; plan_change checked that a unique index has them.
      std::string updates;
      for (const auto& column : columns) {
        if (std::find(key_columns.begin(), key_columns.end(), column) != key_columns.end()) continue;
        updates += fmt::format("{0} = EXCLUDED.{0}, ", quote_identifier(column));
      }
      updates += fmt::format("{0} = EXCLUDED.{0}, {1} = EXCLUDED.{1}", lsn, seq);
      sql = fmt::format(
          "INSERT INTO {0} AS cur ({1}, {2}, {3}) SELECT {4} FROM {5} "
          // A newer delete's tombstone keeps an older change from bringing the row back.
          "WHERE NOT EXISTS (SELECT 1 FROM syncline.mirror_tombstones tb WHERE {6} AND tb.key = v.p_key "
          "AND (tb.commit_lsn, tb.seq) >= (v.p_lsn::pg_lsn, v.p_seq::bigint)) AND {9} "
          "ON CONFLICT ({8}) DO UPDATE SET {7} "
          // An older change never overwrites a newer one; a NULL position (a row the mirror did not
          // write) counts as older.
          "WHERE ((cur.{2}, cur.{3}) < (EXCLUDED.{2}, EXCLUDED.{3})) IS NOT FALSE",
          target, join_quoted(columns), lsn, seq, casts, from, tombstone_of_table, updates,
          join_quoted(key_columns), above_floor);
      break;
    }
    case GroupKind::remove: {
      std::string matches;
      for (std::size_t i = 0; i < targets.size(); ++i) {
        matches += fmt::format("cur.{} = {} AND ", quote_identifier(columns[i]),
                               cast_to(fmt::format("v.c{}", i + 1), *targets[i]));
      }
      sql = fmt::format(
          "WITH v AS (SELECT * FROM {0}), "
          "gone AS (DELETE FROM {1} AS cur USING v WHERE {2}"
          "((cur.{3}, cur.{4}) < (v.p_lsn::pg_lsn, v.p_seq::bigint)) IS NOT FALSE) "
          // The tombstone keeps the newest delete's position (none below the truncate floor, which
          // keeps older changes out already).
          "INSERT INTO syncline.mirror_tombstones AS tb "
          "(mirror_schema, table_name, key, commit_lsn, seq, topic, kafka_partition, commit_ts) "
          "SELECT {5}, {6}, v.p_key, v.p_lsn::pg_lsn, v.p_seq::bigint, v.p_topic, v.p_part::integer, "
          "coalesce(v.p_ts::timestamptz, now()) FROM v WHERE {7} "
          "ON CONFLICT (mirror_schema, table_name, key) DO UPDATE "
          "SET commit_lsn = EXCLUDED.commit_lsn, seq = EXCLUDED.seq, deleted_at = EXCLUDED.deleted_at, "
          "topic = EXCLUDED.topic, kafka_partition = EXCLUDED.kafka_partition, commit_ts = EXCLUDED.commit_ts "
          "WHERE (tb.commit_lsn, tb.seq) < (EXCLUDED.commit_lsn, EXCLUDED.seq)",
          from, target, matches, lsn, seq, quote_literal(schema_), quote_literal(table), above_floor);
      break;
    }
  }
  return sql_cache_.emplace(std::move(cache_key), std::move(sql)).first->second;
}

}  // namespace syncline::pg_projector

namespace syncline::pg_projector::mirror_state {

namespace {

// The bookkeeping tables that exist (a mirror that never ran set-up has none).
std::vector<std::string> state_tables(pg::PgConnection& connection) {
  std::vector<std::string> tables;
  for (const char* name : {"syncline.mirror_tombstones", "syncline.mirror_truncates"}) {
    if (!connection.exec("SELECT to_regclass($1)", {std::string(name)}).is_null(0, 0)) tables.emplace_back(name);
  }
  return tables;
}

}  // namespace

void forget(pg::PgConnection& connection, const std::string& schema) {
  for (const auto& table : state_tables(connection))
    connection.exec("DELETE FROM " + table + " WHERE mirror_schema = $1", {schema});
}

void move(pg::PgConnection& connection, const std::string& from, const std::string& to) {
  for (const auto& table : state_tables(connection))
    connection.exec("UPDATE " + table + " SET mirror_schema = $2 WHERE mirror_schema = $1", {from, to});
}

}  // namespace syncline::pg_projector::mirror_state
