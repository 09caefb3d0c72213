// Maps pgoutput's text-format column values to JSON by PostgreSQL type (DESIGN.md, "Events").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "producer/pgoutput.hpp"
#include "producer/relation_cache.hpp"

namespace syncline::producer {

// Built-in type oids (src/include/catalog/pg_type.dat); stable across PostgreSQL versions.
namespace pg_type {
inline constexpr Oid kBool = 16;
inline constexpr Oid kBytea = 17;
inline constexpr Oid kInt8 = 20;
inline constexpr Oid kInt2 = 21;
inline constexpr Oid kInt4 = 23;
inline constexpr Oid kText = 25;
inline constexpr Oid kOid = 26;
inline constexpr Oid kJson = 114;
inline constexpr Oid kFloat4 = 700;
inline constexpr Oid kFloat8 = 701;
inline constexpr Oid kVarchar = 1043;
inline constexpr Oid kDate = 1082;
inline constexpr Oid kTimestamp = 1114;
inline constexpr Oid kTimestamptz = 1184;
inline constexpr Oid kNumeric = 1700;
inline constexpr Oid kUuid = 2950;
inline constexpr Oid kJsonb = 3802;
inline constexpr Oid kInt4Array = 1007;
inline constexpr Oid kTextArray = 1009;
}  // namespace pg_type

// A value that does not parse as its type claims: the change goes to the dead-letter topic with this
// text rather than into Kafka with a wrong value.
class ValueMappingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The element type of a built-in array type, or nullopt if `type_oid` is not one we know.
std::optional<Oid> array_element_type(Oid type_oid);

// `text` is the value's text output under DateStyle=ISO, TimeZone=UTC, bytea_output=hex, as the
// producer sets them on its replication connection. Throws ValueMappingError.
nlohmann::json map_text_value(std::string_view text, Oid type_oid);

// map_text_value() of a timestamptz as the string itself ("2026-11-22T10:00:00.123Z", or "infinity"),
// for callers that need no JSON value. Throws ValueMappingError.
std::string map_timestamptz(std::string_view text);

// Standard alphabet, with padding (RFC 4648 section 4).
std::string base64_encode(std::string_view bytes);

struct RowJson {
  nlohmann::json values = nlohmann::json::object();  // column name -> value
  // Columns whose TOASTed value did not change and was not sent: left out of `values`, so sinks
  // keep what they have (source.unchanged_toast).
  std::vector<std::string> unchanged_toast;
};

// A new tuple (Insert, Update) as the `after` object. Throws ValueMappingError, naming the column.
RowJson tuple_to_json(const RelationInfo& relation, const TupleData& tuple);

// An old tuple (Update, Delete) as the `before` object. A key-only tuple ('K') gives only the key
// columns: PostgreSQL sends the others as null although they were not.
RowJson old_tuple_to_json(const RelationInfo& relation, const OldTuple& old_tuple);

}  // namespace syncline::producer
