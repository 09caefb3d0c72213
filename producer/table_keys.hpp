// Table keys: each captured table's primary-key columns, read from the write database at start-up,
// so the router can key REPLICA IDENTITY FULL tables by their primary key and the topic plan knows
// which tables are keyless (append-only topics, never compacted).
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace syncline::pg {
class PgConnection;
}

namespace syncline::producer {

using QualifiedTable = std::pair<std::string, std::string>;  // (schema, table), as RouterOptions names them

// Per table its primary-key column names in key order (pg_index.indkey); empty: no primary key.
using PrimaryKeys = std::map<QualifiedTable, std::vector<std::string>>;

// Reads the primary key of every table in `tables` (ordinary or partitioned tables only). Throws
// pg::PgError with SQLSTATE 42P01 (permanent) naming the first table that does not exist, and
// pg::PgError for any failed query.
PrimaryKeys read_primary_keys(pg::PgConnection& connection, const std::vector<QualifiedTable>& tables);

}  // namespace syncline::producer
