// Unit tests of the PostgreSQL text value -> JSON mapping and of rows built from captured tuples.
#include <gtest/gtest.h>

#include <string>

#include "producer/value_mapping.hpp"
#include "tests/unit/pgoutput_fixture.hpp"

namespace syncline::producer {
namespace {

using nlohmann::json;
using testing::decode_fixture;
using testing::load_fixture;

json map(std::string_view text, Oid type) { return map_text_value(text, type); }

// --- Scalars ---

TEST(ValueMapping, MapsIntegerTypesAndOidToJsonNumbers) {
  EXPECT_EQ(map("-32768", pg_type::kInt2), json(-32768));
  EXPECT_EQ(map("2147483647", pg_type::kInt4), json(2147483647));
  EXPECT_EQ(map("9223372036854775807", pg_type::kInt8).dump(), "9223372036854775807");
  EXPECT_EQ(map("-9223372036854775808", pg_type::kInt8).dump(), "-9223372036854775808");
  EXPECT_EQ(map("4294967295", pg_type::kOid).dump(), "4294967295");
  EXPECT_TRUE(map("0", pg_type::kInt4).is_number_integer());
}

TEST(ValueMapping, RejectsIntegersThatDoNotFitOrAreNotNumbers) {
  EXPECT_THROW(map("32768", pg_type::kInt2), ValueMappingError);
  EXPECT_THROW(map("12a", pg_type::kInt4), ValueMappingError);
  EXPECT_THROW(map("", pg_type::kInt8), ValueMappingError);
  EXPECT_THROW(map("-1", pg_type::kOid), ValueMappingError);
}

TEST(ValueMapping, KeepsNumericAsAStringWithoutLosingPrecision) {
  EXPECT_EQ(map("12345678901234567890.123456789", pg_type::kNumeric), json("12345678901234567890.123456789"));
  EXPECT_EQ(map("1.50", pg_type::kNumeric), json("1.50"));
  EXPECT_EQ(map("NaN", pg_type::kNumeric), json("NaN"));
  EXPECT_EQ(map("-Infinity", pg_type::kNumeric), json("-Infinity"));
}

TEST(ValueMapping, MapsFloatsToNumbersAndTheirSpecialValuesToStrings) {
  EXPECT_EQ(map("3.14", pg_type::kFloat4).dump(), "3.14");
  EXPECT_EQ(map("-2.5e-300", pg_type::kFloat8).dump(), "-2.5e-300");
  EXPECT_EQ(map("1e+20", pg_type::kFloat8), json(1e20));
  EXPECT_EQ(map("NaN", pg_type::kFloat8), json("NaN"));
  EXPECT_EQ(map("Infinity", pg_type::kFloat4), json("Infinity"));
  EXPECT_EQ(map("-Infinity", pg_type::kFloat8), json("-Infinity"));
  EXPECT_THROW(map("inf", pg_type::kFloat8), ValueMappingError);
  EXPECT_THROW(map("1.5x", pg_type::kFloat8), ValueMappingError);
}

TEST(ValueMapping, MapsBoolLettersToJsonBooleans) {
  EXPECT_EQ(map("t", pg_type::kBool), json(true));
  EXPECT_EQ(map("f", pg_type::kBool), json(false));
  EXPECT_THROW(map("true", pg_type::kBool), ValueMappingError);
}

TEST(ValueMapping, EmbedsJsonAndJsonbAsJsonNotAsEscapedText) {
  EXPECT_EQ(map(R"({"b": [1, 2.5, "x"], "a": null})", pg_type::kJson),
            json::parse(R"({"a":null,"b":[1,2.5,"x"]})"));
  EXPECT_EQ(map(R"({"nested": {"k": "v"}, "n": 42})", pg_type::kJsonb)["nested"]["k"], json("v"));
  EXPECT_EQ(map(R"("just a string")", pg_type::kJsonb), json("just a string"));
  EXPECT_EQ(map("null", pg_type::kJsonb), json(nullptr));
  EXPECT_THROW(map("{not json", pg_type::kJson), ValueMappingError);
}

TEST(ValueMapping, WritesTimestamptzAsIsoUtcWithPostgresFractionDigits) {
  EXPECT_EQ(map("2026-11-22 10:00:00.123+00", pg_type::kTimestamptz), json("2026-11-22T10:00:00.123Z"));
  EXPECT_EQ(map("2026-11-22 10:00:00+00", pg_type::kTimestamptz), json("2026-11-22T10:00:00Z"));
  // The JSON spellings of the same instant (json_build_object, client libraries).
  EXPECT_EQ(map("2026-11-22T10:00:00.5+00:00", pg_type::kTimestamptz), json("2026-11-22T10:00:00.5Z"));
  EXPECT_EQ(map("2026-11-22T10:00:00Z", pg_type::kTimestamptz), json("2026-11-22T10:00:00Z"));
  EXPECT_EQ(map("1999-12-31 23:59:59.999999+00", pg_type::kTimestamptz), json("1999-12-31T23:59:59.999999Z"));
  EXPECT_EQ(map("12026-01-01 00:00:00+00", pg_type::kTimestamptz), json("12026-01-01T00:00:00Z"));
}

TEST(ValueMapping, ConvertsATimestamptzWithAnOffsetToUtc) {
  EXPECT_EQ(map("2026-11-22 01:30:00.5+05:30", pg_type::kTimestamptz), json("2026-11-21T20:00:00.5Z"));
  EXPECT_EQ(map("2026-12-31 23:00:00-03", pg_type::kTimestamptz), json("2027-01-01T02:00:00Z"));
  EXPECT_EQ(map("1900-01-01 00:00:00+00:09:21", pg_type::kTimestamptz), json("1899-12-31T23:50:39Z"));
}

TEST(ValueMapping, WritesTimestampWithoutZoneAndDateAsIso) {
  EXPECT_EQ(map("2026-11-22 10:00:00.123", pg_type::kTimestamp), json("2026-11-22T10:00:00.123"));
  EXPECT_EQ(map("2026-11-22 10:00:00", pg_type::kTimestamp), json("2026-11-22T10:00:00"));
  EXPECT_EQ(map("2026-11-22", pg_type::kDate), json("2026-11-22"));
}

TEST(ValueMapping, KeepsInfiniteTimestampsAndDatesAsGiven) {
  EXPECT_EQ(map("infinity", pg_type::kTimestamptz), json("infinity"));
  EXPECT_EQ(map("-infinity", pg_type::kTimestamp), json("-infinity"));
  EXPECT_EQ(map("infinity", pg_type::kDate), json("infinity"));
}

TEST(ValueMapping, RejectsTimestampsNotInIsoDateStyle) {
  EXPECT_THROW(map("Sun Nov 22 10:00:00 2026 UTC", pg_type::kTimestamptz), ValueMappingError);
  EXPECT_THROW(map("11/22/2026", pg_type::kDate), ValueMappingError);
  EXPECT_THROW(map("2026-11-22 10:00:00+00", pg_type::kTimestamp), ValueMappingError);
  EXPECT_THROW(map("2026-11-22 10:00:00", pg_type::kTimestamptz), ValueMappingError);
  EXPECT_THROW(map("2026-02-30", pg_type::kDate), ValueMappingError);
  EXPECT_THROW(map("0044-03-15 BC", pg_type::kDate), ValueMappingError);
}

TEST(ValueMapping, EncodesHexByteaAsBase64) {
  EXPECT_EQ(map("\\x0102fffe", pg_type::kBytea), json("AQL//g=="));
  EXPECT_EQ(map("\\x", pg_type::kBytea), json(""));
  EXPECT_EQ(map("\\x666f6f626172", pg_type::kBytea), json("Zm9vYmFy"));
  EXPECT_THROW(map("\\x0", pg_type::kBytea), ValueMappingError);
  EXPECT_THROW(map("\\xzz", pg_type::kBytea), ValueMappingError);
  EXPECT_THROW(map("\\001", pg_type::kBytea), ValueMappingError);
}

TEST(ValueMapping, Base64EncodesEveryPaddingLength) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\0\xff", 2)), "AP8=");
}

TEST(ValueMapping, KeepsUuidTextVarcharAndUnknownTypesAsText) {
  EXPECT_EQ(map("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", pg_type::kUuid),
            json("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  EXPECT_EQ(map("line1\n\"q\" \\", pg_type::kText), json("line1\n\"q\" \\"));
  EXPECT_EQ(map("short", pg_type::kVarchar), json("short"));
  EXPECT_EQ(map("1 day 02:00:00", 1186 /* interval */), json("1 day 02:00:00"));
  EXPECT_EQ(map("happy", 16555 /* an enum */), json("happy"));
}

// --- Arrays ---

TEST(ValueMapping, MapsArrayElementsByTheElementType) {
  EXPECT_EQ(map("{1,2,NULL}", pg_type::kInt4Array), json::parse("[1,2,null]"));
  EXPECT_EQ(map("{t,f}", 1000), json::parse("[true,false]"));
  EXPECT_EQ(map("{1.50,NaN}", 1231), json::parse(R"(["1.50","NaN"])"));
  EXPECT_EQ(map("{9223372036854775807}", 1016).dump(), "[9223372036854775807]");
  EXPECT_EQ(map("{1.5,NaN}", 1022), json::parse(R"([1.5,"NaN"])"));
  EXPECT_EQ(map(R"({"2026-11-22 10:00:00+00",NULL})", 1185), json::parse(R"(["2026-11-22T10:00:00Z",null])"));
  EXPECT_EQ(map("{2026-11-22}", 1182), json::parse(R"(["2026-11-22"])"));
  EXPECT_EQ(map("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", 2951),
            json::parse(R"(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"])"));
}

TEST(ValueMapping, UnquotesAndUnescapesTextArrayElements) {
  EXPECT_EQ(map(R"({"a b","c\"d","e\\f","NULL",NULL,""})", pg_type::kTextArray),
            json::parse(R"(["a b","c\"d","e\\f","NULL",null,""])"));
  EXPECT_EQ(map("{plain,null,Null}", pg_type::kTextArray), json::parse(R"(["plain",null,null])"));
  EXPECT_EQ(map(R"({"{braces}","a,b"})", 1015), json::parse(R"(["{braces}","a,b"])"));
}

TEST(ValueMapping, MapsNestedAndEmptyArrays) {
  EXPECT_EQ(map("{{1,2},{3,4}}", pg_type::kInt4Array), json::parse("[[1,2],[3,4]]"));
  EXPECT_EQ(map("{{{1}},{{2}}}", pg_type::kInt4Array), json::parse("[[[1]],[[2]]]"));
  EXPECT_EQ(map("{}", pg_type::kTextArray), json::array());
  EXPECT_EQ(map("[0:1]={7,8}", pg_type::kInt4Array), json::parse("[7,8]"));
}

TEST(ValueMapping, MapsByteaAndJsonArrayElements) {
  EXPECT_EQ(map(R"({"\\x00ff"})", 1001), json::parse(R"(["AP8="])"));
  EXPECT_EQ(map(R"({"{\"k\": 1}","[true]"})", 3807), json::parse(R"([{"k":1},[true]])"));
}

TEST(ValueMapping, RejectsMalformedArraysWithTheCharacterPosition) {
  for (const auto* text : {"{1,2", "1,2}", "{1,,2}", "{\"open}", "{1}x", "{{{{{{{1}}}}}}}", "{1,\\"}) {
    EXPECT_THROW(map(text, pg_type::kInt4Array), ValueMappingError) << text;
  }
  try {
    map("{1,2", pg_type::kInt4Array);
    FAIL() << "no ValueMappingError";
  } catch (const ValueMappingError& error) {
    EXPECT_STREQ(error.what(), "array '{1,2': expected ',' or '}' at character 4");
  }
  try {
    map("{1,x}", pg_type::kInt4Array);
    FAIL() << "no ValueMappingError";
  } catch (const ValueMappingError& error) {
    EXPECT_STREQ(error.what(), "'x' is not a valid int4");
  }
}

TEST(ValueMapping, KnowsTheElementTypeOfCommonArrayTypes) {
  EXPECT_EQ(array_element_type(pg_type::kInt4Array), pg_type::kInt4);
  EXPECT_EQ(array_element_type(pg_type::kTextArray), pg_type::kText);
  EXPECT_EQ(array_element_type(3807), pg_type::kJsonb);
  EXPECT_EQ(array_element_type(pg_type::kInt4), std::nullopt);
}

// --- Rows from captured tuples ---

RelationInfo relation_of(const PgoutputMessage& message) {
  RelationCache cache;
  return cache.apply(std::get<RelationMessage>(message));
}

TEST(ValueMappingRow, MapsEveryCapturedColumnOfTheAllTypesTable) {
  const auto messages = decode_fixture(load_fixture("insert_all_types"));
  const auto relation = relation_of(messages[2]);
  const auto row = [&](std::size_t index) {
    auto mapped = tuple_to_json(relation, std::get<InsertMessage>(messages[index]).new_tuple);
    EXPECT_TRUE(mapped.unchanged_toast.empty());
    return mapped.values;
  };
  EXPECT_EQ(row(3), json::parse(R"({
    "id": 1, "c_int2": -32768, "c_int4": 2147483647, "c_int8": 9223372036854775807, "c_oid": 4294967295,
    "c_numeric": "12345678901234567890.123456789", "c_float4": 3.14, "c_float8": -2.5e-300, "c_bool": true,
    "c_json": {"b": [1, 2.5, "x"], "a": null}, "c_jsonb": {"nested": {"k": "v"}, "n": 42},
    "c_timestamptz": "2026-11-22T10:00:00.123Z", "c_timestamp": "2026-11-22T10:00:00.123",
    "c_date": "2026-11-22", "c_bytea": "AQL//g==", "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "c_text": "line1\ntab\t\"quoted\" \\back", "c_varchar": "short", "c_mood": "happy",
    "c_int4_array": [1, 2, null], "c_text_array": ["a b", "c\"d", "e\\f", "NULL", null, ""],
    "c_int4_matrix": [[1, 2], [3, 4]], "c_bool_array": [true, false], "c_numeric_array": ["1.50", "NaN"],
    "c_bytea_array": ["AP8="], "c_jsonb_array": [{"k": 1}, [true]]})"));

  auto specials = row(4);
  EXPECT_EQ(specials["c_numeric"], json("NaN"));
  EXPECT_EQ(specials["c_float4"], json("Infinity"));
  EXPECT_EQ(specials["c_float8"], json("-Infinity"));
  EXPECT_EQ(specials["c_timestamptz"], json("infinity"));
  EXPECT_EQ(specials["c_timestamp"], json("-infinity"));
  EXPECT_EQ(specials["c_date"], json("infinity"));
  EXPECT_EQ(specials["c_int4"], json(nullptr));

  auto more = row(5);
  EXPECT_EQ(more["c_numeric"], json("Infinity"));
  EXPECT_EQ(more["c_float8"], json("NaN"));
  EXPECT_EQ(more["c_timestamptz"], json("2026-01-02T03:04:05Z"));
  EXPECT_EQ(more["c_timestamp"], json("1999-12-31T23:59:59.999999"));

  const auto nulls = row(6);
  EXPECT_EQ(nulls.size(), 26U);
  for (const auto& [name, value] : nulls.items()) {
    if (name != "id") {
      EXPECT_TRUE(value.is_null()) << name;
    }
  }
}

TEST(ValueMappingRow, LeavesAnUnchangedToastedColumnOutAndNamesIt) {
  const auto messages = decode_fixture(load_fixture("unchanged_toast"));
  const auto relation = relation_of(messages[1]);
  const auto row = tuple_to_json(relation, std::get<UpdateMessage>(messages[5]).new_tuple);
  EXPECT_EQ(row.values, json::parse(R"({"id": 1, "title": "v2"})"));
  EXPECT_EQ(row.unchanged_toast, std::vector<std::string>{"body"});
}

TEST(ValueMappingRow, BuildsBeforeFromTheKeyOnlyForAKeyOldTuple) {
  const auto messages = decode_fixture(load_fixture("update_delete_default_identity"));
  const auto accounts = relation_of(messages[1]);
  const auto& key_update = std::get<UpdateMessage>(messages[5]);
  EXPECT_EQ(old_tuple_to_json(accounts, *key_update.old_tuple).values, json::parse(R"({"id": 2})"));
  EXPECT_EQ(tuple_to_json(accounts, key_update.new_tuple).values,
            json::parse(R"({"id": 3, "owner": "bob", "balance": "5"})"));

  const auto audit = relation_of(messages[6]);
  const auto& full_delete = std::get<DeleteMessage>(messages[10]);
  EXPECT_EQ(old_tuple_to_json(audit, full_delete.old_tuple).values,
            json::parse(R"({"id": 10, "account_id": 1, "note": "opened"})"));
}

TEST(ValueMappingRow, NamesTheColumnOfAValueThatDoesNotMap) {
  RelationInfo relation{
      1, "public", "t", ReplicaIdentity::default_identity, {{true, "id", pg_type::kInt4, -1}}};
  try {
    tuple_to_json(relation, {{ColumnKind::text, "x1"}});
    FAIL() << "no ValueMappingError";
  } catch (const ValueMappingError& error) {
    EXPECT_STREQ(error.what(), "column public.t.id (type oid 23): 'x1' is not a valid int4");
  }
}

TEST(ValueMappingRow, RejectsBinaryColumnsAndAColumnCountMismatch) {
  RelationInfo relation{
      1, "public", "t", ReplicaIdentity::default_identity, {{true, "id", pg_type::kInt4, -1}}};
  EXPECT_THROW(tuple_to_json(relation, {{ColumnKind::binary, std::string("\0\0\0\1", 4)}}),
               ValueMappingError);
  EXPECT_THROW(tuple_to_json(relation, {}), ValueMappingError);
  EXPECT_THROW(
      old_tuple_to_json(relation, {OldTupleKind::full, {{ColumnKind::null, {}}, {ColumnKind::null, {}}}}),
      ValueMappingError);
}

TEST(ValueMappingRow, MapsEveryCapturedRowWithoutError) {
  for (const auto& scenario : testing::all_fixture_scenarios()) {
    const auto fixture = load_fixture(scenario);
    PgoutputDecoder decoder(fixture.protocol_version);
    RelationCache cache;
    for (const auto& captured : fixture.messages) {
      const auto message = decoder.decode(captured.bytes);
      if (const auto* relation = std::get_if<RelationMessage>(&message)) cache.apply(*relation);
      if (const auto* insert = std::get_if<InsertMessage>(&message)) {
        EXPECT_NO_THROW(tuple_to_json(cache.at(insert->relation_id), insert->new_tuple)) << scenario;
      }
      if (const auto* update = std::get_if<UpdateMessage>(&message)) {
        EXPECT_NO_THROW(tuple_to_json(cache.at(update->relation_id), update->new_tuple)) << scenario;
      }
      if (const auto* remove = std::get_if<DeleteMessage>(&message)) {
        EXPECT_NO_THROW(old_tuple_to_json(cache.at(remove->relation_id), remove->old_tuple)) << scenario;
      }
    }
  }
}

}  // namespace
}  // namespace syncline::producer
