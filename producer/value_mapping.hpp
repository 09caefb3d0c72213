// Maps pgoutput's text-format column values to JSON by PostgreSQL type (DESIGN.md, "Events").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/pg_types.hpp"
#include "producer/pgoutput.hpp"
#include "producer/relation_cache.hpp"

namespace syncline::producer {

namespace pg_type = pg::type_oid;

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
