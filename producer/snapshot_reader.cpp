// SnapshotReader: catalog lookups and cursor reads under an imported snapshot (see snapshot_reader.hpp).
#include "producer/snapshot_reader.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "common/logging.hpp"
#include "producer/replication_connection.hpp"

namespace syncline::producer {
namespace {

constexpr std::string_view kInvalidParameter = "22023";
constexpr std::string_view kUndefinedTable = "42P01";
constexpr const char* kCursor = "syncline_snapshot_rows";

// Exported snapshot names look like "00000003-00000002-1": hex digits and dashes. Checked because
// SET TRANSACTION SNAPSHOT takes no parameters, so the name is spliced into the statement.
bool is_snapshot_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f') || c == '-';
  });
}

std::string column_list(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& name : names) list += (list.empty() ? "" : ", ") + quote_identifier(name);
  return list;
}

}  // namespace

SnapshotReader::SnapshotReader(pg::PgConnection& connection, std::string_view snapshot_name,
                               std::size_t chunk_rows)
    : connection_(connection), chunk_rows_(std::max<std::size_t>(chunk_rows, 1)) {
  if (!is_snapshot_name(snapshot_name)) {
    throw pg::PgError(std::string(kInvalidParameter),
                      "'" + std::string(snapshot_name) + "' is not an exported snapshot name");
  }
  transaction_.emplace(connection_, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  // Must be the transaction's first statement, before anything takes a snapshot of its own.
  transaction_->exec("SET TRANSACTION SNAPSHOT " + quote_literal(snapshot_name));
  // The same text forms the walsender produces for the stream (see ReplicationConnection).
  transaction_->exec(
      "SET LOCAL DateStyle = 'ISO'; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3");
}

SnapshotReader::~SnapshotReader() = default;

RelationInfo SnapshotReader::describe(const TableName& table) {
  // pgoutput's logicalrep_write_attrs: no dropped or generated columns; key flags from the replica
  // identity (primary key by default, the chosen index, or every column for FULL).
  const pg::Result columns = connection_.exec(
      "SELECT c.oid, c.relreplident, a.attname, a.atttypid, a.atttypmod, "
      "  c.relreplident = 'f' OR coalesce(a.attnum = ANY (k.indkey::int2[]), false) AS is_key "
      "FROM pg_class c "
      "JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
      "  AND a.attgenerated = '' "
      "LEFT JOIN pg_index k ON k.indrelid = c.oid AND CASE c.relreplident WHEN 'd' THEN k.indisprimary "
      "  WHEN 'i' THEN k.indisreplident ELSE false END "
      "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') "
      "ORDER BY a.attnum",
      {table.schema, table.table});
  if (columns.rows() == 0) {
    throw pg::PgError(std::string(kUndefinedTable),
                      "table " + table.to_string() + " does not exist in the snapshot (or has no columns)");
  }
  RelationInfo relation;
  relation.relation_id = static_cast<Oid>(std::stoul(std::string(columns.value(0, 0))));
  relation.schema = table.schema;
  relation.table = table.table;
  relation.replica_identity = static_cast<ReplicaIdentity>(columns.value(0, 1).front());
  for (int row = 0; row < columns.rows(); ++row) {
    RelationColumn column;
    column.name = std::string(columns.value(row, 2));
    column.type_oid = static_cast<Oid>(std::stoul(std::string(columns.value(row, 3))));
    column.type_modifier = std::stoi(std::string(columns.value(row, 4)));
    column.is_key = columns.value(row, 5) == "t";
    relation.columns.push_back(std::move(column));
  }
  return relation;
}

std::vector<std::string> SnapshotReader::key_order(const RelationInfo& relation) {
  const pg::Result order = connection_.exec(
      "SELECT a.attname FROM pg_index i "
      "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) "
      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "WHERE i.indexrelid = (SELECT indexrelid FROM pg_index WHERE indrelid = $1::oid "
      "  AND (indisprimary OR indisreplident) ORDER BY indisprimary DESC LIMIT 1) "
      "ORDER BY k.position",
      {std::to_string(relation.relation_id)});
  std::vector<std::string> columns;
  for (int row = 0; row < order.rows(); ++row) columns.emplace_back(order.value(row, 0));
  return columns;
}

std::uint64_t SnapshotReader::read_table(const TableName& table, const SnapshotRowHandler& on_row) {
  if (!transaction_) {
    throw pg::PgError(std::string(kInvalidParameter), "the snapshot transaction has already finished");
  }
  const RelationInfo relation = describe(table);
  // Key order makes a chunked read resumable and its progress meaningful.
  const std::vector<std::string> order_columns = key_order(relation);
  std::vector<std::string> names;
  for (const auto& column : relation.columns) names.push_back(column.name);

  std::string query = "DECLARE " + std::string(kCursor) + " NO SCROLL CURSOR FOR SELECT " +
                      column_list(names) + " FROM " + quote_table(table);
  if (!order_columns.empty()) query += " ORDER BY " + column_list(order_columns);
  connection_.exec(query);

  const std::string fetch = "FETCH FORWARD " + std::to_string(chunk_rows_) + " FROM " + kCursor;
  std::uint64_t count = 0;
  TupleData tuple(relation.columns.size());
  while (true) {
    const pg::Result chunk = connection_.exec(fetch);
    for (int row = 0; row < chunk.rows(); ++row) {
      for (int column = 0; column < chunk.columns(); ++column) {
        auto& cell = tuple[static_cast<std::size_t>(column)];
        cell.kind = chunk.is_null(row, column) ? ColumnKind::null : ColumnKind::text;
        cell.value.assign(chunk.value(row, column));
      }
      on_row(relation, tuple);
      ++count;
    }
    if (static_cast<std::size_t>(chunk.rows()) < chunk_rows_) break;
  }
  connection_.exec(std::string("CLOSE ") + kCursor);
  log::get("producer")->info("snapshot of {}: {} row(s)", table.to_string(), count);
  return count;
}

std::vector<std::string> SnapshotReader::column_types(const RelationInfo& relation,
                                                      const std::vector<std::string>& columns) {
  std::vector<std::string> types;
  for (const auto& column : columns) {
    const auto result = connection_.exec(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::oid AND attname = $2",
        {std::to_string(relation.relation_id), column});
    if (result.rows() != 1) {
      throw pg::PgError(std::string(kUndefinedTable), fmt::format("column {} of {}.{} not found in the snapshot",
                                                                  column, relation.schema, relation.table));
    }
    types.emplace_back(result.value(0, 0));
  }
  return types;
}

std::size_t SnapshotReader::read_chunk(const RelationInfo& relation, const std::vector<std::string>& key_columns,
                                       const std::optional<nlohmann::json>& after_key, std::size_t limit,
                                       const std::function<void(const TupleData& row, nlohmann::json key)>& on_row) {
  if (!transaction_) {
    throw pg::PgError(std::string(kInvalidParameter), "the snapshot transaction has already finished");
  }
  std::vector<std::string> names;
  for (const auto& column : relation.columns) names.push_back(column.name);
  std::vector<std::size_t> key_index;
  for (const auto& column : key_columns) {
    const auto index = relation.column_index(column);
    if (!index) throw pg::PgError(std::string(kUndefinedTable), "key column " + column + " is not in the table");
    key_index.push_back(*index);
  }
  const TableName table{relation.schema, relation.table};
  const bool after = after_key.has_value();
  const std::string sql = keyset_chunk_sql(table, names, key_columns, column_types(relation, key_columns), {}, after);
  std::vector<pg::Param> params;
  if (after) {
    for (const auto& column : key_columns) params.emplace_back(after_key->at(column).get<std::string>());
  }
  params.emplace_back(std::to_string(limit));
  const pg::Result chunk = connection_.exec(sql, params);
  TupleData tuple(relation.columns.size());
  for (int row = 0; row < chunk.rows(); ++row) {
    for (int column = 0; column < chunk.columns(); ++column) {
      auto& cell = tuple[static_cast<std::size_t>(column)];
      cell.kind = chunk.is_null(row, column) ? ColumnKind::null : ColumnKind::text;
      cell.value.assign(chunk.value(row, column));
    }
    nlohmann::json key = nlohmann::json::object();
    for (std::size_t i = 0; i < key_columns.size(); ++i) key[key_columns[i]] = tuple[key_index[i]].value;
    on_row(tuple, std::move(key));
  }
  return static_cast<std::size_t>(chunk.rows());
}

void SnapshotReader::finish() {
  if (!transaction_) return;
  transaction_->commit();
  transaction_.reset();
}

std::unique_ptr<SnapshotSession> open_snapshot_session(const std::string& dsn, std::string_view slot_prefix) {
  static std::atomic<unsigned> counter{0};
  auto session = std::make_unique<SnapshotSession>(dsn);
  // The slot exists only to export a snapshot with its exact WAL position. Once the snapshot is
  // imported the transaction keeps it by itself, so the replication connection is closed at once and
  // PostgreSQL drops the temporary slot: no WAL or catalog rows are pinned while the rows are read.
  ReplicationConnection replication(dsn);
  const auto slot_name = fmt::format("{}_{}_{}", slot_prefix, ::getpid(), counter++);
  const CreatedSlot created = replication.create_temporary_slot(slot_name);
  session->reader.emplace(session->sql, created.snapshot_name.value());
  session->consistent_point = created.consistent_point;
  session->taken = std::chrono::steady_clock::now();
  return session;
}

Lsn snapshot_event_position(Lsn consistent_point) {
  return consistent_point.is_valid() ? Lsn(consistent_point.value() - 1) : consistent_point;
}

std::string keyset_chunk_sql(const TableName& table, const std::vector<std::string>& columns,
                             const std::vector<std::string>& key_columns,
                             const std::vector<std::string>& key_types, std::string_view where, bool after_key) {
  std::string sql = fmt::format("SELECT {} FROM {}", column_list(columns), quote_table(table));
  std::vector<std::string> conditions;
  if (after_key) {
    // A row comparison: the index on the key serves it as a range scan.
    std::vector<std::string> params;
    for (std::size_t i = 0; i < key_columns.size(); ++i)
      params.push_back(fmt::format("${}::{}", i + 1, key_types.at(i)));
    conditions.push_back(fmt::format("({}) > ({})", column_list(key_columns), fmt::join(params, ", ")));
  }
  // Spliced as written: the operator's own predicate, run in a READ ONLY transaction; the
  // parameterised LIMIT keeps the statement on the extended protocol (one statement only).
  if (!where.empty()) conditions.push_back(fmt::format("({})", where));
  if (!conditions.empty()) sql += fmt::format(" WHERE {}", fmt::join(conditions, " AND "));
  sql += fmt::format(" ORDER BY {} LIMIT ${}::bigint", column_list(key_columns),
                     after_key ? key_columns.size() + 1 : 1);
  return sql;
}

}  // namespace syncline::producer
