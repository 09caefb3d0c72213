// MirrorProjection: row-change topics of chosen tables -> same-named tables of a read schema,
// created and widened from the events, upserted in multi-row statements guarded by source position.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/pg.hpp"
#include "consumers/pg/projection.hpp"

namespace syncline::pg_projector {

// How a JSON value is written as text so that PostgreSQL reads it as a value of the column's type.
enum class ValueKind {
  plain,       // the JSON string as it is, other scalars as JSON prints them, objects as JSON text
  json,        // json/jsonb: always the JSON text (a string value keeps its quotes)
  array,       // a PostgreSQL array type: a JSON array becomes an array literal, nested for nesting
  json_array,  // json[]/jsonb[]: an array literal whose elements are JSON texts
  bytea,       // base64 text, decoded in SQL
};

// A column of a mirror table as the catalog describes it.
struct MirrorColumn {
  std::string name;
  std::string type;  // format_type(): what a value is cast to, e.g. "numeric(10,2)"
  ValueKind kind = ValueKind::plain;
};

// What the mirror needs to know about an existing table.
struct MirrorTableShape {
  std::vector<MirrorColumn> columns;                  // in attnum order
  std::vector<std::string> primary_key;               // in key order; empty: no primary key
  std::vector<std::vector<std::string>> unique_keys;  // column names (sorted) of each unique index
                                                      // ON CONFLICT can use, the primary key included

  const MirrorColumn* column(std::string_view name) const;
  bool has_unique_key(std::vector<std::string> columns) const;  // any order
};

// The mirror's access to the read database outside the batch transaction: catalog reads and
// idempotent DDL in autocommit. An interface so unit tests can plan without a database.
class MirrorCatalog {
 public:
  virtual ~MirrorCatalog() = default;
  // std::nullopt when `schema.table` does not exist; throws pg::PgError (SQLSTATE 42809 when the
  // name belongs to something that is not a table).
  virtual std::optional<MirrorTableShape> describe(Session& session, const std::string& schema,
                                                   const std::string& table) = 0;
  // Runs one idempotent statement (CREATE ... IF NOT EXISTS, ADD COLUMN IF NOT EXISTS, a prune).
  // Losing a creation race to another projector (23505, 42P06, 42P07, 42701, 42710) is retried,
  // since the retry's IF NOT EXISTS then sees the winner's object. Throws pg::PgError.
  virtual void execute(Session& session, const std::string& sql,
                       const std::vector<pg::Param>& params = {}) = 0;
};

// The catalog of the session's connection.
std::unique_ptr<MirrorCatalog> make_pg_mirror_catalog();

// SQL text helpers, pure functions (exposed for tests).
namespace mirror_sql {

// "name" with embedded quotes doubled: safe for any identifier.
std::string quote_identifier(std::string_view name);
// 'text' with quotes doubled; E'...' with doubled backslashes when it holds a backslash, so the
// literal reads the same whatever standard_conforming_strings says.
std::string quote_literal(std::string_view text);
// A one-dimensional PostgreSQL text[] literal; nullopt elements are NULL.
std::string text_array_literal(std::span<const pg::Param> elements);
// The column type a table created from events gets for a JSON value: bigint, numeric (integers
// beyond bigint), double precision, boolean, text (strings and null) or jsonb (objects, arrays).
std::string column_type_of(const nlohmann::json& value);
// The kind of a catalog type from its base type name, category and (arrays) element type name.
ValueKind value_kind_of(std::string_view base_type, char category, std::string_view element_type);
// The text of `value` for a column of `kind`; nullopt for JSON null. Throws std::invalid_argument
// when the text would hold a NUL character, which PostgreSQL text cannot store.
std::optional<std::string> column_text(const nlohmann::json& value, ValueKind kind);

}  // namespace mirror_sql

// Not thread-safe: owned and called by the service's consumer thread, like every Projection.
class MirrorProjection final : public Projection {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // Throws std::invalid_argument when two configured tables would share a mirror table (same
  // table name in different schemas). `consumer_group`: the group whose applied positions
  // (syncline.offsets) say when a tombstone may be forgotten. `catalog` null: the session's real
  // catalog.
  MirrorProjection(const MirrorConfig& config, const std::string& topic_prefix, std::string consumer_group = {},
                   std::unique_ptr<MirrorCatalog> catalog = nullptr,
                   Clock clock = std::chrono::steady_clock::now);
  ~MirrorProjection() override;
  MirrorProjection(const MirrorProjection&) = delete;
  MirrorProjection& operator=(const MirrorProjection&) = delete;

  const std::string& name() const override { return name_; }
  const std::vector<std::string>& topics() const override { return topics_; }
  bool wants(std::string_view topic, std::string_view type) const override;

  void setup(Session& session) override;
  void plan(std::span<const Event* const> events, const std::unordered_set<std::size_t>& isolated,
            Session& session, PlanSink& sink) override;
  void reset() override;

  // How often plan() prunes expired tombstones (setup() always does).
  static constexpr std::chrono::hours kPruneInterval{1};

 private:
  struct Change;
  struct Group;
  struct TableBatch;
  enum class GroupKind : char { upsert = 'u', remove = 'd', append = 'a' };

  void prune_tombstones(Session& session);
  void ensure_table(Session& session, TableBatch& batch);
  const MirrorTableShape* describe_cached(Session& session, const std::string& table);
  void plan_change(const Change& change, TableBatch& batch, bool isolated, PlanSink& sink);
  void flush(TableBatch& batch, PlanSink& sink);
  void emit(TableBatch& batch, Group& group, PlanSink& sink);
  const std::string& statement_sql(GroupKind kind, const std::string& table, const MirrorTableShape& shape,
                                   const std::vector<std::string>& columns,
                                   const std::vector<std::string>& key_columns);
  const std::string& truncate_rows_sql(const std::string& table);  // a truncate copy: rows below it

  std::string name_ = "mirror";
  std::string schema_;  // the mirror schema
  std::chrono::milliseconds tombstone_retention_;
  std::string consumer_group_;
  std::vector<std::string> topics_;
  std::set<std::string, std::less<>> topic_set_;
  // (source schema, source table) -> mirror table name.
  std::map<std::pair<std::string, std::string>, std::string> targets_;
  std::unique_ptr<MirrorCatalog> catalog_;
  Clock clock_;
  std::optional<std::chrono::steady_clock::time_point> last_prune_;

  // Catalog facts by mirror table name; forgotten by reset().
  std::unordered_map<std::string, MirrorTableShape> shapes_;
  // Statement texts by (kind, table, columns and their types). Never erased: Statement::sql points
  // into it for the projection's lifetime (unordered_map nodes do not move on rehash).
  std::unordered_map<std::string, std::string> sql_cache_;
  const std::string drop_tombstones_sql_;
  const std::string truncate_floor_sql_;
};

// The mirror's bookkeeping outside its schema (tombstones and truncate floors in schema
// syncline), for tools that move or drop a mirror schema (syncline-ctl resync replay). Each runs
// on `connection` inside the caller's transaction, if one is open; tables not created yet are
// skipped.
namespace mirror_state {
// Forgets everything kept for mirror schema `schema`.
void forget(pg::PgConnection& connection, const std::string& schema);
// What was kept for `from` is now `to`'s (after ALTER SCHEMA from RENAME TO to).
void move(pg::PgConnection& connection, const std::string& from, const std::string& to);
}  // namespace mirror_state

}  // namespace syncline::pg_projector
