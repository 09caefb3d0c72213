// Integration tests against the real Elasticsearch node through the HTTP client: index with
// mappings, versioned bulk writes (external_gte), refresh, search, count, delete.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/http_client.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::http {
namespace {

using nlohmann::json;

std::string bulk_body(const std::string& index,
                      const std::vector<std::tuple<std::string, long, json>>& docs) {
  std::string body;
  for (const auto& [id, version, source] : docs) {
    body += json{{"index",
                  {{"_index", index}, {"_id", id}, {"version", version}, {"version_type", "external_gte"}}}}
                .dump();
    body += '\n';
    body += source.dump();
    body += '\n';
  }
  return body;
}

class SearchIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_search());
    index_ = test::unique_name("syncline_test_index");
  }
  void TearDown() override {
    if (!index_.empty()) client_.del("/" + index_);
  }

  HttpClient client_{ClientOptions{.base_url = test::stack_env().search_url}};
  std::string index_;
};

TEST_F(SearchIntegration, VersionedBulkRejectsStaleWritesAndSearchSeesTheNewest) {
  const json mappings = {
      {"mappings", {{"properties", {{"title", {{"type", "text"}}}, {"tag", {{"type", "keyword"}}}}}}}};
  Response response = client_.put("/" + index_, mappings.dump());
  ASSERT_EQ(response.status, 200) << response.body;
  response = client_.get("/" + index_ + "/_mapping");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(json::parse(response.body)[index_]["mappings"]["properties"]["tag"]["type"], "keyword");

  response = client_.post("/_bulk",
                          bulk_body(index_, {{"1", 5, {{"title", "first v5"}, {"tag", "a"}}},
                                             {"2", 3, {{"title", "second v3"}, {"tag", "b"}}}}),
                          "application/x-ndjson");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_FALSE(json::parse(response.body)["errors"].get<bool>()) << response.body;

  // A replay: doc 1 at an older version must not win; doc 2 at the same version is accepted.
  response = client_.post("/_bulk",
                          bulk_body(index_, {{"1", 4, {{"title", "first v4 (stale)"}, {"tag", "a"}}},
                                             {"2", 3, {{"title", "second v3 again"}, {"tag", "b"}}}}),
                          "application/x-ndjson");
  ASSERT_EQ(response.status, 200) << response.body;
  const json result = json::parse(response.body);
  EXPECT_TRUE(result["errors"].get<bool>());
  EXPECT_EQ(result["items"][0]["index"]["status"], 409) << response.body;
  EXPECT_EQ(result["items"][0]["index"]["error"]["type"], "version_conflict_engine_exception");
  EXPECT_EQ(result["items"][1]["index"]["status"], 200) << response.body;

  ASSERT_EQ(client_.post("/" + index_ + "/_refresh", "").status, 200);

  response =
      client_.post("/" + index_ + "/_search", json{{"query", {{"match", {{"title", "first"}}}}}}.dump());
  ASSERT_EQ(response.status, 200) << response.body;
  const json hits = json::parse(response.body)["hits"];
  ASSERT_EQ(hits["total"]["value"], 1);
  EXPECT_EQ(hits["hits"][0]["_source"]["title"], "first v5");

  response = client_.get("/" + index_ + "/_doc/1");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(json::parse(response.body)["_version"], 5);

  response = client_.post("/" + index_ + "/_count", json{{"query", {{"term", {{"tag", "b"}}}}}}.dump());
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(json::parse(response.body)["count"], 1);
  response = client_.get("/" + index_ + "/_count");
  EXPECT_EQ(json::parse(response.body)["count"], 2);

  response = client_.del("/" + index_);
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(client_.get("/" + index_).status, 404);
  index_.clear();
}

TEST_F(SearchIntegration, GzipRequestBodiesAreAccepted) {
  HttpClient gzip_client(
      ClientOptions{.base_url = test::stack_env().search_url, .gzip_requests = true, .gzip_min_bytes = 1});
  const Response response =
      gzip_client.put("/" + index_, json{{"settings", {{"number_of_shards", 1}}}}.dump());
  EXPECT_EQ(response.status, 200) << response.body;
}

TEST_F(SearchIntegration, ConnectionRefusedIsARetriableTransportError) {
  HttpClient unreachable(ClientOptions{.base_url = "http://user:pw-secret@127.0.0.1:1"});
  try {
    unreachable.get("/");
    FAIL() << "expected an HttpError";
  } catch (const HttpError& e) {
    EXPECT_TRUE(e.retriable());
    EXPECT_EQ(std::string(e.what()).find("pw-secret"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace syncline::http
