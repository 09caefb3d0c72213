// Unit tests of the event envelope: JSON round trips, decode errors, schema conformance, keys, headers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/envelope.hpp"
#include "common/json_schema.hpp"

namespace syncline {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

Envelope domain_event() {
  return Envelope{
      .id = "0f8fad5b-d9cb-469f-a165-70867728950e",
      .type = "MessageSent",
      .aggregate_type = "conversation",
      .aggregate_id = "c-42",
      .occurred_at = "2026-11-22T10:00:00.123Z",
      .payload = {{"text", "hello"}, {"n", 1}},
      .op = std::nullopt,
      .before = std::nullopt,
      .after = std::nullopt,
      .source = {.db = "write",
                 .schema = "public",
                 .table = "outbox",
                 .lsn = Lsn::from_string("0/16B3748"),
                 .commit_lsn = Lsn::from_string("0/16B3800"),
                 .seq = 3,
                 .txid = 1234,
                 .commit_ts = "2026-11-22T10:00:00.125Z",
                 .snapshot = false,
                 .unchanged_toast = {}},
      .headers = std::nullopt,
  };
}

Envelope row_change() {
  auto envelope = domain_event();
  envelope.type = "public.orders";
  envelope.aggregate_type = "public.orders";
  envelope.payload = nullptr;
  envelope.op = Op::update;
  envelope.before = json{{"id", 7}, {"tenant", "t1"}, {"status", "new"}};
  envelope.after = json{{"status", "paid"}, {"id", 7}, {"tenant", "t1"}, {"amount", "12.50"}};
  envelope.source.table = "orders";
  envelope.source.unchanged_toast = {"notes"};
  return envelope;
}

const JsonSchema& envelope_schema() {
  static const JsonSchema schema = JsonSchema::load(schema_dir() / "envelope.schema.json");
  return schema;
}

std::string violations_of(const std::string& encoded) {
  std::string text;
  for (const auto& violation : envelope_schema().validate(json::parse(encoded))) {
    text += format_json_path(violation.path) + ": " + violation.message + "\n";
  }
  return text;
}

std::string decode_error(const std::string& text) {
  try {
    decode_envelope(text);
  } catch (const EnvelopeError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an EnvelopeError for " << text;
  return {};
}

TEST(Envelope, a_domain_event_survives_an_encode_decode_round_trip) {
  const auto event = domain_event();
  EXPECT_EQ(decode_envelope(encode_envelope(event)), event);
}

TEST(Envelope, a_row_change_survives_an_encode_decode_round_trip) {
  auto change = row_change();
  change.headers = json{{"trace_id", "abc"}};
  EXPECT_EQ(decode_envelope(encode_envelope(change)), change);
}

TEST(Envelope, unicode_is_kept_as_utf8_and_round_trips) {
  auto event = domain_event();
  event.aggregate_id = "kunde-Grüße-世界";
  event.payload = {{"text", "emoji 🚀, quote \", backslash \\, newline \n"}};
  const auto encoded = encode_envelope(event);
  EXPECT_THAT(encoded, HasSubstr("Grüße-世界"));
  EXPECT_THAT(encoded, HasSubstr("🚀"));
  EXPECT_EQ(decode_envelope(encoded), event);
}

TEST(Envelope, numeric_strings_stay_strings_and_big_integers_stay_exact) {
  auto event = domain_event();
  event.payload = {
      {"amount", "12345678901234567890.123456789"}, {"count", 18446744073709551615ULL}, {"neg", -5}};
  const auto decoded = decode_envelope(encode_envelope(event));
  EXPECT_TRUE(decoded.payload["amount"].is_string());
  EXPECT_EQ(decoded.payload["amount"], "12345678901234567890.123456789");
  EXPECT_EQ(decoded.payload["count"].get<std::uint64_t>(), 18446744073709551615ULL);
  EXPECT_EQ(decoded.payload["neg"], -5);
}

TEST(Envelope, nested_json_payloads_are_embedded_not_escaped) {
  auto event = domain_event();
  event.payload = json::parse(
      R"({"order": {"lines": [{"sku": "a", "qty": 2}, {"sku": "b", "tags": []}]}, "meta": null})");
  const auto encoded = encode_envelope(event);
  EXPECT_THAT(encoded, HasSubstr(R"("payload":{"meta":null,"order":{"lines":[{"qty":2,"sku":"a"})"));
  EXPECT_EQ(decode_envelope(encoded).payload, event.payload);
}

TEST(Envelope, fields_appear_in_the_documented_order_with_nulls_for_domain_events) {
  const auto encoded = encode_envelope(domain_event());
  EXPECT_TRUE(encoded.starts_with(R"({"id":"0f8fad5b-d9cb-469f-a165-70867728950e","type":"MessageSent",)"))
      << encoded;
  EXPECT_THAT(encoded, HasSubstr(R"("op":null,"before":null,"after":null,"source":{"db":"write")"));
  EXPECT_THAT(encoded, HasSubstr(R"("lsn":"0/16B3748","commit_lsn":"0/16B3800")"));
  EXPECT_THAT(encoded, Not(HasSubstr("unchanged_toast")));
  EXPECT_THAT(encoded, Not(HasSubstr("headers")));
}

TEST(Envelope, encoded_domain_events_and_row_changes_match_the_envelope_schema) {
  EXPECT_EQ(violations_of(encode_envelope(domain_event())), "");
  auto change = row_change();
  change.headers = json{{"k", "v"}};
  EXPECT_EQ(violations_of(encode_envelope(change)), "");
  change.op = Op::remove;
  change.after = std::nullopt;
  EXPECT_EQ(violations_of(encode_envelope(change)), "");
}

TEST(Envelope, the_schema_rejects_a_malformed_envelope) {
  auto encoded = json::parse(encode_envelope(domain_event()));
  encoded["source"]["lsn"] = "16B3748";
  encoded["op"] = "x";
  encoded["surprise"] = 1;
  const auto violations = violations_of(encoded.dump());
  EXPECT_THAT(violations, HasSubstr("source.lsn: does not match the pattern"));
  EXPECT_THAT(violations, HasSubstr("op: must be one of"));
  EXPECT_THAT(violations, HasSubstr("surprise: unknown key"));
}

TEST(Envelope, decode_errors_name_the_wrong_field) {
  auto encoded = json::parse(encode_envelope(domain_event()));
  auto with = [&](const std::function<void(json&)>& change) {
    auto copy = encoded;
    change(copy);
    return decode_error(copy.dump());
  };
  EXPECT_THAT(with([](json& j) { j["source"]["lsn"] = "zz"; }), HasSubstr("'source.lsn'"));
  EXPECT_THAT(with([](json& j) { j.erase("id"); }), HasSubstr("'id' is missing"));
  EXPECT_THAT(with([](json& j) { j["type"] = 5; }), HasSubstr("'type' expected a string, got number"));
  EXPECT_THAT(with([](json& j) { j["op"] = "x"; }), HasSubstr("'op'"));
  EXPECT_THAT(with([](json& j) { j["before"] = "text"; }), HasSubstr("'before' expected an object or null"));
  EXPECT_THAT(with([](json& j) { j["source"]["seq"] = -1; }), HasSubstr("'source.seq'"));
  EXPECT_THAT(with([](json& j) { j["source"]["unchanged_toast"] = {1}; }),
              HasSubstr("'source.unchanged_toast'"));
  EXPECT_THAT(with([](json& j) { j["source"] = 1; }), HasSubstr("'source' expected an object"));
  EXPECT_THAT(decode_error("{not json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(decode_error("[]"), HasSubstr("must be a JSON object"));
}

TEST(Envelope, decoding_ignores_unknown_fields_so_old_consumers_read_new_producers) {
  auto encoded = json::parse(encode_envelope(domain_event()));
  encoded["added_later"] = true;
  EXPECT_EQ(decode_envelope(encoded.dump()), domain_event());
}

TEST(Envelope, encoding_invalid_utf8_is_an_error_not_a_corrupt_message) {
  auto event = domain_event();
  event.payload = {{"text", "bad \xff"}};
  EXPECT_THROW(encode_envelope(event), EnvelopeError);
}

TEST(Envelope, kafka_headers_carry_id_type_and_commit_lsn) {
  const auto headers = kafka_headers(domain_event());
  EXPECT_EQ(headers[0], (std::pair<std::string_view, std::string>{"syncline-event-id",
                                                                  "0f8fad5b-d9cb-469f-a165-70867728950e"}));
  EXPECT_EQ(headers[1], (std::pair<std::string_view, std::string>{"syncline-event-type", "MessageSent"}));
  EXPECT_EQ(headers[2], (std::pair<std::string_view, std::string>{"syncline-commit-lsn", "0/16B3800"}));
}

TEST(MessageKey, a_domain_event_is_keyed_by_its_aggregate_id) {
  EXPECT_EQ(message_key(domain_event(), {}), "c-42");
}

TEST(MessageKey, a_row_change_is_keyed_by_the_canonical_json_of_its_primary_key) {
  const std::vector<std::string> primary_key = {"tenant", "id"};
  EXPECT_EQ(message_key(row_change(), primary_key), R"({"id":7,"tenant":"t1"})");
}

TEST(MessageKey, a_delete_takes_its_key_from_before) {
  auto change = row_change();
  change.op = Op::remove;
  change.after = std::nullopt;
  const std::vector<std::string> primary_key = {"id"};
  EXPECT_EQ(message_key(change, primary_key), R"({"id":7})");
}

TEST(MessageKey, a_table_without_primary_key_is_keyed_by_the_whole_row) {
  EXPECT_EQ(message_key(row_change(), {}), R"({"amount":"12.50","id":7,"status":"paid","tenant":"t1"})");
}

TEST(MessageKey, a_truncate_gets_the_empty_key_object) {
  auto change = row_change();
  change.op = Op::truncate;
  change.before = change.after = std::nullopt;
  EXPECT_EQ(message_key(change, {}), "{}");
}

TEST(MessageKey, a_missing_primary_key_column_is_an_error) {
  const std::vector<std::string> primary_key = {"nope"};
  EXPECT_THROW(message_key(row_change(), primary_key), EnvelopeError);
}

TEST(CanonicalJson, sorts_keys_at_every_depth_and_has_no_whitespace) {
  const auto value = json::parse(R"({ "b": {"z": 1, "a": [ {"y": 2, "x": 1} ]}, "a": "ü" })");
  EXPECT_EQ(canonical_json(value), R"({"a":"ü","b":{"a":[{"x":1,"y":2}],"z":1}})");
}

TEST(Op, codes_map_to_operations_and_back) {
  for (const char code : {'c', 'u', 'd', 'r', 't'}) {
    const auto op = op_from_code(code);
    ASSERT_TRUE(op.has_value()) << code;
    EXPECT_EQ(op_code(*op), code);
  }
  EXPECT_EQ(op_from_code('x'), std::nullopt);
}

}  // namespace
}  // namespace syncline

TEST(SourceVersion, epoch_zero_is_the_commit_lsn_and_a_newer_epoch_outranks_any_older_lsn) {
  EXPECT_EQ(syncline::source_version(0, syncline::Lsn(0x16B3748)), 0x16B3748u);
  EXPECT_GT(syncline::source_version(1, syncline::Lsn(1)), syncline::source_version(0, syncline::Lsn(0xFFFFFFFFFFFFFFull)));
  EXPECT_THROW(syncline::source_version(128, syncline::Lsn(1)), syncline::EnvelopeError);
  EXPECT_THROW(syncline::source_version(0, syncline::Lsn(1ull << 56)), syncline::EnvelopeError);
}

TEST(SourceVersion, is_read_from_an_envelope_with_its_epoch_and_names_a_bad_field) {
  auto json = nlohmann::json::parse(R"({"source":{"commit_lsn":"0/10","epoch":2}})");
  EXPECT_EQ(syncline::source_version_of(json), (2ull << 56) | 0x10u);
  json["source"].erase("epoch");
  EXPECT_EQ(syncline::source_version_of(json), 0x10u);
  json["source"]["epoch"] = -1;
  try {
    (void)syncline::source_version_of(json);
    FAIL() << "a negative epoch was accepted";
  } catch (const syncline::EnvelopeError& error) {
    EXPECT_NE(std::string(error.what()).find("source.epoch"), std::string::npos) << error.what();
  }
}

TEST(SourceVersion, an_epoch_travels_in_the_envelope_and_is_left_out_when_zero) {
  syncline::Envelope envelope = syncline::decode_envelope(
      R"({"id":"x","type":"t","aggregate_type":"a","aggregate_id":"1","occurred_at":"2026-11-22T10:00:00Z","payload":{},"op":null,"before":null,"after":null,"source":{"db":"w","schema":"","table":"","lsn":"0/1","commit_lsn":"0/2","seq":1,"txid":3,"commit_ts":"2026-11-22T10:00:00Z","snapshot":false}})");
  EXPECT_EQ(envelope.source.epoch, 0u);
  EXPECT_EQ(syncline::encode_envelope(envelope).find("epoch"), std::string::npos);
  envelope.source.epoch = 3;
  const auto text = syncline::encode_envelope(envelope);
  EXPECT_NE(text.find(R"("snapshot":false,"epoch":3)"), std::string::npos) << text;
  EXPECT_EQ(syncline::decode_envelope(text).source.epoch, 3u);
}
