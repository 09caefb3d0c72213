// Unit tests of JsonPath: parsing configured paths, measuring them inside other text, resolving
// them in an envelope, and the envelope-field check.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <string_view>

#include "common/json_path.hpp"

namespace syncline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string parse_error(std::string_view text) {
  try {
    const JsonPath path = parse_json_path(text);
    ADD_FAILURE() << "parsed without error: " << path.text;
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return {};
}

std::string envelope_error(std::string_view text) {
  try {
    check_envelope_path(parse_json_path(text));
    ADD_FAILURE() << "accepted as an envelope path: " << text;
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return {};
}

const json kEnvelope = json::parse(R"({
  "id": "e-1", "type": "OrderPlaced", "aggregate_id": "o-7",
  "payload": {"items": [{"id": "i-1"}, {"id": "i-2", "qty": 3}], "note": null, "0": "digit key",
              "nested": {"deep": {"value": 42}}},
  "source": {"commit_lsn": "0/16B3800"}
})");

// --- Parsing ---

TEST(JsonPathParse, splits_a_dotted_path_into_key_steps) {
  const JsonPath path = parse_json_path("payload.conversation_id");
  EXPECT_EQ(path.text, "payload.conversation_id");
  EXPECT_FALSE(path.optional);
  ASSERT_EQ(path.steps.size(), 2U);
  EXPECT_EQ(path.steps[0], (JsonPathStep{"payload", 0, false}));
  EXPECT_EQ(path.steps[1], (JsonPathStep{"conversation_id", 0, false}));
}

TEST(JsonPathParse, reads_digit_steps_as_array_indexes_keeping_their_text) {
  const JsonPath path = parse_json_path("payload.items.12.id");
  ASSERT_EQ(path.steps.size(), 4U);
  EXPECT_EQ(path.steps[2], (JsonPathStep{"12", 12, true}));
  EXPECT_FALSE(path.steps[3].is_index);
}

TEST(JsonPathParse, takes_a_trailing_question_mark_as_optional_and_leaves_it_out_of_the_text) {
  const JsonPath path = parse_json_path("payload.note?");
  EXPECT_TRUE(path.optional);
  EXPECT_EQ(path.text, "payload.note");
  EXPECT_EQ(path.steps.size(), 2U);
}

TEST(JsonPathParse, accepts_identifiers_with_underscores_and_digits_and_a_single_step) {
  EXPECT_EQ(parse_json_path("_x9.a_1").steps.size(), 2U);
  EXPECT_EQ(parse_json_path("id").steps.size(), 1U);
}

TEST(JsonPathParse, refuses_empty_paths_and_empty_steps) {
  EXPECT_THAT(parse_error(""), HasSubstr("empty JSON path"));
  EXPECT_THAT(parse_error("?"), HasSubstr("an empty step"));
  EXPECT_THAT(parse_error(".payload"), HasSubstr("an empty step"));
  EXPECT_THAT(parse_error("payload..x"), HasSubstr("an empty step"));
  EXPECT_THAT(parse_error("payload."), HasSubstr("a '.' that no step follows"));
}

TEST(JsonPathParse, refuses_a_step_mixing_digits_and_letters) {
  EXPECT_THAT(parse_error("payload.0abc"), HasSubstr("identifier or digits"));
}

TEST(JsonPathParse, refuses_other_characters_and_says_where) {
  EXPECT_THAT(parse_error("payload.message-id"), HasSubstr("unexpected character '-' at position 16"));
  EXPECT_THAT(parse_error(" payload"), HasSubstr("unexpected character ' ' at position 1"));
  EXPECT_THAT(parse_error("payload.x??"), HasSubstr("unexpected character '?'"));
  EXPECT_THAT(parse_error("payload[0]"), HasSubstr("unexpected character '['"));
}

TEST(JsonPathParse, refuses_an_array_index_too_large_for_size_t) {
  EXPECT_THAT(parse_error("payload.99999999999999999999999"),
              HasSubstr("array index 99999999999999999999999 too large"));
}

TEST(JsonPathParse, quotes_the_path_in_every_error) {
  EXPECT_THAT(parse_error("payload.a-b"), HasSubstr("JSON path 'payload.a-b'"));
}

// --- Measuring inside other text ---

TEST(JsonPathLength, measures_steps_and_the_optional_mark) {
  EXPECT_EQ(json_path_length("payload.items.0.id, :x"), 18U);
  EXPECT_EQ(json_path_length("payload.note?::int"), 13U);
  EXPECT_EQ(json_path_length("id"), 2U);
}

TEST(JsonPathLength, ends_at_a_dot_that_no_step_follows) {
  EXPECT_EQ(json_path_length("payload.x. FROM t"), 9U);
  EXPECT_EQ(json_path_length("payload.x."), 9U);
}

TEST(JsonPathLength, is_zero_where_no_path_starts) {
  EXPECT_EQ(json_path_length(""), 0U);
  EXPECT_EQ(json_path_length(" payload"), 0U);
  EXPECT_EQ(json_path_length(".x"), 0U);
}

TEST(JsonPathLength, includes_a_step_that_parse_then_refuses) {
  const std::string_view text = "payload.0abc + 1";
  EXPECT_EQ(json_path_length(text), 12U);
  EXPECT_THROW(parse_json_path(text.substr(0, 12)), std::invalid_argument);
}

// --- Resolving ---

TEST(JsonPathResolve, finds_nested_keys_and_array_elements) {
  const json* value = resolve(kEnvelope, parse_json_path("payload.items.1.qty"));
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, 3);
  value = resolve(kEnvelope, parse_json_path("payload.nested.deep.value"));
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, 42);
}

TEST(JsonPathResolve, returns_whole_subtrees) {
  const json* value = resolve(kEnvelope, parse_json_path("payload.items"));
  ASSERT_NE(value, nullptr);
  EXPECT_TRUE(value->is_array());
}

TEST(JsonPathResolve, returns_a_present_null_rather_than_nullptr) {
  const json* value = resolve(kEnvelope, parse_json_path("payload.note"));
  ASSERT_NE(value, nullptr);
  EXPECT_TRUE(value->is_null());
}

TEST(JsonPathResolve, returns_nullptr_for_missing_keys_indexes_out_of_range_and_steps_into_scalars) {
  EXPECT_EQ(resolve(kEnvelope, parse_json_path("payload.missing")), nullptr);
  EXPECT_EQ(resolve(kEnvelope, parse_json_path("payload.items.2.id")), nullptr);
  EXPECT_EQ(resolve(kEnvelope, parse_json_path("payload.items.0.id.more")), nullptr);
  EXPECT_EQ(resolve(kEnvelope, parse_json_path("payload.items.id")), nullptr);
  EXPECT_EQ(resolve(kEnvelope, parse_json_path("id.0")), nullptr);
}

TEST(JsonPathResolve, reads_a_digit_step_as_a_key_in_an_object) {
  const json* value = resolve(kEnvelope, parse_json_path("payload.0"));
  ASSERT_NE(value, nullptr);
  EXPECT_EQ(*value, "digit key");
}

TEST(JsonPathResolve, does_not_care_whether_the_path_is_optional) {
  EXPECT_EQ(resolve(kEnvelope, parse_json_path("payload.missing?")), nullptr);
  ASSERT_NE(resolve(kEnvelope, parse_json_path("aggregate_id?")), nullptr);
}

// --- Envelope fields ---

TEST(JsonPathEnvelope, accepts_paths_starting_at_envelope_and_source_fields) {
  for (const char* text :
       {"id", "type", "aggregate_type", "aggregate_id", "occurred_at", "payload.x", "op", "before.id",
        "after.id", "source", "source.commit_lsn", "source.unchanged_toast.0", "headers.trace_id"}) {
    EXPECT_NO_THROW(check_envelope_path(parse_json_path(text))) << text;
  }
}

TEST(JsonPathEnvelope, refuses_a_first_step_that_is_not_an_envelope_field_and_lists_them) {
  const std::string error = envelope_error("paylaod.x");
  EXPECT_THAT(error, HasSubstr("the envelope has no field 'paylaod'"));
  EXPECT_THAT(error, HasSubstr("(it has id, type,"));
  EXPECT_THAT(envelope_error("0.x"), HasSubstr("no field '0'"));
}

TEST(JsonPathEnvelope, refuses_a_source_step_that_is_not_a_source_field) {
  EXPECT_THAT(envelope_error("source.comit_lsn"), HasSubstr("source has no field 'comit_lsn'"));
}

TEST(JsonPathEnvelope, refuses_a_path_without_steps) {
  EXPECT_THROW(check_envelope_path(JsonPath{}), std::invalid_argument);
}

}  // namespace
}  // namespace syncline
