// syncline-es-projector against the real search engine: documents (mirror and mapped), replays,
// an engine outage, repeated SIGKILLs and mapping violations.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <map>
#include <random>
#include <set>

#include "common/http_client.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

void stack(const std::string& arguments) {
  const std::string command = std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack " + arguments + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "scripts/stack " << arguments << " failed";
}

class EsProjector : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_search());
  }
  void TearDown() override {
    for (const auto& index : indices_) search_.del("/" + index + "_v1");
  }

  // An index name (the alias) the test owns; its physical index is deleted at the end.
  std::string index(std::string_view name) {
    indices_.push_back(unique_name(name));
    return indices_.back();
  }
  void refresh(const std::string& alias) { search_.post("/" + alias + "/_refresh", ""); }
  std::optional<json> document(const std::string& alias, const std::string& id) {
    const auto response = search_.get("/" + alias + "/_doc/" + id);
    if (response.status != 200) return std::nullopt;
    return json::parse(response.body)["_source"];
  }
  std::int64_t count(const std::string& alias) {
    refresh(alias);
    const auto response = search_.get("/" + alias + "/_count");
    return response.status == 200 ? json::parse(response.body)["count"].get<std::int64_t>() : -1;
  }

  http::HttpClient search_{http::ClientOptions{.base_url = stack_env().search_url}};
  std::vector<std::string> indices_;
};

std::string mirror_yaml(const std::string& table, const std::string& alias, std::size_t bulk = 500) {
  return fmt::format("  bulk_max_actions: {}\n  mirror:\n    - table: public.{}\n      index: {}\n", bulk, table, alias);
}

TEST_F(EsProjector, mirror_and_mapped_documents_are_indexed_partially_updated_and_deleted) {
  const auto users = index("users");
  const auto messages = index("messages");
  const std::string table = unique_name("users");
  PgProjectorHarness harness(
      "esp_docs", "",
      mirror_yaml(table, users) + fmt::format(
                                      "  indices:\n    - name: {0}\n      mappings: {{properties: {{body: {{type: text}}, "
                                      "author: {{type: keyword}}}}}}\n"
                                      "  mappings:\n    - index: {0}\n      aggregate_types: [conversation]\n"
                                      "      events:\n"
                                      "        - {{types: MessageSent, id: payload.message_id, fields: {{body: payload.text, "
                                      "author: payload.author, conversation: aggregate_id, note: 'payload.note?'}}}}\n"
                                      "        - {{types: MessageEdited, action: update, id: payload.message_id, "
                                      "fields: {{body: payload.text}}}}\n"
                                      "        - {{types: MessageDeleted, action: delete, id: payload.message_id}}\n",
                                      messages),
      {}, ProjectorKind::es);
  const std::string row_topic = harness.prefix() + ".public." + table;
  const std::string event_topic = harness.event_topic("conversation");
  EventPublisher::create_topics({row_topic, event_topic}, 2);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());

  EventPublisher publisher;
  publisher.begin();
  const auto row = [&](char op, json after, std::uint64_t lsn, std::vector<std::string> toast = {}) {
    const std::string key = json{{"id", after["id"]}}.dump();
    publisher.send(row_topic, key, row_change(table, op, std::move(after), lsn, 0, std::move(toast)).dump(),
                   fmt::format("public.{}.{}", table, op));
  };
  row('c', {{"id", 1}, {"name", "ann"}, {"bio", "long text"}}, 0x100);
  row('c', {{"id", 2}, {"name", "bob"}, {"bio", "b"}}, 0x110);
  row('u', {{"id", 1}, {"name", "anna"}}, 0x120, {"bio"});  // bio unchanged (TOAST): kept
  row('d', {{"id", 2}}, 0x130);
  const auto event = [&](const std::string& type, json payload, std::uint64_t lsn) {
    publisher.send(event_topic, "c-1", domain_event("e" + std::to_string(lsn), type, "conversation", "c-1", payload, lsn, 0).dump(),
                   type);
  };
  event("MessageSent", {{"message_id", "m1"}, {"text", "hello world"}, {"author", "ann"}}, 0x200);
  event("MessageSent", {{"message_id", "m2"}, {"text", "bye"}, {"author", "bob"}, {"note", "n"}}, 0x210);
  event("MessageEdited", {{"message_id", "m1"}, {"text", "hello there"}}, 0x220);
  event("MessageDeleted", {{"message_id", "m2"}}, 0x230);
  publisher.commit();

  ASSERT_TRUE(poll_until([&] { return count(users) == 1 && count(messages) == 1; }, 60s, "1 user and 1 message"))
      << harness.process().log_tail();
  const auto ann = document(users, "1");
  ASSERT_TRUE(ann.has_value());
  EXPECT_EQ((*ann)["name"], "anna");
  EXPECT_EQ((*ann)["bio"], "long text");
  EXPECT_EQ((*ann)["syncline_version"], 0x120);
  EXPECT_FALSE(document(users, "2").has_value());
  ASSERT_TRUE(poll_until([&] { return document(messages, "m1").value_or(json())["body"] == "hello there"; }, 30s,
                         "m1 edited"));
  const auto m1 = *document(messages, "m1");
  EXPECT_EQ(m1["author"], "ann");
  EXPECT_EQ(m1["conversation"], "c-1");
  EXPECT_FALSE(m1.contains("note"));
  EXPECT_FALSE(document(messages, "m2").has_value());
  // The alias points at <name>_v1, created with the configured mapping.
  const auto alias = search_.get("/_alias/" + messages);
  ASSERT_EQ(alias.status, 200) << alias.body;
  EXPECT_TRUE(json::parse(alias.body).contains(messages + "_v1")) << alias.body;
  EXPECT_EQ(harness.stop(), 0);
}

TEST_F(EsProjector, replaying_a_topic_from_offset_zero_leaves_every_document_at_its_newest_version) {
  const auto items = index("items");
  const std::string table = unique_name("items");
  PgProjectorHarness first("esp_replay", "", mirror_yaml(table, items), {}, ProjectorKind::es);
  const std::string topic = first.prefix() + ".public." + table;
  EventPublisher::create_topics({topic}, 3);
  EventPublisher publisher;
  std::map<int, int> newest;
  publisher.begin();
  for (int i = 0; i < 3000; ++i) {
    const int id = i % 100;
    newest[id] = i;
    publisher.send(topic, json{{"id", id}}.dump(),
                   row_change(table, 'u', {{"id", id}, {"n", i}}, 0x1000 + static_cast<std::uint64_t>(i), 0).dump(),
                   fmt::format("public.{}.u", table));
  }
  publisher.commit();
  first.start();
  ASSERT_TRUE(first.wait_ready());
  ASSERT_TRUE(poll_until([&] { return first.caught_up() && count(items) == 100; }, 60s,
                         "the first projector caught up"))
      << first.process().log_tail();
  EXPECT_EQ(first.stop(), 0);

  // A second group reads the same topic from offset 0: every older write is stale.
  PgProjectorHarness replay("esp_replay2", first.prefix(), mirror_yaml(table, items), {}, ProjectorKind::es);
  replay.start();
  ASSERT_TRUE(replay.wait_ready());
  ASSERT_TRUE(poll_until([&] { return replay.caught_up() &&
                                      replay.status()["partitions"].size() == 3; },
                         60s, "the replay caught up"))
      << replay.process().log_tail();
  for (const auto& [id, n] : newest) {
    const auto doc = document(items, std::to_string(id));
    ASSERT_TRUE(doc.has_value()) << id;
    EXPECT_EQ((*doc)["n"], n) << id;
  }
  EXPECT_GT(replay.status()["documents"]["stale"].get<double>(), 2000);
  EXPECT_EQ(replay.stop(), 0);
}

// Keyed updates and deletes over `keys` documents with increasing versions; the expected final
// state is kept for the comparison.
struct MirrorWorkload {
  std::string table;
  std::string topic;
  std::map<int, std::optional<int>> expected;  // id -> n, nullopt when deleted

  void publish(int events, int keys, int per_transaction, std::uint64_t first_lsn) {
    EventPublisher publisher;
    std::mt19937 random(11);
    for (int sent = 0; sent < events;) {
      publisher.begin();
      for (int i = 0; i < per_transaction && sent < events; ++i, ++sent) {
        const int id = static_cast<int>(random() % static_cast<unsigned>(keys));
        const bool remove = random() % 5 == 0;
        const std::uint64_t lsn = first_lsn + static_cast<std::uint64_t>(sent);
        const char op = remove ? 'd' : 'u';
        publisher.send(topic, json{{"id", id}}.dump(),
                       row_change(table, op, remove ? json{{"id", id}} : json{{"id", id}, {"n", sent}}, lsn, 0).dump(),
                       fmt::format("public.{}.{}", table, op));
        expected[id] = remove ? std::nullopt : std::optional<int>(sent);
      }
      publisher.commit();
    }
  }
};

// Every document as the workload left it, and no other document.
::testing::AssertionResult index_equals(const MirrorWorkload& workload,
                                        const std::function<std::optional<json>(const std::string&)>& get,
                                        std::int64_t documents) {
  std::int64_t present = 0;
  int wrong = 0;
  for (const auto& [id, n] : workload.expected) {
    const auto doc = get(std::to_string(id));
    if (n) ++present;
    if (n.has_value() != doc.has_value() || (doc && (*doc)["n"] != *n)) ++wrong;
  }
  if (wrong == 0 && documents == present) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << wrong << " documents differ; " << documents << " in the index, " << present
                                       << " expected";
}

TEST_F(EsProjector, twenty_sigkills_during_a_workload_leave_the_index_equal_to_the_source_state) {
  const auto items = index("crash");
  MirrorWorkload workload{unique_name("crash"), {}, {}};
  PgProjectorHarness harness("esp_kill", "", mirror_yaml(workload.table, items, 200), {}, ProjectorKind::es);
  workload.topic = harness.prefix() + ".public." + workload.table;
  EventPublisher::create_topics({workload.topic}, 3);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  std::atomic<bool> published{false};
  std::thread publisher([&] {
    workload.publish(60'000, 400, 50, 0x10000);
    published = true;
  });
  std::mt19937 random(5);
  int kills = 0;
  while (kills < 20) {
    // Kill after a random amount of progress (once everything is published, at once: the
    // restarts then land on a catching-up or idle projector).
    const auto before = committed_offsets(harness.name(), workload.topic);
    const auto step = static_cast<std::int64_t>(random() % 1000) + 1;
    ASSERT_TRUE(poll_until(
        [&] { return published || committed_offsets(harness.name(), workload.topic) >= before + step; }, 60s,
        "projector progress"))
        << harness.process().log_tail();
    harness.kill();
    ++kills;
    harness.start();
  }
  publisher.join();
  ASSERT_TRUE(harness.wait_ready());
  ASSERT_TRUE(poll_until([&] { return harness.caught_up(); }, 120s, "queue_size 0"))
      << harness.process().log_tail();
  refresh(items);
  const auto result = index_equals(workload, [&](const std::string& id) { return document(items, id); },
                                   count(items));
  std::printf("es-projector crash test: 60000 events over 400 documents, %d SIGKILLs: %s\n", kills,
              result ? "index equals the source state" : result.message());
  EXPECT_TRUE(result);
  EXPECT_EQ(harness.stop(), 0);
}

TEST_F(EsProjector, an_engine_outage_delays_but_loses_nothing_and_dead_letters_nothing) {
  const auto items = index("outage");
  MirrorWorkload workload{unique_name("outage"), {}, {}};
  PgProjectorHarness harness("esp_outage", "", mirror_yaml(workload.table, items, 200), {}, ProjectorKind::es);
  workload.topic = harness.prefix() + ".public." + workload.table;
  EventPublisher::create_topics({workload.topic}, 3);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  workload.publish(5'000, 300, 100, 0x20000);
  ASSERT_TRUE(poll_until([&] { return committed_offsets(harness.name(), workload.topic) > 0; }, 60s, "progress"));
  stack("kill search");
  // While the engine is down more events arrive; the projector waits, not ready, and keeps running.
  workload.publish(20'000, 300, 100, 0x30000);
  ASSERT_TRUE(poll_until([&] { return http_get_status(harness.http_port(), "/readyz") == 503; }, 60s,
                         "/readyz 503 while the engine is down"));
  const long rss_down = harness.peak_rss_kib();
  EXPECT_TRUE(harness.process().running());
  stack("up search");
  ASSERT_TRUE(poll_until([&] { return harness.caught_up(); }, 180s, "queue_size 0"))
      << harness.process().log_tail();
  refresh(items);
  EXPECT_TRUE(index_equals(workload, [&](const std::string& id) { return document(items, id); },
                           count(items)));
  EXPECT_EQ(harness.status()["documents"]["dead_lettered"], 0);
  const long rss = harness.peak_rss_kib();
  std::printf("es-projector outage test: 25000 events, peak RSS %ld MiB while down, %ld MiB overall\n",
              rss_down / 1024, rss / 1024);
  EXPECT_LT(rss, 256 * 1024) << "memory grew while the engine was down";
  EXPECT_EQ(harness.stop(), 0);
}

TEST_F(EsProjector, a_document_violating_the_mapping_is_dead_lettered_with_the_engines_reason) {
  const auto items = index("typed");
  const std::string table = unique_name("typed");
  PgProjectorHarness harness(
      "esp_poison", "",
      mirror_yaml(table, items) + fmt::format("  indices:\n    - name: {}\n      mappings: {{properties: {{n: {{type: long}}}}}}\n", items),
      {}, ProjectorKind::es);
  const std::string topic = harness.prefix() + ".public." + table;
  EventPublisher::create_topics({topic}, 1);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  EventPublisher publisher;
  publisher.begin();
  const auto send = [&](int id, json n, std::uint64_t lsn) {
    publisher.send(topic, json{{"id", id}}.dump(), row_change(table, 'c', {{"id", id}, {"n", n}}, lsn, 0).dump(),
                   fmt::format("public.{}.c", table));
  };
  send(1, 1, 0x100);
  send(2, "not a number", 0x110);
  send(3, 3, 0x120);
  publisher.commit();
  ASSERT_TRUE(poll_until([&] { return count(items) == 2; }, 60s, "documents 1 and 3")) << harness.process().log_tail();
  const auto letters = read_committed_records({harness.dead_letter_topic()}, 1, 60s);
  ASSERT_EQ(letters.size(), 1u);
  std::string reason;
  for (const auto& header : letters[0].headers)
    if (header.key == "syncline-dlq-reason") reason = header.value;
  // document_parsing_exception on Elasticsearch 8, mapper_parsing_exception on OpenSearch.
  EXPECT_NE(reason.find("400 "), std::string::npos) << reason;
  EXPECT_NE(reason.find("parsing_exception"), std::string::npos) << reason;
  EXPECT_NE(reason.find("[n]"), std::string::npos) << reason;
  EXPECT_NE(letters[0].value.find("not a number"), std::string::npos);
  EXPECT_EQ(harness.stop(), 0);
}

// Issue 14, point 2. A truncate comes as one copy per partition, and the copies are consumed in
// any order relative to the other partitions' rows. Partition 0 (its rows, then its copy) is
// applied before partition 1's older rows even arrive; the result must not depend on that, and the
// truncate touches only its own table's documents: another table mirrored into the same index and
// a mapped document there stay.
TEST_F(EsProjector, a_truncate_copy_per_partition_deletes_only_its_tables_older_documents_in_any_order) {
  const auto shared = index("shared");
  const std::string table = unique_name("trunc");
  const std::string other = unique_name("kept");
  PgProjectorHarness harness(
      "esp_trunc", "",
      fmt::format("  bulk_max_actions: 100\n  mirror:\n    - table: public.{0}\n      index: {2}\n"
                  "    - table: public.{1}\n      index: {2}\n"
                  "  mappings:\n    - index: {2}\n      aggregate_types: [conversation]\n      events:\n"
                  "        - {{types: MessageSent, id: payload.message_id, fields: {{body: payload.text}}}}\n",
                  table, other, shared),
      {}, ProjectorKind::es);
  const std::string row_topic = harness.prefix() + ".public." + table;
  const std::string other_topic = harness.prefix() + ".public." + other;
  const std::string event_topic = harness.event_topic("conversation");
  EventPublisher::create_topics({row_topic, other_topic, event_topic}, 2);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());

  EventPublisher publisher;
  const auto row = [&](const std::string& name, const std::string& topic, int partition, int id,
                       std::uint64_t lsn, std::uint64_t seq) {
    publisher.send(topic, partition, json{{"id", id}}.dump(),
                   row_change(name, 'c', {{"id", id}, {"t", name}}, lsn, seq).dump(), fmt::format("public.{}.c", name));
  };
  const auto truncate = [&](int partition) {
    publisher.send(row_topic, partition, "{}", row_change(table, 't', nullptr, 0x500, 5).dump(),
                   fmt::format("public.{}.t", table));
  };
  // Older documents of the other table and of the mapping, in the same index.
  publisher.begin();
  row(other, other_topic, 0, 100, 0x100, 0);
  row(other, other_topic, 1, 101, 0x110, 0);
  publisher.send(event_topic, 0, "c-1",
                 domain_event("e1", "MessageSent", "conversation", "c-1", {{"message_id", "m1"}, {"text", "hi"}}, 0x120, 0)
                     .dump(),
                 "MessageSent");
  publisher.commit();
  ASSERT_TRUE(poll_until([&] { return count(shared) == 3; }, 60s, "the other table's and the mapped documents"))
      << harness.process().log_tail();

  // Partition 0: a row before the truncate, the copy, a row of the same transaction after it.
  publisher.begin();
  row(table, row_topic, 0, 1, 0x200, 0);
  truncate(0);
  row(table, row_topic, 0, 3, 0x500, 6);
  publisher.commit();
  ASSERT_TRUE(poll_until([&] { return document(shared, "3").has_value(); }, 60s, "partition 0 applied"))
      << harness.process().log_tail();

  // Partition 1, consumed after partition 0's copy: older rows (one of the truncate's own
  // transaction, before it), the copy, a newer row.
  publisher.begin();
  row(table, row_topic, 1, 2, 0x300, 0);
  row(table, row_topic, 1, 5, 0x500, 2);
  truncate(1);
  row(table, row_topic, 1, 4, 0x600, 0);
  publisher.commit();
  ASSERT_TRUE(poll_until([&] { return harness.caught_up() && document(shared, "4").has_value(); }, 60s,
                         "partition 1 applied"))
      << harness.process().log_tail();

  std::set<std::string> ids;
  refresh(shared);
  const auto found = search_.post("/" + shared + "/_search", json{{"size", 100}}.dump());
  ASSERT_EQ(found.status, 200) << found.body;
  const json hits = json::parse(found.body)["hits"]["hits"];
  for (const auto& hit : hits) ids.insert(hit["_id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"3", "4", "100", "101", "m1"}));
  const auto three = document(shared, "3");
  ASSERT_TRUE(three.has_value());
  EXPECT_EQ((*three)["syncline_table"], "public." + table);
  EXPECT_EQ((*three)["syncline_seq"], 6);
  EXPECT_EQ(harness.stop(), 0);
}

// Issue 14, point 7. An index behind an alias that existed before the projector keeps the engine's
// 60 s gc_deletes; the projector sets it to delete_retention_ms (default 24 h), as on the indices it
// creates.
TEST_F(EsProjector, delete_retention_becomes_gc_deletes_on_created_and_pre_existing_indices) {
  const auto existing = index("preexisting");
  const auto created = index("created");
  const auto made = search_.put("/" + existing + "_v1", json{{"aliases", {{existing, json::object()}}}}.dump());
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string table = unique_name("gc");
  const std::string table2 = unique_name("gc2");
  PgProjectorHarness harness("esp_gc", "",
                             fmt::format("  mirror:\n    - table: public.{}\n      index: {}\n"
                                         "    - table: public.{}\n      index: {}\n",
                                         table, existing, table2, created),
                             {}, ProjectorKind::es);
  EventPublisher::create_topics({harness.prefix() + ".public." + table, harness.prefix() + ".public." + table2}, 1);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  const auto gc_deletes = [&](const std::string& physical) {
    const auto response = search_.get("/" + physical + "/_settings/index.gc_deletes");
    if (response.status != 200) return std::string("status ") + std::to_string(response.status);
    const json body = json::parse(response.body);
    const json* value = nullptr;
    if (body.contains(physical) && body[physical].contains("settings") && body[physical]["settings"].contains("index"))
      value = &body[physical]["settings"]["index"]["gc_deletes"];
    return value != nullptr && value->is_string() ? value->get<std::string>() : std::string("unset");
  };
  ASSERT_TRUE(poll_until([&] { return gc_deletes(existing + "_v1") == "86400000ms"; }, 30s,
                         "gc_deletes on the pre-existing index"))
      << gc_deletes(existing + "_v1") << "\n" << harness.process().log_tail();
  EXPECT_EQ(gc_deletes(created + "_v1"), "86400000ms");
  EXPECT_NE(harness.process().log_tail().find(existing + "_v1"), std::string::npos);
  EXPECT_EQ(harness.stop(), 0);
}

// Issue 14, point 8. A partial update older than the stored document cannot be ordered against it
// when another Kafka key (another partition's order) wrote the document: it is dead-lettered with
// a reason naming the document, both keys and the fix. With the same key, it is a replay: stale.
TEST_F(EsProjector, an_older_partial_update_from_another_key_is_dead_lettered_not_dropped) {
  const auto messages = index("partial");
  PgProjectorHarness harness(
      "esp_partial", "",
      fmt::format("  mappings:\n    - index: {}\n      aggregate_types: [conversation]\n      events:\n"
                  "        - {{types: MessageSent, id: payload.message_id, fields: {{body: payload.text}}}}\n"
                  "        - {{types: MessageTagged, action: update, id: payload.message_id, fields: {{tag: payload.tag}}}}\n",
                  messages),
      {}, ProjectorKind::es);
  const std::string topic = harness.event_topic("conversation");
  EventPublisher::create_topics({topic}, 2);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  EventPublisher publisher;
  const auto event = [&](const std::string& key, const std::string& type, json payload, std::uint64_t lsn) {
    publisher.send(topic, key == "c-1" ? 0 : 1, key,
                   domain_event("e" + std::to_string(lsn), type, "conversation", key, std::move(payload), lsn, 0).dump(),
                   type);
  };
  publisher.begin();
  event("c-1", "MessageSent", {{"message_id", "m1"}, {"text", "hello"}}, 0x300);
  publisher.commit();
  ASSERT_TRUE(poll_until([&] { return document(messages, "m1").has_value(); }, 60s, "m1 indexed"))
      << harness.process().log_tail();
  EXPECT_EQ((*document(messages, "m1"))["syncline_key"], "c-1");
  publisher.begin();
  event("c-2", "MessageTagged", {{"message_id", "m1"}, {"tag", "red"}}, 0x200);   // other key, older
  event("c-1", "MessageTagged", {{"message_id", "m1"}, {"tag", "blue"}}, 0x250);  // same key, older: a replay
  publisher.commit();
  const auto letters = read_committed_records({harness.dead_letter_topic()}, 1, 30s);
  ASSERT_EQ(letters.size(), 1u) << "the older update from another key was dropped silently\n"
                                << harness.process().log_tail();
  std::string reason;
  for (const auto& header : letters[0].headers)
    if (header.key == "syncline-dlq-reason") reason = header.value;
  EXPECT_NE(reason.find("m1"), std::string::npos) << reason;
  EXPECT_NE(reason.find("c-1"), std::string::npos) << reason;
  EXPECT_NE(reason.find("c-2"), std::string::npos) << reason;
  EXPECT_NE(reason.find("aggregate"), std::string::npos) << reason;
  EXPECT_NE(letters[0].value.find("red"), std::string::npos);
  ASSERT_TRUE(poll_until([&] { return harness.caught_up(); }, 30s, "caught up"));
  EXPECT_EQ(harness.status()["documents"]["stale"].get<double>(), 1);
  EXPECT_FALSE(document(messages, "m1")->contains("tag"));
  EXPECT_EQ(harness.stop(), 0);
}

}  // namespace
}  // namespace syncline::test
