// syncline-producer against the real stack: each kind of bad input becomes one record on
// <prefix>.dlq.producer (reason, source position, original bytes), and the stream goes on after it.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "common/envelope.hpp"
#include "common/lsn.hpp"
#include "producer/event_router.hpp"
#include "tests/integration/producer_test_support.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using nlohmann::json;
namespace dlq_header = producer::dlq_header;

constexpr std::size_t kMaxMessageBytes = 4096;
constexpr std::string_view kAggregate = "ledger";

struct BadInputCase {
  std::string name;  // the test's name suffix
  std::string reason_class;
  std::string reason_mentions;  // a word the reason must contain: the field or the problem
  std::optional<std::string> key;
  bool from_message = false;  // a logical message, else an outbox row
  // Writes the bad input; returns what check_original needs (the row id, or the message content).
  std::function<std::string(ProducerHarness&)> write;
  std::function<void(const std::string& written, const std::string& dead_letter_value)> check_original;
};

std::string outbox_row_with(ProducerHarness& harness, std::optional<std::string> aggregate_id,
                            std::optional<std::string> event_type, std::optional<std::string> payload) {
  return insert_outbox_row(harness, {std::string(kAggregate), std::move(aggregate_id), std::move(event_type),
                                     std::move(payload)});
}

// An outbox row is dead-lettered as its columns in JSON, as PostgreSQL sent them.
void expect_outbox_row(const std::string& id, const std::string& value, std::string_view null_column) {
  const auto row = json::parse(value);
  EXPECT_EQ(row.at("id"), id);
  EXPECT_EQ(row.at("aggregate_type"), kAggregate);
  EXPECT_TRUE(row.at(std::string(null_column)).is_null()) << value;
}

std::vector<BadInputCase> bad_inputs() {
  return {
      {"outbox_row_with_null_payload", "missing_field", "payload", "b-1", false,
       [](ProducerHarness& h) { return outbox_row_with(h, "b-1", "Booked", std::nullopt); },
       [](const std::string& id, const std::string& value) { expect_outbox_row(id, value, "payload"); }},
      {"outbox_row_without_aggregate_id", "missing_field", "aggregate_id", std::nullopt, false,
       [](ProducerHarness& h) { return outbox_row_with(h, std::nullopt, "Booked", R"({"amount": 1})"); },
       [](const std::string& id, const std::string& value) { expect_outbox_row(id, value, "aggregate_id"); }},
      {"outbox_row_without_event_type", "missing_field", "event_type", "b-3", false,
       [](ProducerHarness& h) { return outbox_row_with(h, "b-3", std::nullopt, R"({"amount": 1})"); },
       [](const std::string& id, const std::string& value) { expect_outbox_row(id, value, "event_type"); }},
      {"logical_message_that_is_not_json", "not_json", "JSON", std::nullopt, true,
       [](ProducerHarness& h) {
         const std::string content = "this is {not json";
         h.write_db().exec("SELECT pg_logical_emit_message(true, $1, $2)", {h.message_prefix(), content});
         return content;
       },
       [](const std::string& content, const std::string& value) { EXPECT_EQ(value, content); }},
      {"event_larger_than_max_message_bytes", "oversized", "max_message_bytes", "b-5", false,
       [](ProducerHarness& h) {
         return outbox_row_with(h, "b-5", "Booked", json{{"blob", std::string(2 * kMaxMessageBytes, 'x')}}.dump());
       },
       [](const std::string& id, const std::string& value) {
         // The original of an oversized event is the envelope it encoded to.
         EXPECT_GT(value.size(), kMaxMessageBytes);
         const auto envelope = decode_envelope(value);
         EXPECT_EQ(envelope.id, id);
         EXPECT_EQ(envelope.payload.at("blob").get<std::string>().size(), 2 * kMaxMessageBytes);
       }},
  };
}

// Full names read "ProducerDeadLetters/BadInput.goes_to_..._arrives/<case>".
class BadInput : public ::testing::TestWithParam<BadInputCase> {};

TEST_P(BadInput, goes_to_the_dead_letter_topic_and_a_later_event_still_arrives) {
  ASSERT_TRUE(require_producer_stack());
  const BadInputCase& input = GetParam();
  ProducerHarness harness("pdl", fmt::format("  snapshot: never\n  max_message_bytes: {}\n", kMaxMessageBytes));
  ASSERT_TRUE(start_streaming(harness));

  const std::string written = input.write(harness);
  const std::string good_id = insert_outbox_row(harness, {std::string(kAggregate), "b-good", "Booked", R"({"ok": true})"});

  std::vector<ConsumedRecord> dead_letters;
  ASSERT_TRUE(await_records(harness, {harness.dead_letter_topic()}, 1, dead_letters));
  ASSERT_EQ(dead_letters.size(), 1U);
  const auto& dead_letter = dead_letters.front();
  EXPECT_EQ(dead_letter.key, input.key);
  EXPECT_EQ(header_of(dead_letter, dlq_header::reason_class), input.reason_class);
  const auto reason = header_of(dead_letter, dlq_header::reason).value_or("");
  EXPECT_NE(reason.find(input.reason_mentions), std::string::npos) << reason;
  const auto source_lsn = Lsn::parse(header_of(dead_letter, dlq_header::source_lsn).value_or(""));
  const auto commit_lsn = Lsn::parse(header_of(dead_letter, dlq_header::commit_lsn).value_or(""));
  ASSERT_TRUE(source_lsn && commit_lsn) << "source position headers";
  EXPECT_TRUE(source_lsn->is_valid());
  EXPECT_LE(*source_lsn, *commit_lsn);
  EXPECT_EQ(header_of(dead_letter, dlq_header::seq), "1");
  if (input.from_message) {
    EXPECT_EQ(header_of(dead_letter, dlq_header::message_prefix), harness.message_prefix());
  } else {
    EXPECT_EQ(header_of(dead_letter, dlq_header::table), "public." + harness.outbox_table());
  }
  EXPECT_EQ(header_of(dead_letter, dlq_header::original_size), std::to_string(dead_letter.value.size()));
  EXPECT_EQ(header_of(dead_letter, dlq_header::truncated), "false");
  input.check_original(written, dead_letter.value);

  std::vector<ConsumedRecord> events;
  ASSERT_TRUE(await_records(harness, {harness.event_topic(kAggregate)}, 1, events));
  ASSERT_EQ(events.size(), 1U) << "only the good event is on the event topic";
  EXPECT_EQ(decode_envelope(events.front().value).id, good_id);
  EXPECT_GT(Lsn::from_string(header_of(events.front(), kafka_header::commit_lsn).value_or("0/0")), *commit_lsn)
      << "the good event was committed after the bad input";

  EXPECT_TRUE(poll_until(
      [&] {
        return metric_value(scrape_metrics(harness.http_port()), "syncline_producer_dead_letters_total") == 1.0;
      },
      std::chrono::seconds(10), "syncline_producer_dead_letters_total 1 on /metrics"));
}

INSTANTIATE_TEST_SUITE_P(ProducerDeadLetters, BadInput, ::testing::ValuesIn(bad_inputs()),
                         [](const ::testing::TestParamInfo<BadInputCase>& param) { return param.param.name; });

}  // namespace
}  // namespace syncline::test
