// SnapshotReader: the initial rows of captured tables, read from a replication slot's exported
// snapshot in the same shapes pgoutput streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
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

  // Ends the snapshot transaction.
  void finish();

 private:
  pg::PgConnection& connection_;
  std::optional<pg::Transaction> transaction_;
  std::size_t chunk_rows_;
};

}  // namespace syncline::producer
