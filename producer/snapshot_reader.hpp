// SnapshotReader: the initial rows of captured tables, read from a replication slot's exported
// snapshot in the same shapes pgoutput streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/pg.hpp"
#include "producer/pgoutput.hpp"
#include "producer/relation_cache.hpp"
#include "producer/slot_manager.hpp"

namespace syncline::producer {

// Called once per row; both references are valid only during the call. The tuple holds text columns
// and nulls, in the relation's column order, exactly as a pgoutput Insert would.
using SnapshotRowHandler = std::function<void(const RelationInfo& relation, const TupleData& row)>;

// Reads tables as of a snapshot exported by CREATE_REPLICATION_SLOT, so that snapshot + stream
// from the slot's consistent point is every row exactly once. Uses a non-replication connection
// it does not own, on one thread; holds a REPEATABLE READ transaction open until finish() or
// destruction (which rolls it back).
//
// Memory is bounded by `chunk_rows`: rows come through a cursor, `chunk_rows` at a time, in key
// order (primary key, else replica identity index; a table with neither is read in heap order).
class SnapshotReader {
 public:
  // Imports the snapshot. Must run while the replication connection that exported it has not run
  // another command. Throws PgError: permanent for a malformed or no longer valid snapshot name.
  SnapshotReader(pg::PgConnection& connection, std::string_view snapshot_name, std::size_t chunk_rows = 1000);
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  // The table's columns as pgoutput's Relation message describes them: no dropped or generated
  // columns, is_key from the replica identity (every column for REPLICA IDENTITY FULL).
  // Throws PgError (42P01) for a table that does not exist in the snapshot.
  RelationInfo describe(const TableName& table);

  // The columns rows are read in order of: the primary key, else the replica identity index, in
  // index order; empty for a table with neither. Unique, so a keyset read by them is resumable.
  std::vector<std::string> key_order(const RelationInfo& relation);

  // Hands every row of `table` to `on_row`; returns the number of rows.
  std::uint64_t read_table(const TableName& table, const SnapshotRowHandler& on_row);

  // One keyset chunk: up to `limit` rows of `relation` in the order of `key_columns` (key_order()),
  // after `after_key` (key column -> PostgreSQL text; nullopt: from the first row), each handed to
  // `on_row` with its key. Returns the number of rows; fewer than `limit` means the table is done.
  std::size_t read_chunk(const RelationInfo& relation, const std::vector<std::string>& key_columns,
                         const std::optional<nlohmann::json>& after_key, std::size_t limit,
                         const std::function<void(const TupleData& row, nlohmann::json key)>& on_row);

  // format_type() of each of `columns`, for casting text parameters to the column's type.
  std::vector<std::string> column_types(const RelationInfo& relation, const std::vector<std::string>& columns);

  // Ends the snapshot transaction.
  void finish();

 private:
  pg::PgConnection& connection_;
  std::optional<pg::Transaction> transaction_;
  std::size_t chunk_rows_;
};

// A snapshot of its own: a temporary slot's exported snapshot imported on a new SQL connection, with
// the exact WAL position that separates what it contains from what it does not. The slot lives only
// until the snapshot is imported (its replication connection is closed then), so nothing is pinned
// while the rows are read. Owned by one thread.
struct SnapshotSession {
  explicit SnapshotSession(const std::string& dsn) : sql(dsn) {}
  pg::PgConnection sql;
  std::optional<SnapshotReader> reader;  // after `sql`: destroyed (rolled back) first
  Lsn consistent_point;
  std::chrono::steady_clock::time_point taken{};
};
// `slot_prefix` names the temporary slot ("<prefix>_<pid>_<n>", [a-z0-9_]). Throws pg::PgError.
std::unique_ptr<SnapshotSession> open_snapshot_session(const std::string& dsn, std::string_view slot_prefix);

// The position of a snapshot's events: one below the consistent point. A transaction whose commit
// record starts exactly at the consistent point is streamed and not in the snapshot; every one the
// snapshot contains committed before, so this is above all it contains and below all it does not.
Lsn snapshot_event_position(Lsn consistent_point);

// The SELECT of one keyset chunk: `columns` of `table` in key order, after the key given by parameters
// $1..$k (when `after_key`), filtered by `where` (trusted operator SQL; empty: none), with the row
// limit as the last parameter. `key_types` are the key columns' SQL types (format_type).
std::string keyset_chunk_sql(const TableName& table, const std::vector<std::string>& columns,
                             const std::vector<std::string>& key_columns,
                             const std::vector<std::string>& key_types, std::string_view where, bool after_key);

}  // namespace syncline::producer
