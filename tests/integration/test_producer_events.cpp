// syncline-producer against the real stack: outbox rows, logical messages and row changes become the
// Kafka records of DESIGN.md "Events", once each, in commit order per key, across a SIGTERM restart.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>

#include "common/envelope.hpp"
#include "common/lsn.hpp"
#include "tests/integration/producer_test_support.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kNoSnapshot = "  snapshot: never\n";

std::string capture_yaml(const std::vector<const ScratchTable*>& tables) {
  std::vector<std::string> names;
  for (const auto* table : tables) names.push_back(table->qualified());
  return fmt::format("  capture: [{}]\n", fmt::join(names, ", "));
}

bool is_iso_utc(const std::string& text) { return text.size() > 20 && text[10] == 'T' && text.back() == 'Z'; }

// The DESIGN.md headers: id, type and commit LSN, equal to the envelope's.
void expect_event_headers(const ConsumedRecord& record, const Envelope& envelope) {
  EXPECT_EQ(header_of(record, kafka_header::event_id), envelope.id);
  EXPECT_EQ(header_of(record, kafka_header::event_type), envelope.type);
  EXPECT_EQ(header_of(record, kafka_header::commit_lsn), envelope.source.commit_lsn.to_string());
}

// Source fields every event read from the WAL carries.
void expect_streamed_source(const EventSource& source, const std::string& database) {
  EXPECT_EQ(source.db, database);
  EXPECT_TRUE(source.lsn.is_valid());
  EXPECT_TRUE(source.commit_lsn.is_valid());
  EXPECT_LE(source.lsn, source.commit_lsn);
  EXPECT_GE(source.seq, 1U);
  EXPECT_NE(source.txid, 0U);
  EXPECT_TRUE(is_iso_utc(source.commit_ts)) << source.commit_ts;
  EXPECT_FALSE(source.snapshot);
}

std::string current_database(ProducerHarness& harness) {
  return std::string(harness.write_db().exec("SELECT current_database()").value(0, 0));
}

// Published row changes of one table, decoded, in partition-offset order (commit order per key).
std::vector<std::pair<ConsumedRecord, Envelope>> decoded(std::vector<ConsumedRecord> records) {
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset); });
  std::vector<std::pair<ConsumedRecord, Envelope>> result;
  for (auto& record : records) {
    auto envelope = decode_envelope(record.value);
    result.emplace_back(std::move(record), std::move(envelope));
  }
  return result;
}

const std::pair<ConsumedRecord, Envelope>* find_change(const std::vector<std::pair<ConsumedRecord, Envelope>>& changes,
                                                      Op op, std::string_view key) {
  for (const auto& change : changes) {
    if (change.second.op == op && change.first.key == key) return &change;
  }
  return nullptr;
}

// A domain event's record: keyed by its aggregate id, the fields as written, no row-change fields,
// the DESIGN.md headers and the source of a change read from the WAL. Returns the envelope.
Envelope expect_domain_event(ProducerHarness& harness, const ConsumedRecord& record, const std::string& id,
                             const DomainEvent& written) {
  EXPECT_EQ(record.key, written.aggregate_id);
  auto envelope = decode_envelope(record.value);
  EXPECT_EQ(envelope.id, id);
  EXPECT_EQ(envelope.type, written.event_type);
  EXPECT_EQ(envelope.aggregate_type, written.aggregate_type);
  EXPECT_EQ(envelope.aggregate_id, written.aggregate_id);
  EXPECT_TRUE(is_iso_utc(envelope.occurred_at)) << envelope.occurred_at;
  EXPECT_EQ(envelope.payload, json::parse(written.payload.value()));
  EXPECT_EQ(envelope.headers, written.headers ? std::optional(json::parse(*written.headers)) : std::nullopt);
  const auto raw = json::parse(record.value);
  EXPECT_TRUE(raw.at("op").is_null() && raw.at("before").is_null() && raw.at("after").is_null()) << record.value;
  expect_streamed_source(envelope.source, current_database(harness));
  expect_event_headers(record, envelope);
  return envelope;
}

TEST(ProducerEvents, outbox_rows_are_published_to_the_aggregate_topic_keyed_by_aggregate_id_with_envelope_and_headers) {
  ASSERT_TRUE(require_producer_stack());
  ProducerHarness harness("pev_outbox", std::string(kNoSnapshot));
  ASSERT_TRUE(start_streaming(harness));

  const DomainEvent event{"order", "o-1", "OrderPlaced", R"({"total": 12.5, "lines": [1, 2]})", R"({"trace": "t-1"})"};
  const auto inserted = harness.write_db().exec(
      fmt::format("INSERT INTO public.{} (id, aggregate_type, aggregate_id, event_type, payload, headers, occurred_at) "
                  "VALUES (gen_random_uuid(), $1, $2, $3, $4::jsonb, $5::jsonb, '2026-11-22 12:00:00.123+02') "
                  "RETURNING id, pg_current_xact_id()::text",
                  harness.outbox_table()),
      {event.aggregate_type, event.aggregate_id, event.event_type, event.payload, event.headers});
  const std::string id(inserted.value(0, 0));
  const std::uint64_t txid = std::stoull(std::string(inserted.value(0, 1)));

  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {harness.event_topic("order")}, 1, records));
  ASSERT_EQ(records.size(), 1U);
  const auto envelope = expect_domain_event(harness, records.front(), id, event);
  EXPECT_EQ(envelope.occurred_at, "2026-11-22T10:00:00.123Z");
  EXPECT_EQ(envelope.source.schema, "public");
  EXPECT_EQ(envelope.source.table, harness.outbox_table());
  EXPECT_EQ(envelope.source.txid, txid);
  EXPECT_EQ(envelope.source.seq, 1U);
}

TEST(ProducerEvents, transactional_logical_messages_are_published_like_outbox_rows_and_rolled_back_ones_are_not) {
  ASSERT_TRUE(require_producer_stack());
  ProducerHarness harness("pev_message", std::string(kNoSnapshot));
  ASSERT_TRUE(start_streaming(harness));

  auto& db = harness.write_db();
  const DomainEvent event{"conversation", "c-42", "MessageSent", R"({"text": "hi", "n": 1})"};
  {
    pg::Transaction rolled_back(db);
    (void)emit_event_message(harness, db, new_uuid(db), event);
    rolled_back.rollback();
  }
  const std::string id = new_uuid(db);
  std::string message_lsn;
  {
    pg::Transaction committed(db);
    message_lsn = emit_event_message(harness, db, id, event);
    committed.commit();
  }

  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {harness.event_topic("conversation")}, 1, records));
  ASSERT_EQ(records.size(), 1U) << "only the committed message is published";
  const auto envelope = expect_domain_event(harness, records.front(), id, event);
  EXPECT_EQ(envelope.source.lsn, Lsn::from_string(message_lsn));
}

TEST(ProducerEvents, row_changes_of_captured_tables_map_every_type_and_carry_op_before_and_after) {
  ASSERT_TRUE(require_producer_stack());
  pg::PgConnection db(stack_env().write_pg_dsn);
  const auto name = unique_name("pev_rows");
  const ScratchTable types(db, name + "_types",
                           "id bigint PRIMARY KEY, c_int2 int2, c_int4 int4, c_int8 int8, c_numeric numeric, "
                           "c_float8 float8, c_bool bool, c_json json, c_jsonb jsonb, c_timestamptz timestamptz, "
                           "c_timestamp timestamp, c_date date, c_bytea bytea, c_int4s int4[], c_texts text[], "
                           "c_uuid uuid, c_text text");
  const ScratchTable full(db, name + "_full", "id int PRIMARY KEY, label text, amount numeric");
  db.exec(fmt::format("ALTER TABLE public.{} REPLICA IDENTITY FULL", full.name()));
  ProducerHarness harness("pev_rows", std::string(kNoSnapshot) + capture_yaml({&types, &full}));
  ASSERT_TRUE(start_streaming(harness));

  db.exec(fmt::format(
      "INSERT INTO public.{} VALUES (1, 32767, -2147483648, 9223372036854775807, "
      "12345678901234567890.123456789012345678, 1.5, true, '{{\"a\": [1, 2]}}', '{{\"k\": \"v\", \"n\": 1}}', "
      "'2026-11-22 12:00:00.25+02', '2026-01-02 03:04:05', '2026-11-22', '\\x00ff10', '{{1,NULL,3}}', "
      "'{{\"a b\",\"c,d\",NULL}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'héllo \"quoted\"')",
      types.name()));
  db.exec(fmt::format("INSERT INTO public.{} (id) VALUES (2)", types.name()));
  db.exec(fmt::format("UPDATE public.{} SET c_text = 'changed' WHERE id = 1", types.name()));
  db.exec(fmt::format("DELETE FROM public.{} WHERE id = 2", types.name()));
  db.exec(fmt::format("INSERT INTO public.{} VALUES (7, 'old', 1.10)", full.name()));
  db.exec(fmt::format("UPDATE public.{} SET label = 'new' WHERE id = 7", full.name()));
  db.exec(fmt::format("DELETE FROM public.{} WHERE id = 7", full.name()));
  db.exec(fmt::format("TRUNCATE public.{}, public.{}", types.name(), full.name()));

  const auto types_topic = harness.row_topic("public", types.name());
  const auto full_topic = harness.row_topic("public", full.name());
  // 7 row changes, and the truncate once on each of the 3 partitions of both topics.
  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {types_topic, full_topic}, 13, records));
  ASSERT_EQ(records.size(), 13U);
  const auto type_changes = decoded(on_topic(records, types_topic));
  const auto full_changes = decoded(on_topic(records, full_topic));
  ASSERT_EQ(type_changes.size(), 7U);
  ASSERT_EQ(full_changes.size(), 6U);
  for (const auto& topic : {types_topic, full_topic}) {
    std::set<std::int32_t> truncated_partitions;
    std::set<std::string> truncate_ids;
    for (const auto& [record, envelope] : decoded(on_topic(records, topic))) {
      if (envelope.op != Op::truncate) continue;
      truncated_partitions.insert(record.partition);
      truncate_ids.insert(envelope.id);
    }
    EXPECT_EQ(truncated_partitions, (std::set<std::int32_t>{0, 1, 2})) << topic << ": a copy on every partition";
    EXPECT_EQ(truncate_ids.size(), 1U) << topic << ": the copies are one event";
  }
  const auto database = current_database(harness);
  for (const auto& [record, envelope] : type_changes) {
    expect_event_headers(record, envelope);
    expect_streamed_source(envelope.source, database);
    EXPECT_EQ(envelope.source.table, types.name());
  }

  const auto* insert = find_change(type_changes, Op::create, R"({"id":1})");
  ASSERT_NE(insert, nullptr);
  EXPECT_EQ(insert->second.before, std::nullopt);
  const json& after = insert->second.after.value();
  EXPECT_EQ(after.at("id"), 1);
  EXPECT_EQ(after.at("c_int2"), 32767);
  EXPECT_EQ(after.at("c_int4"), -2147483648LL);
  EXPECT_EQ(after.at("c_int8"), 9223372036854775807LL);
  EXPECT_EQ(after.at("c_numeric"), "12345678901234567890.123456789012345678") << "numeric is a string";
  EXPECT_EQ(after.at("c_float8"), 1.5);
  EXPECT_EQ(after.at("c_bool"), true);
  EXPECT_EQ(after.at("c_json"), json::parse(R"({"a": [1, 2]})")) << "json is embedded, not escaped";
  EXPECT_EQ(after.at("c_jsonb"), json::parse(R"({"k": "v", "n": 1})")) << "jsonb is embedded, not escaped";
  EXPECT_EQ(after.at("c_timestamptz"), "2026-11-22T10:00:00.25Z");
  EXPECT_EQ(after.at("c_timestamp"), "2026-01-02T03:04:05") << "ISO; no zone, as the type has none";
  EXPECT_EQ(after.at("c_date"), "2026-11-22");
  EXPECT_EQ(after.at("c_bytea"), "AP8Q") << "bytea is base64";
  EXPECT_EQ(after.at("c_int4s"), json::parse("[1, null, 3]"));
  EXPECT_EQ(after.at("c_texts"), json::parse(R"(["a b", "c,d", null])"));
  EXPECT_EQ(after.at("c_uuid"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(after.at("c_text"), "héllo \"quoted\"");

  const auto* nulls = find_change(type_changes, Op::create, R"({"id":2})");
  ASSERT_NE(nulls, nullptr);
  for (const auto& [column, value] : nulls->second.after.value().items()) {
    if (column != "id") {
      EXPECT_TRUE(value.is_null()) << column << " = " << value;
    }
  }
  EXPECT_EQ(nulls->second.after.value().size(), 17U) << "every column is present, NULLs as null";

  const auto* update = find_change(type_changes, Op::update, R"({"id":1})");
  ASSERT_NE(update, nullptr);
  EXPECT_EQ(update->second.before, std::nullopt) << "default replica identity: the old row is not known";
  EXPECT_EQ(update->second.after.value().at("c_text"), "changed");
  EXPECT_EQ(update->second.after.value().at("c_jsonb"), after.at("c_jsonb"));

  const auto* remove = find_change(type_changes, Op::remove, R"({"id":2})");
  ASSERT_NE(remove, nullptr);
  EXPECT_EQ(remove->second.before, json::parse(R"({"id": 2})")) << "a delete carries its key in before";
  EXPECT_EQ(remove->second.after, std::nullopt);

  EXPECT_NE(find_change(type_changes, Op::truncate, "{}"), nullptr);
  EXPECT_NE(find_change(full_changes, Op::truncate, "{}"), nullptr);

  const auto* full_update = find_change(full_changes, Op::update, R"({"id":7})");
  ASSERT_NE(full_update, nullptr);
  EXPECT_EQ(full_update->second.before, json::parse(R"({"id": 7, "label": "old", "amount": "1.10"})"))
      << "REPLICA IDENTITY FULL sends the old row";
  EXPECT_EQ(full_update->second.after, json::parse(R"({"id": 7, "label": "new", "amount": "1.10"})"));
  const auto* full_delete = find_change(full_changes, Op::remove, R"({"id":7})");
  ASSERT_NE(full_delete, nullptr);
  EXPECT_EQ(full_delete->second.before, json::parse(R"({"id": 7, "label": "new", "amount": "1.10"})"));
}

TEST(ProducerEvents, an_unchanged_toasted_column_is_listed_in_unchanged_toast_and_left_out_of_after) {
  ASSERT_TRUE(require_producer_stack());
  pg::PgConnection db(stack_env().write_pg_dsn);
  const ScratchTable table(db, unique_name("pev_toast"), "id int PRIMARY KEY, big text, small int");
  ProducerHarness harness("pev_toast", std::string(kNoSnapshot) + capture_yaml({&table}));
  ASSERT_TRUE(start_streaming(harness));

  // A chain of md5 digests does not compress, so the 12.8 kB value is stored out of line (TOASTed).
  const std::string big(
      db.exec(fmt::format("INSERT INTO public.{} SELECT 1, string_agg(md5(i::text || random()::text), ''), 1 "
                          "FROM generate_series(1, 400) AS i RETURNING big",
                          table.name()))
          .value(0, 0));
  ASSERT_EQ(big.size(), 12'800U);
  ASSERT_GT(std::stoi(std::string(
                db.exec(fmt::format("SELECT pg_column_size(big) FROM public.{}", table.name())).value(0, 0))),
            8'000)
      << "the value must not be compressed below the TOAST threshold";
  db.exec(fmt::format("UPDATE public.{} SET small = 2 WHERE id = 1", table.name()));

  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {harness.row_topic("public", table.name())}, 2, records));
  const auto changes = decoded(records);
  ASSERT_EQ(changes.size(), 2U);
  const auto& insert = changes[0].second;
  const auto& update = changes[1].second;
  ASSERT_EQ(insert.op, Op::create);
  EXPECT_EQ(insert.after.value().at("big"), big);
  EXPECT_TRUE(insert.source.unchanged_toast.empty());
  ASSERT_EQ(update.op, Op::update);
  EXPECT_EQ(update.after.value(), json::parse(R"({"id": 1, "small": 2})"))
      << "the unchanged TOASTed column is left out, never replaced by a placeholder";
  EXPECT_EQ(update.source.unchanged_toast, std::vector<std::string>{"big"});
}

TEST(ProducerEvents, inserts_into_a_table_without_a_primary_key_are_published_with_a_null_key) {
  ASSERT_TRUE(require_producer_stack());
  pg::PgConnection db(stack_env().write_pg_dsn);
  const ScratchTable table(db, unique_name("pev_nokey"), "label text, n int");
  ProducerHarness harness("pev_nokey", std::string(kNoSnapshot) + capture_yaml({&table}));
  ASSERT_TRUE(start_streaming(harness));

  db.exec(fmt::format("INSERT INTO public.{} VALUES ('a', 1), ('a', 1)", table.name()));

  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {harness.row_topic("public", table.name())}, 2, records));
  ASSERT_EQ(records.size(), 2U);
  for (const auto& [record, envelope] : decoded(records)) {
    EXPECT_EQ(record.key, std::nullopt);
    EXPECT_EQ(envelope.op, Op::create);
    EXPECT_EQ(envelope.after, json::parse(R"({"label": "a", "n": 1})"));
  }
}

TEST(ProducerEvents, the_initial_snapshot_publishes_existing_rows_as_reads_and_later_inserts_as_creates_exactly_once) {
  ASSERT_TRUE(require_producer_stack());
  pg::PgConnection db(stack_env().write_pg_dsn);
  const ScratchTable table(db, unique_name("pev_snap"), "id int PRIMARY KEY");
  constexpr int kBefore = 300;
  db.exec(fmt::format("INSERT INTO public.{} SELECT generate_series(1, {})", table.name(), kBefore));
  ProducerHarness harness("pev_snap", capture_yaml({&table}));

  // Rows keep arriving while the slot and its snapshot are created: each must be published once,
  // as a snapshot read or as a streamed create, whichever side of the snapshot it committed on.
  std::atomic<int> last_inserted{kBefore};
  std::atomic<bool> stop_writing{false};
  std::thread writer([&] {
    pg::PgConnection writer_db(stack_env().write_pg_dsn);
    while (!stop_writing) {
      writer_db.exec(fmt::format("INSERT INTO public.{} VALUES ({})", table.name(), last_inserted + 1));
      ++last_inserted;
    }
  });
  harness.start();
  const auto ready = harness.wait_ready();
  const int last_before_ready = last_inserted;
  const auto streamed_enough =
      poll_until([&] { return last_inserted >= last_before_ready + 100; }, 30s, "100 inserts after ready");
  stop_writing = true;
  writer.join();
  ASSERT_TRUE(ready);
  ASSERT_TRUE(streamed_enough);

  const auto total = static_cast<std::size_t>(last_inserted.load());
  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {harness.row_topic("public", table.name())}, total, records, 120s));
  std::map<int, int> seen;
  for (const auto& [record, envelope] : decoded(records)) {
    const int id = envelope.after.value().at("id").get<int>();
    ++seen[id];
    if (envelope.op == Op::read) {
      EXPECT_TRUE(envelope.source.snapshot) << "id " << id;
      EXPECT_LE(id, last_before_ready) << "a row inserted after the producer was ready came from the snapshot";
    } else {
      EXPECT_EQ(envelope.op, Op::create) << "id " << id;
      EXPECT_FALSE(envelope.source.snapshot) << "id " << id;
      EXPECT_GT(id, kBefore) << "a row present before the first start was streamed as a create";
    }
  }
  int missing = 0;
  int doubled = 0;
  for (int id = 1; id <= static_cast<int>(total); ++id) {
    if (seen[id] == 0) ++missing;
    if (seen[id] > 1) ++doubled;
  }
  EXPECT_EQ(missing, 0) << "of " << total << " rows";
  EXPECT_EQ(doubled, 0) << "of " << total << " rows";
  EXPECT_EQ(records.size(), total);
}

TEST(ProducerEvents, events_of_one_key_arrive_in_commit_order) {
  ASSERT_TRUE(require_producer_stack());
  pg::PgConnection db(stack_env().write_pg_dsn);
  const ScratchTable counters(db, unique_name("pev_order"), "id int PRIMARY KEY, n int");
  ProducerHarness harness("pev_order", std::string(kNoSnapshot) + capture_yaml({&counters}));
  ASSERT_TRUE(start_streaming(harness));

  constexpr int kKeys = 6;
  constexpr int kRounds = 40;
  db.exec(fmt::format("INSERT INTO public.{} SELECT k, 0 FROM generate_series(1, {}) AS k", counters.name(), kKeys));
  for (int round = 1; round <= kRounds; ++round) {
    // Each transaction touches every key, in a different order, by both a row change and an event.
    pg::Transaction txn(db);
    txn.exec(fmt::format("UPDATE public.{} SET n = $1::int WHERE id = (($1::int + id) % {}) + 1", counters.name(), kKeys),
             {std::to_string(round)});
    txn.exec(fmt::format("UPDATE public.{} SET n = $1::int WHERE n <> $1::int", counters.name()),
             {std::to_string(round)});
    txn.exec(fmt::format("INSERT INTO public.{} (id, aggregate_type, aggregate_id, event_type, payload) "
                         "SELECT gen_random_uuid(), 'counter', 'k' || k, 'Counted', json_build_object('n', $1::int) "
                         "FROM generate_series(1, {}) AS k ORDER BY random()",
                         harness.outbox_table(), kKeys),
             {std::to_string(round)});
    txn.commit();
  }

  const auto row_topic = harness.row_topic("public", counters.name());
  const auto event_topic = harness.event_topic("counter");
  const std::size_t expected = kKeys + 2 * kKeys * kRounds;  // inserts, updates, events
  std::vector<ConsumedRecord> records;
  ASSERT_TRUE(await_records(harness, {row_topic, event_topic}, expected, records));
  EXPECT_EQ(records.size(), expected);
  // Per (topic, key): the partition it went to and the sequence of n values in offset order.
  std::map<std::pair<std::string, std::string>, std::pair<std::set<std::int32_t>, std::vector<int>>> per_key;
  for (const auto& [record, envelope] : decoded(records)) {
    const int n = envelope.op ? envelope.after.value().at("n").get<int>() : envelope.payload.at("n").get<int>();
    auto& entry = per_key[{record.topic, record.key.value_or("")}];
    entry.first.insert(record.partition);
    entry.second.push_back(n);
  }
  ASSERT_EQ(per_key.size(), static_cast<std::size_t>(2 * kKeys));
  for (const auto& [key, entry] : per_key) {
    EXPECT_EQ(entry.first.size(), 1U) << key.first << " " << key.second << " is spread over partitions";
    std::vector<int> in_commit_order(entry.second.size());
    const int first = key.first == row_topic ? 0 : 1;  // the row's insert carried n = 0
    for (std::size_t i = 0; i < in_commit_order.size(); ++i) in_commit_order[i] = first + static_cast<int>(i);
    EXPECT_EQ(entry.second, in_commit_order) << key.first << " " << key.second;
  }
}

TEST(ProducerEvents, sigterm_exits_zero_and_a_restart_publishes_later_changes_without_republishing_earlier_ones) {
  ASSERT_TRUE(require_producer_stack());
  ProducerHarness harness("pev_restart", std::string(kNoSnapshot));
  ASSERT_TRUE(start_streaming(harness));

  std::vector<std::string> written;
  const auto write_events = [&](std::string_view phase) {
    for (int i = 0; i < 5; ++i) {
      written.push_back(insert_outbox_row(
          harness, {"account", fmt::format("a-{}", i), std::string(phase), fmt::format(R"({{"i": {}}})", i)}));
    }
  };
  const auto topic = harness.event_topic("account");
  std::vector<ConsumedRecord> records;
  write_events("BeforeStop");
  ASSERT_TRUE(await_records(harness, {topic}, 5, records));

  EXPECT_EQ(harness.stop(), std::optional<int>(0)) << harness.process().log_tail();
  write_events("WhileStopped");
  ASSERT_TRUE(start_streaming(harness));
  write_events("AfterRestart");

  ASSERT_TRUE(await_records(harness, {topic}, 15, records));
  std::multiset<std::string> published;
  for (const auto& record : records) published.insert(decode_envelope(record.value).id);
  EXPECT_EQ(published, std::multiset<std::string>(written.begin(), written.end()))
      << "every event once: none lost across the restart, none re-published";
  EXPECT_EQ(harness.stop(), std::optional<int>(0));
}

}  // namespace
}  // namespace syncline::test
