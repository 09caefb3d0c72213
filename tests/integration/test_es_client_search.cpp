// Integration tests of EsClient against the real search engine of scripts/stack: index + alias
// setup, versioned bulk writes and their per-item outcomes, _mget lookups and truncates.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/http_client.hpp"
#include "consumers/es/es_client.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::es_projector {
namespace {

using nlohmann::json;

const std::string kMappings = R"({"properties":{"title":{"type":"text"},"count":{"type":"long"}}})";
// One shard, no replica: a single-node cluster stays green and tests stay fast.
const std::string kSettings = R"({"number_of_shards":1,"number_of_replicas":0})";

SearchConfig search_config() {
  SearchConfig config;
  config.url = test::stack_env().search_url;
  config.request_timeout = std::chrono::seconds(30);
  return config;
}

BulkAction index_action(const std::string& alias, std::string id, std::int64_t version, json source) {
  source[std::string(kVersionField)] = version;
  if (!source.contains(std::string(kTableField))) source[std::string(kTableField)] = "public.t";
  return {.kind = BulkAction::Kind::index,
          .index = alias,
          .id = std::move(id),
          .version = version,
          .source = source.dump(),
          .event = 0};
}

BulkAction delete_action(const std::string& alias, std::string id, std::int64_t version) {
  return {.kind = BulkAction::Kind::remove,
          .index = alias,
          .id = std::move(id),
          .version = version,
          .source = {},
          .event = 0};
}

std::vector<const BulkAction*> pointers(const std::vector<BulkAction>& actions) {
  std::vector<const BulkAction*> out;
  out.reserve(actions.size());
  for (const auto& action : actions) out.push_back(&action);
  return out;
}

std::vector<ItemOutcome> outcomes(const std::vector<ItemResult>& results) {
  std::vector<ItemOutcome> out;
  out.reserve(results.size());
  for (const auto& result : results) out.push_back(result.outcome);
  return out;
}

class EsClientSearch : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_search());
    alias_ = test::unique_name("esc");
  }
  void TearDown() override {
    // Deleting the physical index removes its alias too.
    for (const std::string& name : {alias_ + "_v1", alias_ + "_v7", alias_}) raw_.del("/" + name);
  }

  void ensure() { client_.ensure_index({alias_, kSettings, kMappings}); }
  DeleteOlder truncate(std::int64_t version, std::int64_t seq = 0) {
    return {.index = alias_, .table = "public.t", .version = version, .seq = seq};
  }

  json get_json(const std::string& path) {
    const http::Response response = raw_.get(path);
    EXPECT_EQ(response.status, 200) << path << ": " << response.body;
    return json::parse(response.body, nullptr, false);
  }

  std::int64_t count() {
    client_.refresh(alias_);
    return get_json("/" + alias_ + "/_count")["count"].get<std::int64_t>();
  }

  EsClient client_{search_config(), false};
  http::HttpClient raw_{http::ClientOptions{.base_url = test::stack_env().search_url}};
  std::string alias_;
};

TEST_F(EsClientSearch, EnsureIndexCreatesAVersionedIndexBehindTheAlias) {
  ensure();
  const std::string physical = alias_ + "_v1";
  EXPECT_EQ(client_.physical_index(alias_), physical);

  const json aliases = get_json("/_alias/" + alias_);
  ASSERT_TRUE(aliases.contains(physical)) << aliases.dump();
  EXPECT_EQ(aliases.size(), 1U);

  const json properties = get_json("/" + physical + "/_mapping")[physical]["mappings"]["properties"];
  EXPECT_EQ(properties["syncline_version"]["type"], "long") << properties.dump();
  EXPECT_EQ(properties["title"]["type"], "text");
  EXPECT_EQ(properties["count"]["type"], "long");
  EXPECT_EQ(properties["syncline_table"]["type"], "keyword");
  EXPECT_EQ(properties["syncline_seq"]["type"], "long");
  EXPECT_EQ(properties["syncline_key"]["type"], "keyword");

  // delete_retention_ms (24 h by default).
  const json settings = get_json("/" + physical + "/_settings")[physical]["settings"]["index"];
  EXPECT_EQ(settings["gc_deletes"], "86400000ms") << settings.dump();
  EXPECT_EQ(settings["number_of_shards"], "1");
}

TEST_F(EsClientSearch, EnsureIndexIsIdempotentAcrossInstances) {
  ensure();
  ensure();
  EsClient other(search_config(), true);
  other.ensure_index({alias_, kSettings, kMappings});
  EXPECT_EQ(get_json("/_alias/" + alias_).size(), 1U);
  EXPECT_EQ(raw_.get("/" + alias_ + "_v2").status, 404);
}

TEST_F(EsClientSearch, EnsureIndexUsesAnExistingAliasAsItIs) {
  // An alias set up by resync (or by hand) over another physical index is left alone.
  ASSERT_EQ(raw_.put("/" + alias_ + "_v7", json{{"aliases", {{alias_, json::object()}}}}.dump()).status, 200);
  ensure();
  EXPECT_EQ(client_.physical_index(alias_), alias_ + "_v7");
  EXPECT_EQ(raw_.get("/" + alias_ + "_v1").status, 404);
}

TEST_F(EsClientSearch, EnsureIndexRefusesAConcreteIndexNamedLikeTheAlias) {
  ASSERT_EQ(raw_.put("/" + alias_, "{}").status, 200);
  try {
    ensure();
    FAIL() << "expected IndexSetupError";
  } catch (const IndexSetupError& e) {
    EXPECT_NE(std::string(e.what()).find(alias_), std::string::npos) << e.what();
    EXPECT_FALSE(e.retriable());
  }
  EXPECT_EQ(raw_.get("/" + alias_ + "_v1").status, 404) << "nothing created beside it";
}

TEST_F(EsClientSearch, PhysicalIndexOfAMissingAliasIsA404RequestError) {
  try {
    client_.physical_index(alias_);
    FAIL() << "expected SearchRequestError";
  } catch (const SearchRequestError& e) {
    EXPECT_EQ(e.status(), 404);
  }
}

TEST_F(EsClientSearch, BulkIndexesDeletesAndReportsStaleWrites) {
  ensure();
  std::vector<BulkAction> first = {index_action(alias_, "a", 5, {{"title", "a v5"}}),
                                   index_action(alias_, "b", 3, {{"title", "b v3"}}),
                                   index_action(alias_, "d", 3, {{"title", "d v3"}})};
  auto results = client_.bulk(pointers(first));
  EXPECT_EQ(outcomes(results), std::vector<ItemOutcome>(3, ItemOutcome::done));
  EXPECT_EQ(results[0].status, 201);

  // A replay: older loses, equal wins (same transaction written again), deletes are versioned too.
  std::vector<BulkAction> replay = {index_action(alias_, "a", 4, {{"title", "a v4 (stale)"}}),
                                    index_action(alias_, "b", 3, {{"title", "b v3 again"}}),
                                    delete_action(alias_, "c", 2),   // never existed
                                    delete_action(alias_, "a", 4),   // older than the document
                                    delete_action(alias_, "d", 6)};  // newer than the document
  results = client_.bulk(pointers(replay));
  EXPECT_EQ(outcomes(results),
            (std::vector<ItemOutcome>{ItemOutcome::stale, ItemOutcome::done, ItemOutcome::done,
                                      ItemOutcome::stale, ItemOutcome::done}))
      << results[0].reason << " | " << results[3].reason;
  EXPECT_EQ(results[0].status, 409);
  EXPECT_NE(results[0].reason.find("version_conflict_engine_exception"), std::string::npos)
      << results[0].reason;
  EXPECT_EQ(results[2].status, 404);

  // The delete's tombstone keeps an older write of the deleted document out.
  std::vector<BulkAction> resurrect = {index_action(alias_, "d", 5, {{"title", "d v5"}})};
  EXPECT_EQ(client_.bulk(pointers(resurrect))[0].outcome, ItemOutcome::stale);

  const auto documents = client_.fetch({{alias_, "a"}, {alias_, "b"}, {alias_, "d"}});
  ASSERT_TRUE(documents.at({alias_, "a"}).has_value());
  EXPECT_EQ(documents.at({alias_, "a"})->source["title"], "a v5");
  EXPECT_EQ(documents.at({alias_, "b"})->source["title"], "b v3 again");
  EXPECT_FALSE(documents.at({alias_, "d"}).has_value());
  EXPECT_EQ(count(), 2);
}

TEST_F(EsClientSearch, MappingViolationIsRejectedWithTheEngineReasonAndItsNeighboursAreWritten) {
  ensure();
  std::vector<BulkAction> actions = {index_action(alias_, "ok-1", 1, {{"count", 1}}),
                                     index_action(alias_, "bad", 1, {{"count", "not a number"}}),
                                     index_action(alias_, "ok-2", 1, {{"count", 2}})};
  const auto results = client_.bulk(pointers(actions));
  ASSERT_EQ(results.size(), 3U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::done);
  EXPECT_EQ(results[2].outcome, ItemOutcome::done);
  EXPECT_EQ(results[1].outcome, ItemOutcome::reject);
  EXPECT_EQ(results[1].status, 400);
  EXPECT_EQ(results[1].reason.rfind("400 ", 0), 0U) << results[1].reason;
  EXPECT_NE(results[1].reason.find("[count]"), std::string::npos) << results[1].reason;
  EXPECT_NE(results[1].reason.find("not a number"), std::string::npos) << results[1].reason;
}

TEST_F(EsClientSearch, WritesToAMissingAliasAreRetriedAndCreateNoIndex) {
  std::vector<BulkAction> actions = {index_action(alias_, "a", 1, {{"title", "x"}}),
                                     delete_action(alias_, "b", 1)};
  const auto results = client_.bulk(pointers(actions));
  ASSERT_EQ(results.size(), 2U);
  for (const auto& result : results) {
    EXPECT_EQ(result.outcome, ItemOutcome::retry);
    EXPECT_NE(result.reason.find("index_not_found_exception"), std::string::npos) << result.reason;
  }
  EXPECT_EQ(raw_.get("/" + alias_).status, 404)
      << "a write must never auto-create a concrete index for the alias";
}

TEST_F(EsClientSearch, GzipBulkBodiesAreAccepted) {
  ensure();
  EsClient gzip_client(search_config(), true);
  std::vector<BulkAction> actions;
  actions.reserve(50);
  for (int i = 0; i < 50; ++i) {
    actions.push_back(
        index_action(alias_, "doc-" + std::to_string(i), 1, {{"title", std::string(100, 'x')}}));
  }
  EXPECT_EQ(outcomes(gzip_client.bulk(pointers(actions))), std::vector<ItemOutcome>(50, ItemOutcome::done));
  EXPECT_EQ(count(), 50);
}

TEST_F(EsClientSearch, FetchReturnsSourcesAndVersionsAndNulloptForMissingDocuments) {
  ensure();
  std::vector<BulkAction> actions = {
      index_action(alias_, "[\"k\",1]", 12, {{"title", "quoted id"}, {"count", 3}}),
      index_action(alias_, "plain", 7, {{"title", "plain"}})};
  ASSERT_EQ(outcomes(client_.bulk(pointers(actions))), std::vector<ItemOutcome>(2, ItemOutcome::done));

  // Realtime: no refresh between the write and the lookup.
  const std::string missing_index = alias_ + "_nothing_here";
  const auto documents =
      client_.fetch({{alias_, "[\"k\",1]"}, {alias_, "plain"}, {alias_, "absent"}, {missing_index, "x"}});
  ASSERT_EQ(documents.size(), 4U);
  const auto& quoted = documents.at({alias_, "[\"k\",1]"});
  ASSERT_TRUE(quoted.has_value());
  EXPECT_EQ(quoted->version, 12);
  EXPECT_EQ(quoted->source, (json{{"title", "quoted id"}, {"count", 3}, {"syncline_version", 12}, {"syncline_table", "public.t"}}));
  EXPECT_EQ(documents.at({alias_, "plain"})->version, 7);
  EXPECT_FALSE(documents.at({alias_, "absent"}).has_value());
  EXPECT_FALSE(documents.at({missing_index, "x"}).has_value());
}

TEST_F(EsClientSearch, FetchOfADocumentWithoutAVersionFieldGivesVersionZero) {
  ensure();
  ASSERT_EQ(raw_.put("/" + alias_ + "/_doc/raw?refresh=false", R"({"title":"by hand"})").status, 201);
  const auto documents = client_.fetch({{alias_, "raw"}});
  ASSERT_TRUE(documents.at({alias_, "raw"}).has_value());
  EXPECT_EQ(documents.at({alias_, "raw"})->version, 0);
}

TEST_F(EsClientSearch, DeleteOlderDeletesOnlyOlderDocumentsAndKeepsThemDeleted) {
  ensure();
  std::vector<BulkAction> actions = {index_action(alias_, "old-1", 1, {{"title", "old"}}),
                                     index_action(alias_, "old-2", 3, {{"title", "old"}}),
                                     index_action(alias_, "same", 5, {{"title", "same as the truncate"}}),
                                     index_action(alias_, "new", 9, {{"title", "new"}})};
  ASSERT_EQ(outcomes(client_.bulk(pointers(actions))), std::vector<ItemOutcome>(4, ItemOutcome::done));

  // No refresh before: delete_older must see writes not yet searchable.
  EXPECT_EQ(client_.delete_older(truncate(5)), 2U);
  const auto documents =
      client_.fetch({{alias_, "old-1"}, {alias_, "old-2"}, {alias_, "same"}, {alias_, "new"}});
  EXPECT_FALSE(documents.at({alias_, "old-1"}).has_value());
  EXPECT_FALSE(documents.at({alias_, "old-2"}).has_value());
  EXPECT_TRUE(documents.at({alias_, "same"}).has_value());
  EXPECT_TRUE(documents.at({alias_, "new"}).has_value());
  EXPECT_EQ(count(), 2);

  // A replay of the events before the truncate cannot bring the documents back (their tombstones
  // are at the truncate's version - 1, which no other transaction can have).
  std::vector<BulkAction> replay = {index_action(alias_, "old-2", 3, {{"title", "old"}})};
  EXPECT_EQ(client_.bulk(pointers(replay))[0].outcome, ItemOutcome::stale);
  EXPECT_EQ(client_.delete_older(truncate(5)), 0U) << "a second truncate finds nothing";
}

TEST_F(EsClientSearch, DeleteOlderOfAMissingIndexDeletesNothing) {
  EXPECT_EQ(client_.delete_older(truncate(5)), 0U);
}

TEST_F(EsClientSearch, DeleteOlderScansMoreThanOnePage) {
  ensure();
  std::vector<BulkAction> actions;
  actions.reserve(1206);
  for (int i = 0; i < 1205; ++i)
    actions.push_back(index_action(alias_, std::to_string(i), 1 + i % 3, {{"count", i}}));
  actions.push_back(index_action(alias_, "keep", 10, {{"count", -1}}));
  ASSERT_EQ(outcomes(client_.bulk(pointers(actions))),
            std::vector<ItemOutcome>(actions.size(), ItemOutcome::done));
  EXPECT_EQ(client_.delete_older(truncate(10)), 1205U);
  EXPECT_EQ(count(), 1);
}

TEST_F(EsClientSearch, HealthyWhenTheClusterAnswersGreenOrYellow) {
  EXPECT_TRUE(client_.healthy());
  SearchConfig unreachable = search_config();
  unreachable.url = "http://127.0.0.1:1";
  EsClient down(unreachable, false);
  EXPECT_FALSE(down.healthy());
}

}  // namespace
}  // namespace syncline::es_projector
