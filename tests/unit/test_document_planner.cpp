// Unit tests of the es-projector's DocumentPlanner: routing, versions, mirrored row changes,
// mapped domain events, partial updates against stored documents (a fake DocumentLookup), rejects.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "consumers/es/document_planner.hpp"

namespace syncline::es_projector {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using DocumentKey = std::pair<std::string, std::string>;

constexpr const char* kUsers = "app.public.users";
constexpr const char* kConversations = "app.events.conversation";

// --- Test doubles and builders ---

// Answers from `stored`, records every call, and can be told to fail like an unreachable engine.
class FakeLookup : public DocumentLookup {
 public:
  std::map<DocumentKey, CurrentDocument> stored;
  std::vector<std::vector<DocumentKey>> calls;
  bool fail = false;

  std::map<DocumentKey, std::optional<CurrentDocument>> fetch(
      const std::vector<DocumentKey>& documents) override {
    calls.push_back(documents);
    if (fail) throw std::runtime_error("connection refused");
    std::map<DocumentKey, std::optional<CurrentDocument>> out;
    for (const auto& document : documents) {
      const auto found = stored.find(document);
      out[document] = found == stored.end() ? std::nullopt : std::optional<CurrentDocument>(found->second);
    }
    return out;
  }

  void store(const std::string& index, const std::string& id, json source) {
    const std::int64_t version = source.value(std::string(kVersionField), std::int64_t{0});
    std::optional<std::string> key;
    if (source.contains(std::string(kKeyField))) key = source[std::string(kKeyField)].get<std::string>();
    const bool merged = source.value(std::string(kMergedField), false);
    stored[{index, id}] = CurrentDocument{std::move(source), version, std::move(key), merged};
  }
};

// Owns what Events view, so a test writes records as values.
class Batch {
 public:
  Batch& add(std::string topic, std::optional<std::string> key, std::string type, json value,
             std::int32_t partition = 0) {
    records_.push_back({std::move(topic), std::move(key), std::move(type), std::move(value), partition});
    return *this;
  }

  Plan plan(const DocumentPlanner& planner, DocumentLookup& lookup) {
    events_.clear();
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const Record& record = records_[i];
      events_.push_back(Event{i, record.topic, record.partition, static_cast<std::int64_t>(i),
                              record.key ? std::optional<std::string_view>(*record.key) : std::nullopt,
                              record.type, &record.value});
    }
    std::vector<const Event*> pointers;
    for (const Event& event : events_) pointers.push_back(&event);
    return planner.plan(pointers, lookup);
  }

 private:
  struct Record {
    std::string topic;
    std::optional<std::string> key;
    std::string type;
    json value;
    std::int32_t partition = 0;
  };
  std::deque<Record> records_;
  std::vector<Event> events_;
};

json row_change(char op, json after, const std::string& commit_lsn,
                std::vector<std::string> unchanged_toast = {}, const std::string& table = "users") {
  return {{"id", "0/1:0"},
          {"type", "public." + table + "." + std::string(1, op)},
          {"aggregate_type", "public." + table},
          {"aggregate_id", ""},
          {"occurred_at", "2026-11-22T10:00:00.125Z"},
          {"payload", nullptr},
          {"op", std::string(1, op)},
          {"before", nullptr},
          {"after", std::move(after)},
          {"source",
           {{"db", "write"},
            {"schema", "public"},
            {"table", table},
            {"lsn", commit_lsn},
            {"commit_lsn", commit_lsn},
            {"seq", 0},
            {"txid", 7},
            {"commit_ts", "2026-11-22T10:00:00.125Z"},
            {"snapshot", op == 'r'},
            {"unchanged_toast", std::move(unchanged_toast)}}}};
}

json domain_event(const std::string& type, json payload, const std::string& commit_lsn,
                  const std::string& aggregate_id = "c-42") {
  return {{"id", "evt-1"},
          {"type", type},
          {"aggregate_type", "conversation"},
          {"aggregate_id", aggregate_id},
          {"occurred_at", "2026-11-22T10:00:00.123Z"},
          {"payload", std::move(payload)},
          {"op", nullptr},
          {"before", nullptr},
          {"after", nullptr},
          {"source", {{"schema", "public"}, {"table", "outbox"}, {"commit_lsn", commit_lsn}, {"seq", 1}}}};
}

EsMappingConfig messages_mapping() {
  return {"messages",
          {kConversations},
          {{{"MessageSent"},
            EsAction::index,
            "payload.message_id",
            {{"text", "payload.text"}, {"author", "payload.author?"}, {"sent_at", "occurred_at"}}},
           {{"MessageEdited"},
            EsAction::update,
            "payload.message_id",
            {{"text", "payload.text"}, {"tag", "payload.tag?"}}},
           {{"MessageDeleted"}, EsAction::remove, "payload.message_id", {}}}};
}

EsProjectorConfig config() {
  EsProjectorConfig out;
  out.mirror.push_back({{"public", "users"}, "users"});
  out.mappings.push_back(messages_mapping());
  return out;
}

const BulkAction& action(const Plan& plan, std::size_t step) {
  const auto* found = std::get_if<BulkAction>(&plan.steps.at(step));
  if (found == nullptr) throw std::logic_error("step " + std::to_string(step) + " is not a BulkAction");
  return *found;
}

// The document a step writes, without the bookkeeping fields (bookkeeping() has them).
json document(const Plan& plan, std::size_t step) {
  json source = json::parse(action(plan, step).source);
  for (const auto field : {kTableField, kSeqField, kKeyField, kMergedField}) source.erase(std::string(field));
  return source;
}
json bookkeeping(const Plan& plan, std::size_t step) {
  const json source = json::parse(action(plan, step).source);
  json out = json::object();
  for (const auto field : {kTableField, kSeqField, kKeyField, kMergedField}) {
    if (source.contains(std::string(field))) out[std::string(field)] = source[std::string(field)];
  }
  return out;
}

std::string construction_error(const EsProjectorConfig& config) {
  try {
    const DocumentPlanner planner(config, "app");
    ADD_FAILURE() << "the config was accepted";
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return {};
}

std::string only_rejection(const Plan& plan) {
  EXPECT_EQ(plan.rejected.size(), 1U);
  EXPECT_THAT(plan.steps, IsEmpty());
  return plan.rejected.empty() ? std::string() : plan.rejected.front().second;
}

// --- Construction and routing ---

TEST(DocumentPlannerRouting, lists_the_mirrored_row_change_topics_then_the_mapping_topics_once_each) {
  EsProjectorConfig cfg = config();
  cfg.mirror.push_back({{"sales", "order items"}, "order_items"});
  cfg.mirror.push_back({{"public", "users"}, "people"});  // same topic, second index
  cfg.mappings.push_back({"threads",
                          {kConversations, "app.events.thread"},
                          {{{"ThreadOpened"}, EsAction::index, "id", {{"a", "payload.a"}}}}});
  const DocumentPlanner planner(cfg, "app");
  EXPECT_THAT(planner.topics(),
              ElementsAre(kUsers, "app.sales.order_items", kConversations, "app.events.thread"));
}

TEST(DocumentPlannerRouting, wants_every_type_on_a_mirrored_topic_and_only_mapped_types_on_a_mapping_topic) {
  const DocumentPlanner planner(config(), "app");
  EXPECT_TRUE(planner.wants(kUsers, "public.users.c"));
  EXPECT_TRUE(planner.wants(kUsers, ""));
  EXPECT_TRUE(planner.wants(kConversations, "MessageSent"));
  EXPECT_TRUE(planner.wants(kConversations, "MessageDeleted"));
  EXPECT_FALSE(planner.wants(kConversations, "ConversationClosed"));
  EXPECT_FALSE(planner.wants("app.events.other", "MessageSent"));
}

TEST(DocumentPlannerRouting, cuts_a_mirror_topic_at_kafkas_limit_as_the_producer_does) {
  EsProjectorConfig cfg;
  cfg.mirror.push_back({{"public", std::string(300, 't')}, "long"});
  const DocumentPlanner planner(cfg, "app");
  ASSERT_EQ(planner.topics().size(), 1U);
  EXPECT_EQ(planner.topics()[0].size(), 249U);
  EXPECT_TRUE(planner.topics()[0].starts_with("app.public.ttt"));
}

TEST(DocumentPlannerConfig, refuses_a_bad_id_path_naming_the_mapping_and_types) {
  EsProjectorConfig cfg = config();
  cfg.mappings[0].events[0].id = "payload..message_id";
  const std::string error = construction_error(cfg);
  EXPECT_THAT(error, HasSubstr("mapping 1 (index messages), event 1 (types MessageSent), id"));
  EXPECT_THAT(error, HasSubstr("an empty step"));
}

TEST(DocumentPlannerConfig, refuses_a_field_path_outside_the_envelope) {
  EsProjectorConfig cfg = config();
  cfg.mappings[0].events[1].fields.emplace_back("body", "paylod.text");
  const std::string error = construction_error(cfg);
  EXPECT_THAT(error, HasSubstr("event 2 (types MessageEdited), field body"));
  EXPECT_THAT(error, HasSubstr("the envelope has no field 'paylod'"));
}

TEST(DocumentPlannerConfig, refuses_an_optional_id_and_the_reserved_version_field) {
  EsProjectorConfig cfg = config();
  cfg.mappings[0].events[0].id = "payload.message_id?";
  EXPECT_THAT(construction_error(cfg), HasSubstr("a document id cannot be optional"));
  cfg = config();
  cfg.mappings[0].events[0].fields.emplace_back(std::string(kVersionField), "payload.v");
  EXPECT_THAT(construction_error(cfg), HasSubstr("reserved"));
}

TEST(DocumentPlannerConfig, refuses_a_type_mapped_twice_in_one_mapping) {
  EsProjectorConfig cfg = config();
  cfg.mappings[0].events[1].types.push_back("MessageSent");
  EXPECT_THAT(construction_error(cfg), HasSubstr("type MessageSent is mapped twice"));
}

TEST(DocumentPlannerConfig, refuses_writes_without_fields_and_deletes_with_fields) {
  EsProjectorConfig cfg = config();
  cfg.mappings[0].events[1].fields.clear();
  EXPECT_THAT(construction_error(cfg), HasSubstr("(types MessageEdited): no fields to write"));
  cfg = config();
  cfg.mappings[0].events[2].fields.emplace_back("text", "payload.text");
  EXPECT_THAT(construction_error(cfg), HasSubstr("(types MessageDeleted): a delete writes no fields"));
}

TEST(DocumentPlannerConfig, refuses_mappings_without_index_topics_or_types_and_mirrors_without_index) {
  EsProjectorConfig cfg = config();
  cfg.mappings[0].topics.clear();
  EXPECT_THAT(construction_error(cfg), HasSubstr("mapping 1 (index messages): no topics"));
  cfg = config();
  cfg.mappings[0].events[0].types.clear();
  EXPECT_THAT(construction_error(cfg), HasSubstr("no event types"));
  cfg = config();
  cfg.mirror[0].index.clear();
  EXPECT_THAT(construction_error(cfg), HasSubstr("mirror of public.users: no index"));
}

TEST(DocumentPlannerConfig, allows_a_type_in_several_mappings) {
  EsProjectorConfig cfg = config();
  cfg.mappings.push_back({"conversations",
                          {kConversations},
                          {{{"MessageSent"}, EsAction::update, "aggregate_id", {{"last", "payload.text"}}}}});
  EXPECT_NO_THROW(DocumentPlanner(cfg, "app"));
}

// --- Versions ---

TEST(DocumentPlannerVersion, is_the_source_version_of_epoch_and_commit_lsn) {
  EXPECT_EQ(event_version(row_change('c', json::object(), "0/16B3800")), 0x16B3800);
  EXPECT_EQ(event_version(row_change('c', json::object(), "1/0")), std::int64_t{1} << 32);
  json epoch = row_change('c', json::object(), "0/16B3800");
  epoch["source"]["epoch"] = 127U;  // parsed JSON holds non-negative integers as unsigned
  EXPECT_EQ(event_version(epoch), (std::int64_t{127} << 56) | 0x16B3800);
  EXPECT_EQ(event_version(row_change('c', json::object(), "FFFFFF/FFFFFFFF")), (std::int64_t{1} << 56) - 1);
}

TEST(DocumentPlannerVersion, refuses_a_missing_malformed_zero_or_too_large_commit_lsn) {
  json event = row_change('c', json::object(), "0/1");
  event["source"].erase("commit_lsn");
  EXPECT_THROW(event_version(event), std::invalid_argument);
  EXPECT_THROW(event_version(json::object()), std::invalid_argument);
  EXPECT_THROW(event_version(row_change('c', json::object(), "garbage")), std::invalid_argument);
  EXPECT_THROW(event_version(row_change('c', json::object(), "0/0")), std::invalid_argument);
  EXPECT_THROW(event_version(row_change('c', json::object(), "1000000/0")), std::invalid_argument);
}

TEST(DocumentPlannerVersion, rejects_an_event_without_a_commit_lsn_saying_so) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json event = domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hi"}}, "0/1");
  event["source"]["commit_lsn"] = "not-an-lsn";
  const Plan plan = Batch().add(kConversations, "c-42", "MessageSent", event).plan(planner, lookup);
  EXPECT_THAT(only_rejection(plan), HasSubstr("source.commit_lsn 'not-an-lsn' is not an LSN"));
}

// --- Mirrors ---

TEST(DocumentPlannerMirror, indexes_inserts_snapshot_reads_and_updates_as_the_row_with_its_version) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kUsers, R"({"id":1})", "public.users.c",
                             row_change('c', {{"id", 1}, {"name", "ann"}}, "0/100"))
                        .add(kUsers, R"({"id":2})", "public.users.r",
                             row_change('r', {{"id", 2}, {"name", "bob"}}, "0/200"))
                        .add(kUsers, R"({"id":1})", "public.users.u",
                             row_change('u', {{"id", 1}, {"name", "amy"}}, "0/300"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 3U);
  EXPECT_THAT(plan.rejected, IsEmpty());
  EXPECT_THAT(plan.skipped, IsEmpty());
  EXPECT_THAT(plan.stale, IsEmpty());
  EXPECT_EQ(action(plan, 0).kind, BulkAction::Kind::index);
  EXPECT_EQ(action(plan, 0).index, "users");
  EXPECT_EQ(action(plan, 0).id, "1");
  EXPECT_EQ(action(plan, 0).version, 0x100);
  EXPECT_EQ(action(plan, 0).event, 0U);
  EXPECT_EQ(document(plan, 0), json({{"id", 1}, {"name", "ann"}, {"syncline_version", 0x100}}));
  EXPECT_EQ(action(plan, 1).id, "2");
  EXPECT_EQ(action(plan, 2).id, "1");
  EXPECT_EQ(action(plan, 2).event, 2U);
  EXPECT_EQ(document(plan, 2), json({{"id", 1}, {"name", "amy"}, {"syncline_version", 0x300}}));
  EXPECT_THAT(lookup.calls, IsEmpty());  // whole rows need nothing stored
}

TEST(DocumentPlannerMirror, serialises_documents_compactly_and_without_the_envelope) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('c', {{"id", 1}, {"name", "ann"}}, "0/100"))
          .plan(planner, lookup);
  EXPECT_EQ(action(plan, 0).source,
            R"({"id":1,"name":"ann","syncline_seq":0,"syncline_table":"public.users","syncline_version":256})");
}

TEST(DocumentPlannerMirror, takes_a_string_key_as_it_is) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kUsers, R"({"id":"u-1"})", "", row_change('c', {{"id", "u-1"}}, "0/100"))
                        .add(kUsers, R"({"id":"12345678901234567890"})", "",
                             row_change('c', {{"id", "12345678901234567890"}}, "0/100"))
                        .plan(planner, lookup);
  EXPECT_EQ(action(plan, 0).id, "u-1");
  EXPECT_EQ(action(plan, 1).id, "12345678901234567890");
}

TEST(DocumentPlannerMirror, uses_the_canonical_json_of_a_multi_column_key_as_id) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kUsers, R"({"tenant":"t1","id":7})", "",
                             row_change('c', {{"tenant", "t1"}, {"id", 7}, {"name", "x"}}, "0/100"))
                        .plan(planner, lookup);
  EXPECT_EQ(action(plan, 0).id, R"({"id":7,"tenant":"t1"})");
}

TEST(DocumentPlannerMirror, deletes_the_document_of_a_deleted_row_with_its_version) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json event = row_change('d', nullptr, "0/500");
  event["before"] = {{"id", 1}};
  const Plan plan = Batch().add(kUsers, R"({"id":1})", "public.users.d", event).plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).kind, BulkAction::Kind::remove);
  EXPECT_EQ(action(plan, 0).id, "1");
  EXPECT_EQ(action(plan, 0).version, 0x500);
  EXPECT_EQ(action(plan, 0).source, "");
}

TEST(DocumentPlannerMirror, turns_a_truncate_into_a_delete_of_everything_older) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch().add(kUsers, "{}", "public.users.t", row_change('t', nullptr, "0/900")).plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  const auto* truncate = std::get_if<DeleteOlder>(&plan.steps[0]);
  ASSERT_NE(truncate, nullptr);
  EXPECT_EQ(truncate->index, "users");
  EXPECT_EQ(truncate->version, 0x900);
  EXPECT_EQ(truncate->event, 0U);
}

TEST(DocumentPlannerMirror, writes_a_table_mirrored_into_two_indices_to_both) {
  EsProjectorConfig cfg = config();
  cfg.mirror.push_back({{"public", "users"}, "people"});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  const Plan plan =
      Batch().add(kUsers, R"({"id":1})", "", row_change('c', {{"id", 1}}, "0/100")).plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(action(plan, 0).index, "users");
  EXPECT_EQ(action(plan, 1).index, "people");
}

TEST(DocumentPlannerMirror, rejects_a_row_of_a_table_without_a_primary_key) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch().add(kUsers, std::nullopt, "", row_change('c', {{"name", "x"}}, "0/100")).plan(planner, lookup);
  const std::string reason = only_rejection(plan);
  EXPECT_THAT(reason, HasSubstr("mirror of public.users (index users)"));
  EXPECT_THAT(reason, HasSubstr("a mirror needs a primary key"));
}

TEST(DocumentPlannerMirror, rejects_a_key_that_is_not_a_json_object) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  EXPECT_THAT(
      only_rejection(
          Batch().add(kUsers, "c-42", "", row_change('c', {{"id", 1}}, "0/100")).plan(planner, lookup)),
      HasSubstr("is not a JSON object of primary-key columns"));
  EXPECT_THAT(only_rejection(
                  Batch().add(kUsers, "{}", "", row_change('c', {{"id", 1}}, "0/100")).plan(planner, lookup)),
              HasSubstr("primary key"));
}

TEST(DocumentPlannerMirror, rejects_a_bad_op_and_a_write_without_after) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json bad_op = row_change('c', {{"id", 1}}, "0/100");
  bad_op["op"] = "x";
  EXPECT_THAT(only_rejection(Batch().add(kUsers, R"({"id":1})", "", bad_op).plan(planner, lookup)),
              HasSubstr("unknown op 'x'"));
  json no_op = row_change('c', {{"id", 1}}, "0/100");
  no_op["op"] = nullptr;
  EXPECT_THAT(only_rejection(Batch().add(kUsers, R"({"id":1})", "", no_op).plan(planner, lookup)),
              HasSubstr("a row change without op"));
  EXPECT_THAT(
      only_rejection(
          Batch().add(kUsers, R"({"id":1})", "", row_change('u', nullptr, "0/100")).plan(planner, lookup)),
      HasSubstr("a row change with op 'u' needs an 'after' object"));
}

TEST(DocumentPlannerMirror, rejects_an_event_without_its_source_table) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json event = row_change('c', {{"id", 1}}, "0/100");
  event["source"].erase("table");
  EXPECT_THAT(only_rejection(Batch().add(kUsers, R"({"id":1})", "", event).plan(planner, lookup)),
              HasSubstr("source.schema and source.table"));
}

TEST(DocumentPlannerMirror, skips_a_table_that_only_shares_the_topic_name_of_a_mirrored_one) {
  EsProjectorConfig cfg;
  cfg.mirror.push_back({{"public", "order items"}, "orders"});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add("app.public.order_items", R"({"id":1})", "",
                             row_change('c', {{"id", 1}}, "0/100", {}, "order_items"))
                        .add("app.public.order_items", R"({"id":1})", "",
                             row_change('c', {{"id", 1}}, "0/100", {}, "order items"))
                        .plan(planner, lookup);
  EXPECT_THAT(plan.skipped, ElementsAre(0U));
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).event, 1U);
}

// --- Partial updates of mirrored rows (unchanged TOASTed columns) ---

TEST(DocumentPlannerToast, keeps_unchanged_toasted_columns_from_the_stored_document) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1",
               {{"id", 1}, {"name", "old"}, {"bio", "a long text"}, {"syncline_version", 0x100}});
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "new"}}, "0/300", {"bio"}))
          .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).kind, BulkAction::Kind::index);
  EXPECT_EQ(action(plan, 0).version, 0x300);
  EXPECT_EQ(document(plan, 0),
            json({{"id", 1}, {"name", "new"}, {"bio", "a long text"}, {"syncline_version", 0x300}}));
  EXPECT_THAT(lookup.calls, ElementsAre(ElementsAre(DocumentKey{"users", "1"})));
}

TEST(DocumentPlannerToast, takes_only_the_unchanged_columns_from_the_stored_document) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"dropped", true}, {"bio", "b"}, {"syncline_version", 1}});
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/300", {"bio", "photo"}))
          .plan(planner, lookup);
  // "photo" is not stored either: it stays unknown rather than invented.
  EXPECT_EQ(document(plan, 0), json({{"id", 1}, {"bio", "b"}, {"syncline_version", 0x300}}));
}

TEST(DocumentPlannerToast, takes_the_base_from_earlier_in_the_batch_without_a_lookup) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"bio", "stale text"}, {"syncline_version", 1}});
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "",
               row_change('c', {{"id", 1}, {"name", "a"}, {"bio", "fresh"}}, "0/100"))
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "b"}}, "0/200", {"bio"}))
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "c"}}, "0/300", {"bio"}))
          .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 3U);
  EXPECT_EQ(document(plan, 1),
            json({{"id", 1}, {"name", "b"}, {"bio", "fresh"}, {"syncline_version", 0x200}}));
  EXPECT_EQ(document(plan, 2),
            json({{"id", 1}, {"name", "c"}, {"bio", "fresh"}, {"syncline_version", 0x300}}));
  EXPECT_THAT(lookup.calls, IsEmpty());
}

TEST(DocumentPlannerToast, chains_partial_updates_on_one_fetched_document) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"bio", "kept"}, {"syncline_version", 0x50}});
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "b"}}, "0/200", {"bio"}))
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "c"}}, "0/300", {"bio"}))
          .plan(planner, lookup);
  EXPECT_EQ(document(plan, 1),
            json({{"id", 1}, {"name", "c"}, {"bio", "kept"}, {"syncline_version", 0x300}}));
  EXPECT_THAT(lookup.calls, ElementsAre(ElementsAre(DocumentKey{"users", "1"})));
}

TEST(DocumentPlannerToast, is_stale_when_the_stored_document_is_newer) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"bio", "newer"}, {"syncline_version", 0x900}});
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "old"}}, "0/300", {"bio"}))
          .plan(planner, lookup);
  EXPECT_THAT(plan.steps, IsEmpty());
  EXPECT_THAT(plan.stale, ElementsAre(0U));
  EXPECT_THAT(plan.rejected, IsEmpty());
}

TEST(DocumentPlannerToast, applies_an_update_of_the_same_version_as_the_stored_document) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"bio", "same tx"}, {"syncline_version", 0x300}});
  const Plan plan = Batch()
                        .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/300", {"bio"}))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(document(plan, 0)["bio"], "same tx");
}

TEST(DocumentPlannerToast, indexes_the_row_without_the_unknown_columns_when_nothing_is_stored) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}, {"name", "n"}}, "0/300", {"bio"}))
          .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(document(plan, 0), json({{"id", 1}, {"name", "n"}, {"syncline_version", 0x300}}));
  EXPECT_EQ(lookup.calls.size(), 1U);
}

TEST(DocumentPlannerToast, has_no_base_after_a_delete_in_the_same_batch) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"bio", "deleted"}, {"syncline_version", 1}});
  const Plan plan = Batch()
                        .add(kUsers, R"({"id":1})", "", row_change('d', nullptr, "0/100"))
                        .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/200", {"bio"}))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(document(plan, 1), json({{"id", 1}, {"syncline_version", 0x200}}));
  EXPECT_THAT(lookup.calls, IsEmpty());
}

TEST(DocumentPlannerToast, has_no_base_in_a_document_older_than_a_truncate_in_the_same_batch) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("users", "1", {{"id", 1}, {"bio", "before truncate"}, {"syncline_version", 0x10}});
  lookup.store("users", "2", {{"id", 2}, {"bio", "after truncate"}, {"syncline_version", 0x150}});
  const Plan plan = Batch()
                        .add(kUsers, R"({"id":3})", "", row_change('c', {{"id", 3}, {"bio", "x"}}, "0/50"))
                        .add(kUsers, "{}", "", row_change('t', nullptr, "0/100"))
                        .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/200", {"bio"}))
                        .add(kUsers, R"({"id":2})", "", row_change('u', {{"id", 2}}, "0/200", {"bio"}))
                        .add(kUsers, R"({"id":3})", "", row_change('u', {{"id", 3}}, "0/200", {"bio"}))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 5U);
  EXPECT_TRUE(std::holds_alternative<DeleteOlder>(plan.steps[1]));
  EXPECT_EQ(document(plan, 2), json({{"id", 1}, {"syncline_version", 0x200}}));
  EXPECT_EQ(document(plan, 3), json({{"id", 2}, {"bio", "after truncate"}, {"syncline_version", 0x200}}));
  EXPECT_EQ(document(plan, 4), json({{"id", 3}, {"syncline_version", 0x200}}));
  EXPECT_THAT(lookup.calls, ElementsAre(ElementsAre(DocumentKey{"users", "1"}, DocumentKey{"users", "2"})));
}

TEST(DocumentPlannerToast, fetches_once_per_plan_and_only_what_partial_updates_need) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/100", {"bio"}))
          .add(kUsers, R"({"id":2})", "", row_change('u', {{"id", 2}}, "0/100"))  // whole row
          .add(kUsers, R"({"id":3})", "", row_change('c', {{"id", 3}}, "0/100"))
          .add(kUsers, R"({"id":3})", "", row_change('u', {{"id", 3}}, "0/200", {"bio"}))  // batch has it
          .add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/200", {"bio"}))  // asked already
          .add(kConversations, "c-1", "MessageEdited",
               domain_event("MessageEdited", {{"message_id", "m-9"}, {"text", "t"}}, "0/200"))
          .plan(planner, lookup);
  EXPECT_EQ(plan.steps.size(), 6U);
  EXPECT_THAT(lookup.calls,
              ElementsAre(ElementsAre(DocumentKey{"users", "1"}, DocumentKey{"messages", "m-9"})));
}

TEST(DocumentPlannerToast, propagates_a_lookup_failure_so_the_batch_is_retried) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.fail = true;
  Batch batch;
  batch.add(kUsers, R"({"id":1})", "", row_change('u', {{"id", 1}}, "0/100", {"bio"}));
  EXPECT_THROW(batch.plan(planner, lookup), std::runtime_error);
}

// --- Mapped domain events ---

TEST(DocumentPlannerMapping, indexes_the_configured_fields_under_the_id_at_its_path) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kConversations, "c-42", "MessageSent",
               domain_event("MessageSent",
                            {{"message_id", "m-1"}, {"text", "hello"}, {"author", nullptr}, {"secret", 1}},
                            "0/400"))
          .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).kind, BulkAction::Kind::index);
  EXPECT_EQ(action(plan, 0).index, "messages");
  EXPECT_EQ(action(plan, 0).id, "m-1");
  EXPECT_EQ(action(plan, 0).version, 0x400);
  // A present null is a value; only configured fields, never the envelope.
  EXPECT_EQ(document(plan, 0), json({{"text", "hello"},
                                     {"author", nullptr},
                                     {"sent_at", "2026-11-22T10:00:00.123Z"},
                                     {"syncline_version", 0x400}}));
}

TEST(DocumentPlannerMapping, leaves_out_an_absent_optional_field) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hello"}}, "0/400"))
                        .plan(planner, lookup);
  EXPECT_FALSE(document(plan, 0).contains("author"));
}

TEST(DocumentPlannerMapping, writes_a_numeric_id_as_its_json_text) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", 1234}, {"text", "x"}}, "0/400"))
                        .plan(planner, lookup);
  EXPECT_EQ(action(plan, 0).id, "1234");
}

TEST(DocumentPlannerMapping, resolves_array_steps_in_paths) {
  EsProjectorConfig cfg;
  cfg.mappings.push_back(
      {"items",
       {kConversations},
       {{{"OrderPlaced"}, EsAction::index, "payload.items.0.id", {{"sku", "payload.items.0.sku"}}}}});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kConversations, "o-1", "OrderPlaced",
                             domain_event("OrderPlaced", {{"items", {{{"id", "i-1"}, {"sku", "S"}}}}}, "0/1"))
                        .plan(planner, lookup);
  EXPECT_EQ(action(plan, 0).id, "i-1");
  EXPECT_EQ(document(plan, 0)["sku"], "S");
}

TEST(DocumentPlannerMapping, merges_an_update_into_the_stored_document) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1",
               {{"text", "old"}, {"sent_at", "t0"}, {"tag", "kept"}, {"syncline_version", 0x100}});
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageEdited",
                             domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "new"}}, "0/400"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).kind, BulkAction::Kind::index);
  EXPECT_EQ(document(plan, 0),
            json({{"text", "new"}, {"sent_at", "t0"}, {"tag", "kept"}, {"syncline_version", 0x400}}));
  EXPECT_THAT(lookup.calls, ElementsAre(ElementsAre(DocumentKey{"messages", "m-1"})));
}

TEST(DocumentPlannerMapping, merges_an_update_onto_a_document_indexed_earlier_in_the_batch) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  // One transaction: equal versions, the later event wins.
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "typo"}}, "0/400"))
                        .add(kConversations, "c-42", "MessageEdited",
                             domain_event("MessageEdited",
                                          {{"message_id", "m-1"}, {"text", "fixed"}, {"tag", "t"}}, "0/400"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(document(plan, 1), json({{"text", "fixed"},
                                     {"sent_at", "2026-11-22T10:00:00.123Z"},
                                     {"tag", "t"},
                                     {"syncline_version", 0x400}}));
  // One lookup, for the whole document (is a merge stored?); the update merges onto the batch's.
  EXPECT_THAT(lookup.calls, ElementsAre(ElementsAre(DocumentKey{"messages", "m-1"})));
}

TEST(DocumentPlannerMapping, marks_an_update_older_than_the_stored_document_stale) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1", {{"text", "newest"}, {"syncline_version", 0x900}});
  const Plan plan =
      Batch()
          .add(kConversations, "c-42", "MessageEdited",
               domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "older"}}, "0/400"))
          .plan(planner, lookup);
  EXPECT_THAT(plan.steps, IsEmpty());
  EXPECT_THAT(plan.stale, ElementsAre(0U));
}

TEST(DocumentPlannerMapping, indexes_the_update_fields_alone_when_nothing_is_stored) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kConversations, "c-42", "MessageEdited",
               domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "only"}}, "0/400"))
          .plan(planner, lookup);
  EXPECT_EQ(document(plan, 0), json({{"text", "only"}, {"syncline_version", 0x400}}));
}

TEST(DocumentPlannerMapping, removes_on_a_delete_mapping_and_then_has_no_base) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kConversations, "c-42", "MessageDeleted",
               domain_event("MessageDeleted", {{"message_id", "m-1"}}, "0/400"))
          .add(kConversations, "c-42", "MessageEdited",
               domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "late"}}, "0/500"))
          .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(action(plan, 0).kind, BulkAction::Kind::remove);
  EXPECT_EQ(action(plan, 0).id, "m-1");
  EXPECT_EQ(action(plan, 0).version, 0x400);
  EXPECT_EQ(document(plan, 1), json({{"text", "late"}, {"syncline_version", 0x500}}));
  EXPECT_THAT(lookup.calls, IsEmpty());
}

TEST(DocumentPlannerMapping, writes_one_step_per_mapping_that_lists_the_type) {
  EsProjectorConfig cfg = config();
  cfg.mappings.push_back({"conversations",
                          {kConversations},
                          {{{"MessageSent"}, EsAction::update, "aggregate_id", {{"last", "payload.text"}}}}});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  lookup.store("conversations", "c-42", {{"title", "kept"}, {"syncline_version", 1}});
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hi"}}, "0/400"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(action(plan, 0).index, "messages");
  EXPECT_EQ(action(plan, 1).index, "conversations");
  EXPECT_EQ(action(plan, 1).id, "c-42");
  EXPECT_EQ(document(plan, 1), json({{"title", "kept"}, {"last", "hi"}, {"syncline_version", 0x400}}));
  EXPECT_EQ(action(plan, 1).event, 0U);
}

TEST(DocumentPlannerMapping, lists_an_event_stale_for_one_index_and_written_to_another_in_both) {
  EsProjectorConfig cfg = config();
  cfg.mappings.push_back({"conversations",
                          {kConversations},
                          {{{"MessageSent"}, EsAction::update, "aggregate_id", {{"last", "payload.text"}}}}});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  lookup.store("conversations", "c-42", {{"last", "newer"}, {"syncline_version", 0x999}});
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hi"}}, "0/400"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).index, "messages");
  EXPECT_THAT(plan.stale, ElementsAre(0U));
}

TEST(DocumentPlannerMapping, rejects_a_missing_id_naming_mapping_type_and_path) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kConversations, "c-42", "MessageSent", domain_event("MessageSent", {{"text", "x"}}, "0/400"))
          .plan(planner, lookup);
  const std::string reason = only_rejection(plan);
  EXPECT_THAT(reason, HasSubstr("mapping 1 (index messages), type MessageSent"));
  EXPECT_THAT(reason, HasSubstr("missing id at JSON path payload.message_id"));
}

TEST(DocumentPlannerMapping, rejects_an_id_that_is_not_a_string_or_number_or_is_empty) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  EXPECT_THAT(
      only_rejection(Batch()
                         .add(kConversations, "c", "MessageSent",
                              domain_event("MessageSent", {{"message_id", {{"a", 1}}}, {"text", "x"}}, "0/1"))
                         .plan(planner, lookup)),
      HasSubstr("is object {\"a\":1}, not a string or number"));
  EXPECT_THAT(only_rejection(Batch()
                                 .add(kConversations, "c", "MessageSent",
                                      domain_event("MessageSent", {{"message_id", ""}, {"text", "x"}}, "0/1"))
                                 .plan(planner, lookup)),
              HasSubstr("is empty"));
}

TEST(DocumentPlannerMapping, rejects_a_missing_required_field_naming_it) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}}, "0/400"))
                        .plan(planner, lookup);
  EXPECT_THAT(only_rejection(plan),
              HasSubstr("type MessageSent, field text: missing JSON path payload.text"));
}

TEST(DocumentPlannerMapping, rejects_an_event_whole_when_one_of_its_mappings_fails) {
  EsProjectorConfig cfg = config();
  cfg.mappings.push_back(
      {"conversations",
       {kConversations},
       {{{"MessageSent"}, EsAction::update, "payload.conversation_id", {{"last", "payload.text"}}}}});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hi"}}, "0/400"))
                        .plan(planner, lookup);
  EXPECT_THAT(only_rejection(plan), HasSubstr("mapping 2 (index conversations)"));
  EXPECT_THAT(lookup.calls, IsEmpty());
}

TEST(DocumentPlannerMapping, skips_unmapped_types_and_unknown_topics_and_keeps_batch_order) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch()
          .add(kConversations, "c-42", "ConversationClosed",
               domain_event("ConversationClosed", json::object(), "0/1"))
          .add("app.events.other", "x", "MessageSent", domain_event("MessageSent", json::object(), "0/1"))
          .add(kConversations, "c-42", "MessageSent",
               domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hi"}}, "0/2"))
          .plan(planner, lookup);
  EXPECT_THAT(plan.skipped, ElementsAre(0U, 1U));
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).event, 2U);
}

TEST(DocumentPlannerMapping, skips_an_unmapped_type_even_without_a_commit_lsn) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json event = domain_event("ConversationClosed", json::object(), "0/1");
  event.erase("source");
  const Plan plan = Batch().add(kConversations, "c-42", "ConversationClosed", event).plan(planner, lookup);
  EXPECT_THAT(plan.skipped, ElementsAre(0U));
  EXPECT_THAT(plan.rejected, IsEmpty());
}

// --- Issue 14: truncates per partition, bookkeeping fields, partial updates across keys ---

TEST(DocumentPlannerTruncate, every_partitions_copy_deletes_below_its_version_and_seq_of_its_table_only) {
  EsProjectorConfig cfg = config();
  cfg.mirror.push_back({{"public", "teams"}, "users"});  // another table in the same index
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  json truncate = row_change('t', nullptr, "0/900");
  truncate["source"]["seq"] = 4;
  const Plan plan = Batch()
                        .add(kUsers, "{}", "public.users.t", truncate, 0)
                        .add(kUsers, "{}", "public.users.t", truncate, 1)
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  for (const Step& step : plan.steps) {
    const auto* copy = std::get_if<DeleteOlder>(&step);
    ASSERT_NE(copy, nullptr);
    EXPECT_EQ(copy->index, "users");
    EXPECT_EQ(copy->table, "public.users");
    EXPECT_EQ(copy->version, 0x900);
    EXPECT_EQ(copy->seq, 4);
    EXPECT_FALSE(copy->untagged_too) << "the index has another writer";
  }
}

TEST(DocumentPlannerTruncate, truncates_untagged_documents_too_when_the_table_is_its_indexs_only_writer) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan =
      Batch().add(kUsers, "{}", "public.users.t", row_change('t', nullptr, "0/900")).plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_TRUE(std::get<DeleteOlder>(plan.steps[0]).untagged_too);
}

TEST(DocumentPlannerTruncate, keeps_a_stored_row_of_the_truncates_transaction_written_after_it) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json truncate = row_change('t', nullptr, "0/900");
  truncate["source"]["seq"] = 4;
  json after = row_change('u', {{"id", 1}, {"name", "kept"}}, "0/900", {"bio"});
  after["source"]["seq"] = 6;
  json before = row_change('u', {{"id", 2}, {"name", "gone"}}, "0/900", {"bio"});
  before["source"]["seq"] = 2;
  lookup.store("users", "1",
               {{"id", 1}, {"bio", "b1"}, {"syncline_version", 0x900}, {"syncline_seq", 5}, {"syncline_table", "public.users"}});
  lookup.store("users", "2",
               {{"id", 2}, {"bio", "b2"}, {"syncline_version", 0x900}, {"syncline_seq", 1}, {"syncline_table", "public.users"}});
  const Plan plan = Batch()
                        .add(kUsers, "{}", "public.users.t", truncate)
                        .add(kUsers, R"({"id":1})", "public.users.u", after)
                        .add(kUsers, R"({"id":2})", "public.users.u", before)
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 3U);
  EXPECT_EQ(document(plan, 1)["bio"], "b1") << "(0x900, 5) is above the truncate's (0x900, 4)";
  EXPECT_FALSE(document(plan, 2).contains("bio")) << "(0x900, 1) was truncated";
}

TEST(DocumentPlannerTruncate, a_mapping_applies_only_the_copy_on_partition_0) {
  EsProjectorConfig cfg;
  cfg.mappings.push_back({"audit", {kUsers}, {{{"public.users.t"}, EsAction::index, "id", {{"what", "op"}}}}});
  const DocumentPlanner planner(cfg, "app");
  FakeLookup lookup;
  const json truncate = row_change('t', nullptr, "0/900");
  const Plan plan = Batch()
                        .add(kUsers, "{}", "public.users.t", truncate, 1)
                        .add(kUsers, "{}", "public.users.t", truncate, 0)
                        .add(kUsers, "{}", "public.users.t", truncate, 2)
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).event, 1U);
  EXPECT_EQ(plan.skipped, (std::vector<std::size_t>{0, 2}));
}

TEST(DocumentPlannerBookkeeping, mirror_documents_carry_table_and_seq_and_mapped_ones_their_kafka_key) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  json row = row_change('c', {{"id", 1}}, "0/100");
  row["source"]["seq"] = 3;
  const Plan plan = Batch()
                        .add(kUsers, R"({"id":1})", "public.users.c", row)
                        .add(kConversations, "c-42", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "hi"}}, "0/200"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 2U);
  EXPECT_EQ(bookkeeping(plan, 0), json({{"syncline_table", "public.users"}, {"syncline_seq", 3}}));
  EXPECT_EQ(bookkeeping(plan, 1), json({{"syncline_seq", 1}, {"syncline_key", "c-42"}}));
}

TEST(DocumentPlannerMapping, dead_letters_an_older_update_from_another_key_naming_document_keys_and_fix) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1", {{"text", "new"}, {"syncline_version", 0x500}, {"syncline_key", "c-1"}});
  const Plan plan = Batch()
                        .add(kConversations, "c-2", "MessageEdited",
                             domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "old"}}, "0/300", "c-2"))
                        .plan(planner, lookup);
  const std::string reason = only_rejection(plan);
  EXPECT_THAT(reason, HasSubstr("document m-1"));
  EXPECT_THAT(reason, HasSubstr("c-1"));
  EXPECT_THAT(reason, HasSubstr("c-2"));
  EXPECT_THAT(reason, HasSubstr("aggregate id"));
  EXPECT_THAT(plan.stale, IsEmpty());
}

TEST(DocumentPlannerMapping, counts_an_older_update_from_the_same_key_as_stale) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1", {{"text", "new"}, {"syncline_version", 0x500}, {"syncline_key", "c-1"}});
  const Plan plan = Batch()
                        .add(kConversations, "c-1", "MessageEdited",
                             domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "old"}}, "0/300", "c-1"))
                        .plan(planner, lookup);
  EXPECT_THAT(plan.rejected, IsEmpty());
  EXPECT_THAT(plan.steps, IsEmpty());
  EXPECT_EQ(plan.stale, (std::vector<std::size_t>{0}));
}

// A whole document (MessageSent) older than a merge another key made: under order it would have
// come first and the merge kept its fields; skipping it as stale would lose them.
TEST(DocumentPlannerMapping, dead_letters_an_older_document_from_another_key_under_a_merge) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1",
               {{"text", "edited"}, {"syncline_version", 0x500}, {"syncline_key", "c-1"}, {"syncline_merged", true}});
  const Plan plan = Batch()
                        .add(kConversations, "c-2", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "first"}}, "0/300", "c-2"))
                        .plan(planner, lookup);
  const std::string reason = only_rejection(plan);
  EXPECT_THAT(reason, HasSubstr("document m-1"));
  EXPECT_THAT(reason, HasSubstr("a partial update with another Kafka key (c-1)"));
  EXPECT_THAT(reason, HasSubstr("(Kafka key c-2, version 768, seq 1)"));
  EXPECT_THAT(plan.stale, IsEmpty());
}

TEST(DocumentPlannerMapping, dead_letters_an_older_document_under_a_merge_made_earlier_in_the_batch) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  const Plan plan = Batch()
                        .add(kConversations, "c-1", "MessageEdited",
                             domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "edited"}}, "0/500", "c-1"))
                        .add(kConversations, "c-2", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "first"}}, "0/300", "c-2"))
                        .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).event, 0U);
  EXPECT_EQ(bookkeeping(plan, 0), json({{"syncline_seq", 1}, {"syncline_key", "c-1"}, {"syncline_merged", true}}));
  ASSERT_EQ(plan.rejected.size(), 1U);
  EXPECT_EQ(plan.rejected.front().first, 1U);
  EXPECT_THAT(plan.stale, IsEmpty());
}

// Replaced under order too: the newer whole document wins, the older one is stale.
TEST(DocumentPlannerMapping, counts_an_older_document_from_another_key_over_a_whole_document_as_stale) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1", {{"text", "new"}, {"syncline_version", 0x500}, {"syncline_key", "c-1"}});
  const Plan plan = Batch()
                        .add(kConversations, "c-2", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "old"}}, "0/300", "c-2"))
                        .plan(planner, lookup);
  EXPECT_THAT(plan.rejected, IsEmpty());
  EXPECT_THAT(plan.steps, IsEmpty());
  EXPECT_EQ(plan.stale, (std::vector<std::size_t>{0}));
}

TEST(DocumentPlannerMapping, a_newer_document_replaces_a_merge_and_clears_the_mark) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  lookup.store("messages", "m-1",
               {{"text", "edited"}, {"syncline_version", 0x300}, {"syncline_key", "c-1"}, {"syncline_merged", true}});
  const Plan plan = Batch()
                        .add(kConversations, "c-2", "MessageSent",
                             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "sent"}}, "0/500", "c-2"))
                        .plan(planner, lookup);
  EXPECT_THAT(plan.rejected, IsEmpty());
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(bookkeeping(plan, 0), json({{"syncline_seq", 1}, {"syncline_key", "c-2"}}));
}

// An index no update action writes holds no merges: its documents are written without a lookup.
TEST(DocumentPlannerMapping, looks_up_documents_for_whole_writes_only_where_updates_merge) {
  EsProjectorConfig with_updates = config();
  EsProjectorConfig without = config();
  without.mappings.front().events.erase(without.mappings.front().events.begin() + 1);  // MessageEdited
  for (const EsProjectorConfig* current : {&with_updates, &without}) {
    const DocumentPlanner planner(*current, "app");
    FakeLookup lookup;
    Batch()
        .add(kConversations, "c-1", "MessageSent",
             domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "t"}}, "0/200", "c-1"))
        .plan(planner, lookup);
    if (current == &with_updates) {
      EXPECT_THAT(lookup.calls, ElementsAre(ElementsAre(DocumentKey{"messages", "m-1"})));
    } else {
      EXPECT_THAT(lookup.calls, IsEmpty());
    }
  }
}

// Two Kafka keys' events of ONE transaction share the version; their seq orders them.
json at_seq(json envelope, int seq) {
  envelope["source"]["seq"] = seq;
  return envelope;
}

TEST(DocumentPlannerMapping, dead_letters_a_document_of_the_same_transaction_before_a_merge_from_another_key) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup;
  // Committed: MessageSent (seq 1) then MessageEdited (seq 2); consumed the other way round.
  const Plan plan =
      Batch()
          .add(kConversations, "c-1", "MessageEdited",
               at_seq(domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "edited"}}, "0/400", "c-1"), 2))
          .add(kConversations, "c-2", "MessageSent",
               at_seq(domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "sent"}}, "0/400", "c-2"), 1))
          .plan(planner, lookup);
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).event, 0U);
  ASSERT_EQ(plan.rejected.size(), 1U);
  EXPECT_EQ(plan.rejected.front().first, 1U);
  EXPECT_THAT(plan.rejected.front().second, HasSubstr("(Kafka key c-2, version 1024, seq 1)"));
}

// m-1 as MessageSent from key c-2 wrote it, second in transaction 0/400.
FakeLookup sent_by_c2_at_seq_2() {
  FakeLookup lookup;
  lookup.store("messages", "m-1",
               {{"text", "sent"}, {"syncline_version", 0x400}, {"syncline_seq", 2}, {"syncline_key", "c-2"}});
  return lookup;
}

TEST(DocumentPlannerMapping, dead_letters_an_update_of_the_same_transaction_before_a_stored_document_of_another_key) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup = sent_by_c2_at_seq_2();
  const Plan plan =
      Batch()
          .add(kConversations, "c-1", "MessageEdited",
               at_seq(domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "edited"}}, "0/400", "c-1"), 1))
          .plan(planner, lookup);
  EXPECT_THAT(only_rejection(plan), HasSubstr("version 1024, seq 2"));
}

TEST(DocumentPlannerMapping, orders_one_transactions_writes_from_two_keys_by_seq) {
  const DocumentPlanner planner(config(), "app");
  FakeLookup lookup = sent_by_c2_at_seq_2();
  const Plan plan =
      Batch()
          // earlier in the transaction than the stored document, whole: stale (not sent)
          .add(kConversations, "c-1", "MessageSent",
               at_seq(domain_event("MessageSent", {{"message_id", "m-1"}, {"text", "first"}}, "0/400", "c-1"), 1))
          // later: merged
          .add(kConversations, "c-3", "MessageEdited",
               at_seq(domain_event("MessageEdited", {{"message_id", "m-1"}, {"text", "edited"}}, "0/400", "c-3"), 3))
          .plan(planner, lookup);
  EXPECT_THAT(plan.rejected, IsEmpty());
  EXPECT_EQ(plan.stale, (std::vector<std::size_t>{0}));
  ASSERT_EQ(plan.steps.size(), 1U);
  EXPECT_EQ(action(plan, 0).event, 1U);
  EXPECT_EQ(document(plan, 0)["text"], "edited");
  EXPECT_EQ(bookkeeping(plan, 0), json({{"syncline_seq", 3}, {"syncline_key", "c-3"}, {"syncline_merged", true}}));
}

}  // namespace
}  // namespace syncline::es_projector
