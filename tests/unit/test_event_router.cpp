// Unit tests of the event router: outbox rows, logical messages and row changes become Kafka records,
// bad input becomes dead letters, on hand-built relations and tuples.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/envelope.hpp"
#include "common/json_schema.hpp"
#include "producer/event_router.hpp"
#include "producer/value_mapping.hpp"

namespace syncline::producer {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kEventId = "0f8fad5b-d9cb-469f-a165-70867728950e";

// --- Building changes by hand ---

TupleColumn text(std::string value) { return {ColumnKind::text, std::move(value)}; }
TupleColumn null_value() { return {ColumnKind::null, {}}; }
TupleColumn unchanged_toast() { return {ColumnKind::unchanged_toast, {}}; }

RelationColumn column(std::string name, Oid type, bool is_key = false) {
  return {.is_key = is_key, .name = std::move(name), .type_oid = type, .type_modifier = -1};
}

const RelationInfo kOutbox{
    .relation_id = 16384,
    .schema = "public",
    .table = "outbox",
    .replica_identity = ReplicaIdentity::default_identity,
    .columns = {column("id", pg_type::kUuid, true), column("aggregate_type", pg_type::kText),
                column("aggregate_id", pg_type::kText), column("event_type", pg_type::kText),
                column("payload", pg_type::kJsonb), column("occurred_at", pg_type::kTimestamptz),
                column("headers", pg_type::kJsonb)},
};

const RelationInfo kOrders{
    .relation_id = 16390,
    .schema = "public",
    .table = "orders",
    .replica_identity = ReplicaIdentity::default_identity,
    .columns = {column("id", pg_type::kInt4, true), column("status", pg_type::kText),
                column("notes", pg_type::kText)},
};

const RelationInfo kOrdersFull{
    .relation_id = 16391,
    .schema = "public",
    .table = "orders_full",
    .replica_identity = ReplicaIdentity::full,
    .columns = {column("id", pg_type::kInt4, true), column("status", pg_type::kText, true)},
};

const RelationInfo kEventsFull{
    // REPLICA IDENTITY FULL without a primary key
    .relation_id = 16395,
    .schema = "public",
    .table = "events_full",
    .replica_identity = ReplicaIdentity::full,
    .columns = {column("kind", pg_type::kText, true), column("n", pg_type::kInt4, true)},
};

const RelationInfo kTagsNothing{
    // REPLICA IDENTITY NOTHING with a composite primary key: pgoutput flags no column
    .relation_id = 16396,
    .schema = "public",
    .table = "tags",
    .replica_identity = ReplicaIdentity::nothing,
    .columns = {column("tag", pg_type::kText), column("owner", pg_type::kInt4),
                column("note", pg_type::kText)},
};

const RelationInfo kAuditLog{
    // no primary key
    .relation_id = 16392,
    .schema = "public",
    .table = "audit_log",
    .replica_identity = ReplicaIdentity::default_identity,
    .columns = {column("message", pg_type::kText)},
};

const RelationInfo kSessions{
    // not captured
    .relation_id = 16393,
    .schema = "public",
    .table = "sessions",
    .replica_identity = ReplicaIdentity::default_identity,
    .columns = {column("id", pg_type::kInt4, true)},
};

const RelationInfo kLineItems{
    // a name Kafka would reject
    .relation_id = 16394,
    .schema = "sales",
    .table = "line items",
    .replica_identity = ReplicaIdentity::default_identity,
    .columns = {column("id", pg_type::kInt4, true)},
};

const TransactionInfo kTxn{
    .commit_lsn = Lsn::from_string("0/16B3800"),
    .commit_ts = "2026-11-22T10:00:00.125Z",
    .xid = 1234,
    .snapshot = false,
};

const TransactionInfo kSnapshotTxn{
    .commit_lsn = Lsn::from_string("0/16B3800"),
    .commit_ts = "2026-11-22T10:00:00.125Z",
    .xid = 1234,
    .snapshot = true,
};

RouterOptions options() {
  RouterOptions options;
  options.captured_tables = {{"public", "orders"},    {"public", "orders_full"}, {"public", "audit_log"},
                             {"sales", "line items"}, {"public", "events_full"}, {"public", "tags"}};
  options.primary_keys = {{{"public", "orders"}, {"id"}},  {{"public", "orders_full"}, {"id"}},
                          {{"public", "audit_log"}, {}},   {{"sales", "line items"}, {"id"}},
                          {{"public", "events_full"}, {}}, {{"public", "tags"}, {"owner", "tag"}}};
  return options;
}

TupleData outbox_row() {
  return {text(kEventId),
          text("conversation"),
          text("c-42"),
          text("MessageSent"),
          text(R"({"text": "hello", "n": 1})"),
          text("2026-11-22 10:00:00.123+00"),
          null_value()};
}

SourceChange insert(const RelationInfo& relation, TupleData row, const TransactionInfo& txn = kTxn) {
  return SourceChange{.kind = ChangeKind::insert,
                      .txn = &txn,
                      .lsn = Lsn::from_string("0/16B3748"),
                      .seq = 3,
                      .relation = &relation,
                      .truncated = {},
                      .old_tuple = std::nullopt,
                      .new_tuple = std::move(row),
                      .message = std::nullopt};
}

SourceChange update(const RelationInfo& relation, std::optional<OldTuple> old_tuple, TupleData row) {
  auto change = insert(relation, std::move(row));
  change.kind = ChangeKind::update;
  change.old_tuple = std::move(old_tuple);
  return change;
}

SourceChange remove(const RelationInfo& relation, OldTuple old_tuple) {
  auto change = insert(relation, {});
  change.kind = ChangeKind::remove;
  change.old_tuple = std::move(old_tuple);
  return change;
}

SourceChange truncate(std::vector<const RelationInfo*> relations) {
  auto change = insert(kOrders, {});
  change.kind = ChangeKind::truncate;
  change.relation = nullptr;
  change.truncated = std::move(relations);
  return change;
}

SourceChange message(std::string prefix, std::string content, bool transactional = true) {
  auto change = insert(kOrders, {});
  change.kind = ChangeKind::message;
  change.relation = nullptr;
  change.txn = transactional ? &kTxn : nullptr;
  change.message = LogicalDecodingMessage{.xid = std::nullopt,
                                          .transactional = transactional,
                                          .lsn = Lsn::from_string("0/16B3748"),
                                          .prefix = std::move(prefix),
                                          .content = std::move(content)};
  return change;
}

json message_content() {
  return {{"id", kEventId},
          {"aggregate_type", "conversation"},
          {"aggregate_id", "c-42"},
          {"event_type", "MessageSent"},
          {"payload", {{"text", "hello"}}},
          {"occurred_at", "2026-11-22T10:00:00.123Z"}};
}

// --- Reading records ---

std::optional<std::string> header(const OutgoingRecord& record, std::string_view name) {
  for (const auto& h : record.message.headers) {
    if (h.key == name) return h.value;
  }
  return std::nullopt;
}

const JsonSchema& envelope_schema() {
  static const JsonSchema schema = JsonSchema::load(schema_dir() / "envelope.schema.json");
  return schema;
}

// The record is a published event whose value conforms to the envelope schema; returns it decoded.
Envelope event_of(const OutgoingRecord& record) {
  EXPECT_EQ(record.kind, RecordKind::event);
  for (const auto& violation : envelope_schema().validate(json::parse(record.message.value))) {
    ADD_FAILURE() << "envelope schema: " << format_json_path(violation.path) << ": " << violation.message;
  }
  const auto envelope = decode_envelope(record.message.value);
  EXPECT_EQ(header(record, kafka_header::event_id), envelope.id);
  EXPECT_EQ(header(record, kafka_header::event_type), envelope.type);
  EXPECT_EQ(header(record, kafka_header::commit_lsn), envelope.source.commit_lsn.to_string());
  EXPECT_EQ(record.commit_lsn, envelope.source.commit_lsn);
  EXPECT_EQ(record.seq, envelope.source.seq);
  return envelope;
}

Envelope single_event(EventRouter& router, const SourceChange& change) {
  const auto records = router.route(change);
  if (records.size() != 1)
    throw std::runtime_error("expected one record, got " + std::to_string(records.size()));
  return event_of(records.front());
}

// The one record for `change` is a dead letter with every header; returns it.
OutgoingRecord single_dead_letter(EventRouter& router, const SourceChange& change, DeadLetterReason reason) {
  const auto records = router.route(change);
  if (records.size() != 1)
    throw std::runtime_error("expected one record, got " + std::to_string(records.size()));
  const auto& record = records.front();
  EXPECT_EQ(record.kind, RecordKind::dead_letter);
  EXPECT_EQ(record.message.topic, "syncline.dlq.producer");
  EXPECT_EQ(header(record, dlq_header::reason_class), to_string(reason))
      << header(record, dlq_header::reason).value_or("");
  EXPECT_TRUE(header(record, dlq_header::reason).has_value());
  EXPECT_EQ(header(record, dlq_header::source_lsn), "0/16B3748");
  EXPECT_EQ(header(record, dlq_header::commit_lsn), change.txn ? "0/16B3800" : "0/16B3748");
  EXPECT_EQ(header(record, dlq_header::seq), "3");
  EXPECT_TRUE(header(record, dlq_header::table) || header(record, dlq_header::message_prefix));
  EXPECT_TRUE(header(record, dlq_header::original_size).has_value());
  EXPECT_TRUE(header(record, dlq_header::truncated).has_value());
  EXPECT_EQ(router.counters().dead_letters_for(reason), 1U);
  return record;
}

std::string reason_of(const OutgoingRecord& record) {
  return header(record, dlq_header::reason).value_or("");
}

enum OutboxColumn : std::size_t {
  kId,
  kAggregateType,
  kAggregateId,
  kEventType,
  kPayload,
  kOccurredAt,
  kHeaders
};

// An outbox row with one value replaced, which must become a dead letter of `reason`.
OutgoingRecord outbox_dead_letter(OutboxColumn column, TupleColumn value, DeadLetterReason reason,
                                  const RelationInfo& relation = kOutbox) {
  EventRouter router(options());
  auto row = outbox_row();
  row[column] = std::move(value);
  return single_dead_letter(router, insert(relation, row), reason);
}

// A logical message with our prefix and this content, which must become a dead letter of `reason`.
OutgoingRecord message_dead_letter(const std::string& content, DeadLetterReason reason) {
  EventRouter router(options());
  return single_dead_letter(router, message("syncline", content), reason);
}

// --- Outbox rows ---

TEST(EventRouterOutbox, an_inserted_row_becomes_a_domain_event_keyed_by_its_aggregate) {
  EventRouter router(options());
  const auto records = router.route(insert(kOutbox, outbox_row()));
  ASSERT_EQ(records.size(), 1U);
  const auto& record = records.front();
  EXPECT_EQ(record.message.topic, "syncline.events.conversation");
  EXPECT_EQ(record.message.key, "c-42");

  const auto event = event_of(record);
  EXPECT_EQ(event.id, kEventId);
  EXPECT_EQ(event.type, "MessageSent");
  EXPECT_EQ(event.aggregate_type, "conversation");
  EXPECT_EQ(event.aggregate_id, "c-42");
  EXPECT_EQ(event.occurred_at, "2026-11-22T10:00:00.123Z");
  EXPECT_EQ(event.payload, json({{"text", "hello"}, {"n", 1}}));
  EXPECT_FALSE(event.op.has_value());
  EXPECT_FALSE(event.headers.has_value());
  EXPECT_EQ(event.source, (EventSource{.db = "write",
                                       .schema = "public",
                                       .table = "outbox",
                                       .lsn = Lsn::from_string("0/16B3748"),
                                       .commit_lsn = Lsn::from_string("0/16B3800"),
                                       .seq = 3,
                                       .txid = 1234,
                                       .commit_ts = "2026-11-22T10:00:00.125Z",
                                       .snapshot = false,
                                       .unchanged_toast = {}}));
  EXPECT_EQ(router.counters().outbox_events, 1U);
}

TEST(EventRouterOutbox, the_headers_column_is_carried_into_the_envelope) {
  EventRouter router(options());
  auto row = outbox_row();
  row[6] = text(R"({"trace_id": "abc"})");
  EXPECT_EQ(single_event(router, insert(kOutbox, row)).headers, json({{"trace_id", "abc"}}));
}

TEST(EventRouterOutbox, a_configured_outbox_name_and_source_db_are_used) {
  auto config = options();
  config.outbox_schema = "app";
  config.outbox_table = "events_out";
  config.source_db = "orders-db";
  config.topic_prefix = "acme";
  EventRouter router(config);
  auto relation = kOutbox;
  relation.schema = "app";
  relation.table = "events_out";
  const auto records = router.route(insert(relation, outbox_row()));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.topic, "acme.events.conversation");
  EXPECT_EQ(event_of(records[0]).source.db, "orders-db");
  EXPECT_TRUE(
      router.route(insert(kOutbox, outbox_row())).empty());  // public.outbox is just another table now
}

TEST(EventRouterOutbox, updates_and_deletes_of_outbox_rows_are_ignored_and_counted) {
  EventRouter router(options());
  EXPECT_TRUE(router.route(update(kOutbox, std::nullopt, outbox_row())).empty());
  EXPECT_TRUE(router
                  .route(remove(kOutbox, OldTuple{OldTupleKind::key,
                                                  {text(kEventId), null_value(), null_value(), null_value(),
                                                   null_value(), null_value(), null_value()}}))
                  .empty());
  EXPECT_EQ(router.counters().ignored_outbox_changes, 2U);
  EXPECT_EQ(router.counters().outbox_events, 0U);
}

TEST(EventRouterOutbox, truncating_the_outbox_publishes_nothing) {
  EventRouter router(options());
  EXPECT_TRUE(router.route(truncate({&kOutbox})).empty());
  EXPECT_EQ(router.counters().ignored_outbox_changes, 1U);
}

TEST(EventRouterOutbox, a_null_payload_is_dead_lettered_with_the_raw_row_and_the_aggregate_key) {
  const auto record = outbox_dead_letter(kPayload, null_value(), DeadLetterReason::missing_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'payload'"));
  EXPECT_EQ(record.message.key, "c-42");
  EXPECT_EQ(header(record, dlq_header::table), "public.outbox");
  const auto value = json::parse(record.message.value);
  EXPECT_EQ(value["id"], kEventId);
  EXPECT_EQ(value["payload"], nullptr);
  EXPECT_EQ(value["occurred_at"], "2026-11-22 10:00:00.123+00");  // as PostgreSQL sent it
  EXPECT_EQ(header(record, dlq_header::original_size), std::to_string(record.message.value.size()));
  EXPECT_EQ(header(record, dlq_header::truncated), "false");
}

// jsonb keeps numbers of any size; one beyond a double must not escape route() as an exception
// (the producer would restart on the same change forever).
TEST(EventRouterOutbox, a_payload_with_a_number_beyond_double_range_is_dead_lettered) {
  const auto record = outbox_dead_letter(kPayload, text(R"({"n": 1e400})"), DeadLetterReason::not_json);
  EXPECT_THAT(reason_of(record), HasSubstr("'payload' is not valid JSON"));
}

TEST(EventRouterMessages, content_with_a_number_beyond_double_range_is_dead_lettered) {
  const auto record = message_dead_letter(R"({"payload": {"n": 1e400}})", DeadLetterReason::not_json);
  EXPECT_THAT(reason_of(record), HasSubstr("not valid JSON"));
}

TEST(EventRouterOutbox, a_payload_that_is_not_json_is_dead_lettered) {
  const auto record = outbox_dead_letter(kPayload, text("{not json"), DeadLetterReason::not_json);
  EXPECT_THAT(reason_of(record), HasSubstr("'payload' is not valid JSON"));
  EXPECT_EQ(json::parse(record.message.value)["payload"], "{not json");
}

TEST(EventRouterOutbox, a_missing_aggregate_id_is_dead_lettered_without_a_key) {
  const auto record = outbox_dead_letter(kAggregateId, null_value(), DeadLetterReason::missing_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'aggregate_id' is missing or null"));
  EXPECT_FALSE(record.message.key.has_value());
}

TEST(EventRouterOutbox, an_empty_event_type_is_dead_lettered) {
  const auto record = outbox_dead_letter(kEventType, text(""), DeadLetterReason::missing_field);
  EXPECT_THAT(reason_of(record), HasSubstr("outbox row field 'event_type' is empty"));
}

TEST(EventRouterOutbox, an_empty_aggregate_type_is_dead_lettered) {
  const auto record = outbox_dead_letter(kAggregateType, text(""), DeadLetterReason::missing_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'aggregate_type' is empty"));
}

TEST(EventRouterOutbox, an_id_that_is_not_a_uuid_is_dead_lettered) {
  auto relation = kOutbox;
  relation.columns[kId].type_oid = pg_type::kText;  // an outbox whose id column is text
  const auto record = outbox_dead_letter(kId, text("event-1"), DeadLetterReason::invalid_field, relation);
  EXPECT_THAT(reason_of(record), HasSubstr("'id' must be a UUID, got 'event-1'"));
}

TEST(EventRouterOutbox, an_occurred_at_that_is_not_a_timestamptz_is_a_value_mapping_dead_letter) {
  const auto record = outbox_dead_letter(kOccurredAt, text("yesterday"), DeadLetterReason::value_mapping);
  EXPECT_THAT(reason_of(record), HasSubstr("'occurred_at'"));
}

TEST(EventRouterOutbox, headers_that_are_not_an_object_are_dead_lettered) {
  const auto record = outbox_dead_letter(kHeaders, text("[1, 2]"), DeadLetterReason::invalid_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'headers' must be a JSON object or null, got a JSON array"));
}

TEST(EventRouterOutbox, a_row_with_fewer_values_than_columns_is_a_value_mapping_dead_letter) {
  EventRouter router(options());
  auto row = outbox_row();
  row.pop_back();
  const auto record = single_dead_letter(router, insert(kOutbox, row), DeadLetterReason::value_mapping);
  EXPECT_THAT(reason_of(record), HasSubstr("has 6 values but table public.outbox has 7 columns"));
}

// --- Logical messages ---

TEST(EventRouterMessages, a_transactional_message_with_our_prefix_becomes_a_domain_event) {
  EventRouter router(options());
  auto content = message_content();
  content["headers"] = {{"trace_id", "abc"}};
  const auto records = router.route(message("syncline", content.dump()));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.topic, "syncline.events.conversation");
  EXPECT_EQ(records[0].message.key, "c-42");
  const auto event = event_of(records[0]);
  EXPECT_EQ(event.id, kEventId);
  EXPECT_EQ(event.type, "MessageSent");
  EXPECT_EQ(event.payload, json({{"text", "hello"}}));
  EXPECT_EQ(event.headers, json({{"trace_id", "abc"}}));
  EXPECT_EQ(event.source.schema, "");
  EXPECT_EQ(event.source.table, "");
  EXPECT_EQ(event.source.commit_lsn, kTxn.commit_lsn);
  EXPECT_EQ(event.source.commit_ts, kTxn.commit_ts);
  EXPECT_EQ(router.counters().message_events, 1U);
}

TEST(EventRouterMessages, type_is_accepted_in_place_of_event_type) {
  EventRouter router(options());
  auto content = message_content();
  content.erase("event_type");
  content["type"] = "MessageEdited";
  EXPECT_EQ(single_event(router, message("syncline", content.dump())).type, "MessageEdited");
}

TEST(EventRouterMessages, an_upper_case_uuid_is_published_in_lower_case_like_postgres_prints_it) {
  EventRouter router(options());
  auto content = message_content();
  content["id"] = "0F8FAD5B-D9CB-469F-A165-70867728950E";
  EXPECT_EQ(single_event(router, message("syncline", content.dump())).id, kEventId);
}

TEST(EventRouterMessages, a_non_transactional_message_is_published_at_its_own_lsn) {
  EventRouter router(options());
  const auto event = single_event(router, message("syncline", message_content().dump(), false));
  EXPECT_EQ(event.source.commit_lsn, Lsn::from_string("0/16B3748"));
  EXPECT_EQ(event.source.commit_ts, "2026-11-22T10:00:00.123Z");  // no commit: the event's own time
}

TEST(EventRouterMessages, heartbeats_are_consumed_without_a_record) {
  EventRouter router(options());
  EXPECT_TRUE(router.route(message("syncline-heartbeat", "")).empty());
  EXPECT_TRUE(router.route(message("syncline-heartbeat", "tick", false)).empty());
  EXPECT_EQ(router.counters().heartbeats, 2U);
}

TEST(EventRouterMessages, messages_with_another_prefix_are_ignored_and_counted) {
  EventRouter router(options());
  EXPECT_TRUE(router.route(message("other-tool", message_content().dump())).empty());
  EXPECT_TRUE(router.route(message("synclinex", "not even json")).empty());
  EXPECT_EQ(router.counters().ignored_messages, 2U);
  EXPECT_EQ(router.counters().dead_letters_total(), 0U);
}

TEST(EventRouterMessages, content_that_is_not_json_is_dead_lettered_as_it_was_sent) {
  const auto record = message_dead_letter("{oops", DeadLetterReason::not_json);
  EXPECT_EQ(record.message.value, "{oops");
  EXPECT_EQ(header(record, dlq_header::message_prefix), "syncline");
  EXPECT_FALSE(header(record, dlq_header::table).has_value());
  EXPECT_FALSE(record.message.key.has_value());
  EXPECT_THAT(reason_of(record), HasSubstr("logical message content is not valid JSON"));
}

TEST(EventRouterMessages, content_that_is_not_an_object_is_dead_lettered) {
  const auto record = message_dead_letter("[1, 2]", DeadLetterReason::not_json);
  EXPECT_THAT(reason_of(record), HasSubstr("must be a JSON object, got a JSON array"));
}

TEST(EventRouterMessages, a_message_without_payload_is_dead_lettered_with_its_aggregate_key) {
  auto content = message_content();
  content.erase("payload");
  const auto record = message_dead_letter(content.dump(), DeadLetterReason::missing_field);
  EXPECT_THAT(reason_of(record), HasSubstr("logical message field 'payload' is missing or null"));
  EXPECT_EQ(record.message.key, "c-42");
  EXPECT_EQ(record.message.value, content.dump());
}

TEST(EventRouterMessages, a_non_string_aggregate_id_is_dead_lettered) {
  auto content = message_content();
  content["aggregate_id"] = 42;
  const auto record = message_dead_letter(content.dump(), DeadLetterReason::invalid_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'aggregate_id' must be a string, got a JSON number"));
}

TEST(EventRouterMessages, a_missing_id_is_dead_lettered) {
  auto content = message_content();
  content.erase("id");
  const auto record = message_dead_letter(content.dump(), DeadLetterReason::missing_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'id' is missing or null"));
}

TEST(EventRouterMessages, an_occurred_at_without_a_zone_is_dead_lettered) {
  auto content = message_content();
  content["occurred_at"] = "2026-11-22 10:00:00";
  const auto record = message_dead_letter(content.dump(), DeadLetterReason::invalid_field);
  EXPECT_THAT(reason_of(record), HasSubstr("'occurred_at' must be an ISO-8601 timestamp with a zone"));
}

// json_build_object(..., 'occurred_at', now()) writes "+00:00"; other clients write other zones.
TEST(EventRouterMessages, an_occurred_at_with_an_offset_is_normalised_to_utc) {
  EventRouter router(options());
  auto content = message_content();
  content["occurred_at"] = "2026-11-22T03:21:38.613629+00:00";
  EXPECT_EQ(single_event(router, message("syncline", content.dump())).occurred_at,
            "2026-11-22T03:21:38.613629Z");
  content["occurred_at"] = "2026-11-22 12:00:00+02";
  EXPECT_EQ(single_event(router, message("syncline", content.dump())).occurred_at, "2026-11-22T10:00:00Z");
}

TEST(EventRouterMessages, a_dead_letter_of_a_non_transactional_message_carries_its_own_lsn) {
  EventRouter router(options());
  single_dead_letter(router, message("syncline", "{oops", false), DeadLetterReason::not_json);
}

// --- Row changes ---

TEST(EventRouterRowChanges, an_insert_becomes_a_create_keyed_by_the_primary_key) {
  EventRouter router(options());
  const auto records = router.route(insert(kOrders, {text("7"), text("new"), null_value()}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.topic, "syncline.public.orders");
  EXPECT_EQ(records[0].message.key, R"({"id":7})");
  const auto event = event_of(records[0]);
  EXPECT_EQ(event.op, Op::create);
  EXPECT_EQ(event.id, "0/16B3800:3");
  EXPECT_EQ(event.type, "public.orders.c");
  EXPECT_EQ(event.aggregate_type, "public.orders");
  EXPECT_EQ(event.aggregate_id, R"({"id":7})");
  EXPECT_EQ(event.occurred_at, kTxn.commit_ts);
  EXPECT_EQ(event.payload, nullptr);
  EXPECT_FALSE(event.before.has_value());
  EXPECT_EQ(event.after, json({{"id", 7}, {"status", "new"}, {"notes", nullptr}}));
  EXPECT_EQ(event.source.table, "orders");
  EXPECT_EQ(router.counters().row_change_events, 1U);
}

TEST(EventRouterRowChanges, an_update_without_an_old_row_has_a_null_before) {
  EventRouter router(options());
  const auto event =
      single_event(router, update(kOrders, std::nullopt, {text("7"), text("paid"), text("x")}));
  EXPECT_EQ(event.op, Op::update);
  EXPECT_EQ(event.type, "public.orders.u");
  EXPECT_FALSE(event.before.has_value());
  EXPECT_EQ(event.after, json({{"id", 7}, {"status", "paid"}, {"notes", "x"}}));
}

TEST(EventRouterRowChanges, an_update_that_keeps_the_key_is_one_update_event) {
  EventRouter router(options());
  // PostgreSQL may send the old key although it did not change (a TOASTed key column).
  const auto records =
      router.route(update(kOrders, OldTuple{OldTupleKind::key, {text("7"), null_value(), null_value()}},
                          {text("7"), text("paid"), text("x")}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.key, R"({"id":7})");
  const auto event = event_of(records[0]);
  EXPECT_EQ(event.op, Op::update);
  EXPECT_EQ(event.before, json({{"id", 7}}));
}

TEST(EventRouterRowChanges, an_update_that_changes_the_key_deletes_the_old_key_then_creates_the_new_one) {
  EventRouter router(options());
  const auto records =
      router.route(update(kOrders, OldTuple{OldTupleKind::key, {text("7"), null_value(), null_value()}},
                          {text("8"), text("paid"), text("x")}));
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[0].message.topic, "syncline.public.orders");
  EXPECT_EQ(records[0].message.key, R"({"id":7})");
  const auto removal = event_of(records[0]);
  EXPECT_EQ(removal.op, Op::remove);
  EXPECT_EQ(removal.type, "public.orders.d");
  EXPECT_EQ(removal.id, "0/16B3800:3:d");
  EXPECT_EQ(removal.aggregate_id, R"({"id":7})");
  EXPECT_EQ(removal.before, json({{"id", 7}}));
  EXPECT_FALSE(removal.after.has_value());

  EXPECT_EQ(records[1].message.topic, "syncline.public.orders");
  EXPECT_EQ(records[1].message.key, R"({"id":8})");
  const auto creation = event_of(records[1]);
  EXPECT_EQ(creation.op, Op::create);
  EXPECT_EQ(creation.type, "public.orders.c");
  EXPECT_EQ(creation.id, "0/16B3800:3");
  EXPECT_EQ(creation.aggregate_id, R"({"id":8})");
  EXPECT_FALSE(creation.before.has_value());
  EXPECT_EQ(creation.after, json({{"id", 8}, {"status", "paid"}, {"notes", "x"}}));
  EXPECT_EQ(router.counters().row_change_events, 2U);
}

TEST(EventRouterRowChanges, a_full_identity_table_carries_the_whole_old_row_and_keys_by_its_primary_key) {
  EventRouter router(options());
  const auto records = router.route(
      update(kOrdersFull, OldTuple{OldTupleKind::full, {text("7"), text("new")}}, {text("7"), text("paid")}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.key, R"({"id":7})");  // not the whole row, which every update changes
  const auto event = event_of(records[0]);
  EXPECT_EQ(event.op, Op::update);
  EXPECT_EQ(event.before, json({{"id", 7}, {"status", "new"}}));
  EXPECT_EQ(single_event(router, insert(kOrdersFull, {text("7"), text("new")})).aggregate_id, R"({"id":7})");
  const auto removed =
      router.route(remove(kOrdersFull, OldTuple{OldTupleKind::full, {text("7"), text("paid")}}));
  ASSERT_EQ(removed.size(), 1U);
  EXPECT_EQ(removed[0].message.key, R"({"id":7})");
}

TEST(EventRouterRowChanges, a_full_identity_update_that_changes_the_primary_key_deletes_the_old_key_first) {
  EventRouter router(options());
  const auto records = router.route(
      update(kOrdersFull, OldTuple{OldTupleKind::full, {text("7"), text("new")}}, {text("9"), text("new")}));
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[0].message.key, R"({"id":7})");
  const auto removal = event_of(records[0]);
  EXPECT_EQ(removal.op, Op::remove);
  EXPECT_EQ(removal.before, json({{"id", 7}, {"status", "new"}}));  // the whole old row, as sent
  EXPECT_EQ(records[1].message.key, R"({"id":9})");
  EXPECT_EQ(event_of(records[1]).op, Op::create);
}

TEST(EventRouterRowChanges, a_full_identity_table_without_a_primary_key_is_keyless) {
  EventRouter router(options());
  const auto inserted = router.route(insert(kEventsFull, {text("click"), text("1")}));
  ASSERT_EQ(inserted.size(), 1U);
  EXPECT_FALSE(inserted[0].message.key.has_value());
  EXPECT_EQ(event_of(inserted[0]).aggregate_id, "");
  // Its updates are allowed (FULL) and keyless too: no key to move, so never a delete first.
  const auto updated = router.route(update(
      kEventsFull, OldTuple{OldTupleKind::full, {text("click"), text("1")}}, {text("click"), text("2")}));
  ASSERT_EQ(updated.size(), 1U);
  EXPECT_FALSE(updated[0].message.key.has_value());
  EXPECT_EQ(event_of(updated[0]).op, Op::update);
}

TEST(EventRouterRowChanges, a_full_identity_table_missing_from_the_primary_keys_is_keyless) {
  auto config = options();
  config.primary_keys.erase({"public", "orders_full"});
  EventRouter router(config);
  const auto records = router.route(insert(kOrdersFull, {text("7"), text("new")}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_FALSE(records[0].message.key.has_value());
}

TEST(EventRouterRowChanges, a_table_with_replica_identity_nothing_is_keyed_by_its_composite_primary_key) {
  EventRouter router(options());
  const auto records = router.route(insert(kTagsNothing, {text("red"), text("3"), null_value()}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.key, R"({"owner":3,"tag":"red"})");
}

TEST(EventRouterRowChanges, the_default_identity_keys_by_the_flagged_columns_not_the_start_up_lookup) {
  // The flags are the key as PostgreSQL sees it now; the lookup may be older.
  auto config = options();
  config.primary_keys[{"public", "orders"}] = {"status"};
  EventRouter router(config);
  const auto records = router.route(insert(kOrders, {text("7"), text("new"), null_value()}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.key, R"({"id":7})");
}

TEST(EventRouterRowChanges, a_delete_with_default_identity_has_only_the_key_in_before) {
  EventRouter router(options());
  const auto records =
      router.route(remove(kOrders, OldTuple{OldTupleKind::key, {text("7"), null_value(), null_value()}}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.key, R"({"id":7})");
  const auto event = event_of(records[0]);
  EXPECT_EQ(event.op, Op::remove);
  EXPECT_EQ(event.type, "public.orders.d");
  EXPECT_EQ(event.before, json({{"id", 7}}));
  EXPECT_FALSE(event.after.has_value());
}

TEST(EventRouterRowChanges, unchanged_toast_columns_are_listed_and_left_out_of_after) {
  EventRouter router(options());
  const auto event =
      single_event(router, update(kOrders, std::nullopt, {text("7"), text("paid"), unchanged_toast()}));
  EXPECT_EQ(event.after, json({{"id", 7}, {"status", "paid"}}));
  EXPECT_THAT(event.source.unchanged_toast, ElementsAre("notes"));
}

TEST(EventRouterRowChanges, inserts_into_a_table_without_a_primary_key_have_no_kafka_key) {
  EventRouter router(options());
  const auto records = router.route(insert(kAuditLog, {text("logged in")}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_FALSE(records[0].message.key.has_value());
  EXPECT_EQ(event_of(records[0]).aggregate_id, "");
}

TEST(EventRouterRowChanges, rows_of_a_snapshot_are_read_ops) {
  EventRouter router(options());
  const auto event =
      single_event(router, insert(kOrders, {text("7"), text("new"), null_value()}, kSnapshotTxn));
  EXPECT_EQ(event.op, Op::read);
  EXPECT_EQ(event.type, "public.orders.r");
  EXPECT_TRUE(event.source.snapshot);
}

TEST(EventRouterRowChanges, a_truncate_gives_one_event_per_captured_table_keyed_by_an_empty_object) {
  EventRouter router(options());
  const auto records = router.route(truncate({&kOrders, &kSessions, &kOutbox, &kAuditLog}));
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[0].message.topic, "syncline.public.orders");
  EXPECT_EQ(records[1].message.topic, "syncline.public.audit_log");
  for (const auto& record : records) {
    EXPECT_EQ(record.message.key, "{}");
    const auto event = event_of(record);
    EXPECT_EQ(event.op, Op::truncate);
    EXPECT_FALSE(event.before.has_value());
    EXPECT_FALSE(event.after.has_value());
  }
  EXPECT_EQ(event_of(records[0]).id, "0/16B3800:3:public.orders");
  EXPECT_EQ(event_of(records[1]).type, "public.audit_log.t");
  // The table's rows are spread over every partition: a copy of the truncate goes to each.
  EXPECT_TRUE(records[0].every_partition);
  EXPECT_TRUE(records[1].every_partition);
  EXPECT_EQ(router.counters().row_change_events, 2U);
  EXPECT_EQ(router.counters().ignored_table_changes, 1U);
  EXPECT_EQ(router.counters().ignored_outbox_changes, 1U);
}

// A fetcher that answers from a map keyed by "schema.table/key...", and counts what it was asked.
class FakeToastFetcher final : public ToastFetcher {
 public:
  std::map<std::string, std::vector<std::optional<std::string>>> rows;
  std::vector<std::string> asked;
  std::vector<Xid> seen_by;  // the transaction each read had to see

  std::optional<std::vector<std::optional<std::string>>> fetch(const RelationInfo& relation,
                                                               const std::vector<std::string>& key_columns,
                                                               const std::vector<std::string>& key,
                                                               const std::vector<std::string>& columns,
                                                               Xid xid) override {
    seen_by.push_back(xid);
    std::string name = relation.schema + "." + relation.table;
    for (std::size_t i = 0; i < key.size(); ++i) name += "/" + key_columns[i] + "=" + key[i];
    for (const auto& column : columns) asked.push_back(name + ":" + column);
    const auto it = rows.find(name);
    if (it == rows.end()) return std::nullopt;
    return it->second;
  }
};

// Issue 14, point 4: the create of a moved row must carry the TOASTed value the update left out, or the
// sinks (which hold no row under the new key) lose it for good.
TEST(EventRouterRowChanges, a_key_change_fills_the_unchanged_toasted_values_of_its_create_from_the_database) {
  EventRouter router(options());
  FakeToastFetcher fetcher;
  fetcher.rows["public.orders/id=8"] = {std::string(9000, 'n')};
  router.set_toast_fetcher(&fetcher);
  const auto records =
      router.route(update(kOrders, OldTuple{OldTupleKind::key, {text("7"), null_value(), null_value()}},
                          {text("8"), text("paid"), unchanged_toast()}));
  ASSERT_EQ(records.size(), 2U);
  const auto creation = event_of(records[1]);
  EXPECT_EQ(creation.op, Op::create);
  EXPECT_EQ(creation.after, json({{"id", 8}, {"status", "paid"}, {"notes", std::string(9000, 'n')}}));
  EXPECT_TRUE(creation.source.unchanged_toast.empty());
  EXPECT_THAT(fetcher.asked, ElementsAre("public.orders/id=8:notes"));
  // Read with a snapshot that sees the change's own transaction: before it, "no row" would be a lie.
  EXPECT_THAT(fetcher.seen_by, ElementsAre(kTxn.xid));
}

TEST(EventRouterRowChanges, a_key_change_of_a_row_gone_since_keeps_the_column_listed_as_unchanged) {
  EventRouter router(options());
  FakeToastFetcher fetcher;  // no such row any more: a later delete of it follows in the stream
  router.set_toast_fetcher(&fetcher);
  const auto records =
      router.route(update(kOrders, OldTuple{OldTupleKind::key, {text("7"), null_value(), null_value()}},
                          {text("8"), text("paid"), unchanged_toast()}));
  ASSERT_EQ(records.size(), 2U);
  EXPECT_THAT(event_of(records[1]).source.unchanged_toast, ElementsAre("notes"));
}

TEST(EventRouterRowChanges, a_full_identity_key_change_takes_the_unchanged_value_from_the_old_row_without_a_query) {
  EventRouter router(options());
  FakeToastFetcher fetcher;
  router.set_toast_fetcher(&fetcher);
  const auto records = router.route(update(kOrdersFull, OldTuple{OldTupleKind::full, {text("7"), text("big")}},
                                           {text("9"), unchanged_toast()}));
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(event_of(records[1]).after, json({{"id", 9}, {"status", "big"}}));
  EXPECT_TRUE(fetcher.asked.empty());
}

TEST(EventRouterRowChanges, an_update_that_keeps_its_key_leaves_unchanged_toast_to_the_sinks_without_a_query) {
  EventRouter router(options());
  FakeToastFetcher fetcher;
  router.set_toast_fetcher(&fetcher);
  const auto event = single_event(router, update(kOrders, std::nullopt, {text("7"), text("paid"), unchanged_toast()}));
  EXPECT_THAT(event.source.unchanged_toast, ElementsAre("notes"));
  EXPECT_TRUE(fetcher.asked.empty());
}

TEST(EventRouterRowChanges, the_source_epoch_is_stamped_into_every_envelope) {
  auto with_epoch = options();
  with_epoch.epoch = 2;
  EventRouter router(with_epoch);
  EXPECT_EQ(single_event(router, insert(kOrders, {text("7"), text("new"), null_value()})).source.epoch, 2U);
}

TEST(EventRouterRowChanges, changes_of_tables_that_are_not_captured_are_ignored_and_counted) {
  EventRouter router(options());
  EXPECT_TRUE(router.route(insert(kSessions, {text("1")})).empty());
  EXPECT_TRUE(router.route(update(kSessions, std::nullopt, {text("1")})).empty());
  EXPECT_EQ(router.counters().ignored_table_changes, 2U);
}

TEST(EventRouterRowChanges, a_replayed_change_gets_the_same_id_and_the_same_bytes) {
  const auto change = update(kOrders, std::nullopt, {text("7"), text("paid"), text("x")});
  EventRouter first(options());
  EventRouter second(options());
  const auto a = first.route(change);
  const auto b = second.route(change);
  ASSERT_EQ(a.size(), 1U);
  ASSERT_EQ(b.size(), 1U);
  EXPECT_EQ(a[0].message.value, b[0].message.value);
  EXPECT_EQ(a[0].message.headers, b[0].message.headers);
  auto later = change;
  later.seq = 4;
  EXPECT_EQ(single_event(first, later).id, "0/16B3800:4");
}

TEST(EventRouterRowChanges, table_names_kafka_rejects_are_sanitised_in_the_topic) {
  EventRouter router(options());
  const auto records = router.route(insert(kLineItems, {text("1")}));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.topic, "syncline.sales.line_items");
  EXPECT_EQ(event_of(records[0]).source.table, "line items");  // the envelope keeps the real name
}

TEST(EventRouterRowChanges, a_value_that_does_not_map_is_dead_lettered_with_the_raw_row) {
  EventRouter router(options());
  const auto record =
      single_dead_letter(router,
                         update(kOrders, OldTuple{OldTupleKind::key, {text("7"), null_value(), null_value()}},
                                {text("seven"), text("paid"), unchanged_toast()}),
                         DeadLetterReason::value_mapping);
  EXPECT_THAT(reason_of(record), HasSubstr("public.orders.id"));
  EXPECT_EQ(header(record, dlq_header::table), "public.orders");
  EXPECT_FALSE(record.message.key.has_value());  // the key is what failed to map
  EXPECT_EQ(json::parse(record.message.value),
            json({{"op", "u"},
                  {"before", {{"id", "7"}, {"status", nullptr}, {"notes", nullptr}}},
                  {"after", {{"id", "seven"}, {"status", "paid"}}}}));
}

TEST(EventRouterRowChanges, a_row_that_is_not_valid_utf8_is_dead_lettered_as_unencodable) {
  EventRouter router(options());
  const auto record =
      single_dead_letter(router, insert(kOrders, {text("7"), text("bad \xff byte"), null_value()}),
                         DeadLetterReason::unencodable);
  EXPECT_EQ(record.message.key, R"({"id":7})");
  EXPECT_TRUE(json::accept(record.message.value));  // replaced, still valid JSON
}

TEST(EventRouterRowChanges, an_oversized_event_is_dead_lettered_as_its_envelope_cut_to_the_limit) {
  auto config = options();
  config.max_message_bytes = 2000;
  config.dead_letter_value_limit = 100;
  EventRouter router(config);
  const auto change = insert(kOrders, {text("7"), text("new"), text(std::string(5000, 'x'))});
  const auto record = single_dead_letter(router, change, DeadLetterReason::oversized);
  EXPECT_EQ(record.message.value.size(), 100U);
  EXPECT_EQ(record.message.value.substr(0, 7), R"({"id":")");
  EXPECT_EQ(record.message.key, R"({"id":7})");
  EXPECT_EQ(header(record, dlq_header::truncated), "true");
  const auto size = std::stoul(header(record, dlq_header::original_size).value());
  EXPECT_GT(size, 5000U);
  EXPECT_THAT(reason_of(record), HasSubstr("more than max_message_bytes (2000)"));
}

TEST(EventRouterRowChanges, a_row_change_without_a_transaction_is_a_caller_bug_not_a_dead_letter) {
  EventRouter router(options());
  auto change = insert(kOrders, {text("7"), text("new"), null_value()});
  change.txn = nullptr;
  EXPECT_THROW(router.route(change), std::invalid_argument);
  change = insert(kOrders, {});
  change.relation = nullptr;
  EXPECT_THROW(router.route(change), std::invalid_argument);
}

// --- Topics and counters ---

TEST(EventRouter, aggregate_types_kafka_rejects_are_sanitised_in_the_topic_but_kept_in_the_envelope) {
  EventRouter router(options());
  auto content = message_content();
  content["aggregate_type"] = "order items/v2";
  const auto records = router.route(message("syncline", content.dump()));
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].message.topic, "syncline.events.order_items_v2");
  EXPECT_EQ(event_of(records[0]).aggregate_type, "order items/v2");
}

TEST(EventRouter, reports_each_new_domain_event_topic_once) {
  EventRouter router(options());
  router.route(insert(kOutbox, outbox_row()));
  auto content = message_content();
  content["aggregate_type"] = "customer";
  router.route(message("syncline", content.dump()));
  router.route(insert(kOutbox, outbox_row()));
  EXPECT_THAT(router.take_new_aggregate_types(), ElementsAre("conversation", "customer"));
  router.route(insert(kOutbox, outbox_row()));
  content["aggregate_type"] = "customer?";  // same topic as "customer_"... but not as "customer"
  router.route(message("syncline", content.dump()));
  content["aggregate_type"] = "customer_";
  router.route(message("syncline", content.dump()));
  content["aggregate_type"] = "rejected";
  content.erase("payload");
  router.route(message("syncline", content.dump()));  // a dead letter creates no topic
  EXPECT_THAT(router.take_new_aggregate_types(), ElementsAre("customer?"));
}

TEST(EventRouter, counts_dead_letters_per_reason_class) {
  EventRouter router(options());
  router.route(message("syncline", "{oops"));
  router.route(message("syncline", "42"));
  router.route(insert(kOrders, {text("seven"), null_value(), null_value()}));
  EXPECT_EQ(router.counters().dead_letters_for(DeadLetterReason::not_json), 2U);
  EXPECT_EQ(router.counters().dead_letters_for(DeadLetterReason::value_mapping), 1U);
  EXPECT_EQ(router.counters().dead_letters_for(DeadLetterReason::oversized), 0U);
  EXPECT_EQ(router.counters().dead_letters_total(), 3U);
}

TEST(EventRouter, every_reason_class_has_a_metric_label) {
  for (std::size_t i = 0; i < kDeadLetterReasonCount; ++i) {
    EXPECT_NE(to_string(static_cast<DeadLetterReason>(i)), "unknown");
  }
}

}  // namespace
}  // namespace syncline::producer
