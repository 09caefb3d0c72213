// Table keys: primary-key columns of captured tables, from pg_index and pg_attribute.
#include "producer/table_keys.hpp"

#include <string_view>

#include "common/pg.hpp"

namespace syncline::producer {
namespace {

constexpr std::string_view kUndefinedTable = "42P01";

}  // namespace

PrimaryKeys read_primary_keys(pg::PgConnection& connection, const std::vector<QualifiedTable>& tables) {
  PrimaryKeys keys;
  for (const auto& [schema, table] : tables) {
    const pg::Result found = connection.exec(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        {schema, table});
    if (found.rows() == 0) {
      throw pg::PgError(std::string(kUndefinedTable),
                        "captured table " + schema + "." + table +
                            " does not exist in the write database (or is not a table)");
    }
    // indkey lists the key's columns in key order, which can differ from the table's column order.
    const pg::Result columns = connection.exec(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = $1::oid AND i.indisprimary "
        "ORDER BY k.position",
        {std::string(found.value(0, 0))});
    auto& names = keys[{schema, table}];
    for (int row = 0; row < columns.rows(); ++row) names.emplace_back(columns.value(row, 0));
  }
  return keys;
}

}  // namespace syncline::producer
