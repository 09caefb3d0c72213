// PostgreSQL built-in type oids and array-literal text: shared by the producer's value mapping and
// the projectors' parameter binding.
#pragma once

#include <libpq-fe.h>

#include <string>
#include <string_view>

namespace syncline::pg {

// Built-in type oids (src/include/catalog/pg_type.dat); stable across PostgreSQL versions.
namespace type_oid {
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
inline constexpr Oid kUnknown = 705;
inline constexpr Oid kBoolArray = 1000;
inline constexpr Oid kInt4Array = 1007;
inline constexpr Oid kTextArray = 1009;
inline constexpr Oid kVarcharArray = 1015;
inline constexpr Oid kInt8Array = 1016;
inline constexpr Oid kBpchar = 1042;
inline constexpr Oid kVarchar = 1043;
inline constexpr Oid kDate = 1082;
inline constexpr Oid kTimestamp = 1114;
inline constexpr Oid kTimestamptz = 1184;
inline constexpr Oid kNumericArray = 1231;
inline constexpr Oid kNumeric = 1700;
inline constexpr Oid kUuid = 2950;
inline constexpr Oid kUuidArray = 2951;
inline constexpr Oid kPgLsn = 3220;
inline constexpr Oid kJsonb = 3802;
inline constexpr Oid kJsonbArray = 3807;
}  // namespace type_oid

// Appends one element of an array literal ({"a","b"}). Every element is quoted, so no element
// text (NULL, braces, commas, spaces) can be misread; '"' and '\\' are escaped.
inline void append_array_element(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace syncline::pg
