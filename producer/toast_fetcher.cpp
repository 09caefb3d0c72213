// PgToastFetcher: one keyed SELECT per key change that left TOASTed values out (see toast_fetcher.hpp).
#include "producer/toast_fetcher.hpp"

#include "producer/slot_manager.hpp"

namespace syncline::producer {

PgToastFetcher::PgToastFetcher(pg::PgConnection& connection) : connection_(connection) {
  connection_.exec("SET DateStyle = 'ISO'; SET TimeZone = 'UTC'; SET extra_float_digits = 3");
}

std::optional<std::vector<std::optional<std::string>>> PgToastFetcher::fetch(
    const RelationInfo& relation, const std::vector<std::string>& key_columns, const std::vector<std::string>& key,
    const std::vector<std::string>& columns) {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i < columns.size(); ++i) sql += (i == 0 ? "" : ", ") + quote_identifier(columns[i]);
  sql += " FROM " + quote_table({relation.schema, relation.table}) + " WHERE ";
  std::vector<pg::Param> params;
  for (std::size_t i = 0; i < key_columns.size(); ++i) {
    // The parameter takes the column's type, so the stream's text form of the key reads back as it.
    sql += (i == 0 ? "" : " AND ") + quote_identifier(key_columns[i]) + " = $" + std::to_string(i + 1);
    params.emplace_back(key.at(i));
  }
  const pg::Result result = connection_.exec(sql, params);
  if (result.rows() == 0) return std::nullopt;
  std::vector<std::optional<std::string>> values;
  for (int column = 0; column < result.columns(); ++column) {
    values.push_back(result.is_null(0, column) ? std::nullopt
                                               : std::optional<std::string>(std::string(result.value(0, column))));
  }
  return values;
}

}  // namespace syncline::producer
