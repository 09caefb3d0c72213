// Unit tests of EsClient: the NDJSON bulk body, per-item classification of recorded engine
// responses, and whole-request failures against a fake engine on a loopback port.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "consumers/es/es_client.hpp"

namespace syncline::es_projector {
namespace {

using nlohmann::json;

BulkAction index_action(std::string id, std::int64_t version, std::string source,
                        std::string index = "messages") {
  return {.kind = BulkAction::Kind::index,
          .index = std::move(index),
          .id = std::move(id),
          .version = version,
          .source = std::move(source),
          .event = 0};
}

BulkAction delete_action(std::string id, std::int64_t version, std::string index = "messages") {
  return {.kind = BulkAction::Kind::remove,
          .index = std::move(index),
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

std::vector<std::string> lines_of(const std::string& body) {
  std::vector<std::string> lines;
  std::istringstream stream(body);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// ---- bulk body ----

TEST(EsClientBulkBody, IndexActionIsAMetadataLineWithTheExternalVersionThenTheSourceLine) {
  const std::vector<BulkAction> actions = {index_action("m-1", 42, R"({"text":"hi","syncline_version":42})")};
  EXPECT_EQ(EsClient::bulk_body(pointers(actions)),
            R"({"index":{"_index":"messages","_id":"m-1","version":42,"version_type":"external_gte"}})"
            "\n"
            R"({"text":"hi","syncline_version":42})"
            "\n");
}

TEST(EsClientBulkBody, DeleteActionIsAMetadataLineWithoutASourceLine) {
  const std::vector<BulkAction> actions = {delete_action("m-1", 7), index_action("m-2", 8, "{}")};
  const auto lines = lines_of(EsClient::bulk_body(pointers(actions)));
  ASSERT_EQ(lines.size(), 3U);
  EXPECT_EQ(lines[0],
            R"({"delete":{"_index":"messages","_id":"m-1","version":7,"version_type":"external_gte"}})");
  EXPECT_EQ(json::parse(lines[1])["index"]["_id"], "m-2");
  EXPECT_EQ(lines[2], "{}");
}

TEST(EsClientBulkBody, EndsWithANewlineAndIsEmptyForNoActions) {
  const std::vector<BulkAction> actions = {delete_action("a", 1), delete_action("b", 2)};
  const std::string body = EsClient::bulk_body(pointers(actions));
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(body.back(), '\n');
  EXPECT_EQ(EsClient::bulk_body({}), "");
}

TEST(EsClientBulkBody, IdsAndIndexNamesAreJsonEscaped) {
  // A row change's _id is its primary key as canonical JSON: quotes are the common case.
  const std::string id = "[\"tenant \\\"a\\\"\",42]\n\t\x01é";
  const std::vector<BulkAction> actions = {index_action(id, 3, R"({"n":1})", "in\"dex")};
  const auto lines = lines_of(EsClient::bulk_body(pointers(actions)));
  ASSERT_EQ(lines.size(), 2U) << "an escaped id must not break the NDJSON lines";
  const json metadata = json::parse(lines[0]);
  EXPECT_EQ(metadata["index"]["_id"], id);
  EXPECT_EQ(metadata["index"]["_index"], "in\"dex");
  EXPECT_EQ(metadata["index"]["version"], 3);
  EXPECT_EQ(metadata["index"]["version_type"], "external_gte");
}

TEST(EsClientBulkBody, LineBreaksBetweenSourceTokensDoNotEndTheSourceLine) {
  const json source = {{"text", "two\nlines"}, {"n", 1}};
  const std::vector<BulkAction> actions = {index_action("a", 1, source.dump(2) + "\r\n")};
  const auto lines = lines_of(EsClient::bulk_body(pointers(actions)));
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(json::parse(lines[1]), source) << "the escaped line break inside the string is kept";
}

TEST(EsClientBulkBody, LargestVersionIsWrittenExactly) {
  const std::vector<BulkAction> actions = {delete_action("a", std::numeric_limits<std::int64_t>::max())};
  EXPECT_EQ(json::parse(lines_of(EsClient::bulk_body(pointers(actions)))[0])["delete"]["version"]
                .get<std::int64_t>(),
            std::numeric_limits<std::int64_t>::max());
}

// ---- bulk response (recorded from Elasticsearch 8.19) ----

TEST(EsClientBulkResponse, CreatedAndUpdatedItemsAreDone) {
  const std::string body = R"({"errors":false,"took":3,"items":[
    {"index":{"_index":"messages_v1","_id":"1","_version":5,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
    {"index":{"_index":"messages_v1","_id":"2","_version":3,"result":"updated","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":200}},
    {"delete":{"_index":"messages_v1","_id":"3","_version":9,"result":"deleted","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":2,"_primary_term":1,"status":200}}]})";
  const auto results = EsClient::parse_bulk_response(body, 3);
  ASSERT_EQ(results.size(), 3U);
  for (const auto& result : results) EXPECT_EQ(result.outcome, ItemOutcome::done) << result.reason;
  EXPECT_EQ(results[0].status, 201);
  EXPECT_EQ(results[1].status, 200);
}

TEST(EsClientBulkResponse, VersionConflictIsStale) {
  const std::string body =
      R"({"errors":true,"took":0,"items":[{"index":{"_index":"messages_v1","_id":"a\"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a\"b]: version conflict, current version [5] is higher than the one provided [4]","index_uuid":"54KcPddxR22j1O5iQUq2Ug","shard":"0","index":"messages_v1"}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 1);
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::stale);
  EXPECT_EQ(results[0].status, 409);
  EXPECT_NE(results[0].reason.find("version_conflict_engine_exception"), std::string::npos)
      << results[0].reason;
}

TEST(EsClientBulkResponse, MappingErrorIsRejectedWithTheEngineReasonAndItsCause) {
  const std::string body =
      R"({"errors":true,"took":0,"items":[{"index":{"_index":"messages_v1","_id":"c","status":400,"error":{"type":"document_parsing_exception","reason":"[1:6] failed to parse field [n] of type [long] in document with id 'c'. Preview of field's value: 'abc'","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 1);
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::reject);
  EXPECT_EQ(results[0].status, 400);
  EXPECT_EQ(
      results[0].reason,
      "400 document_parsing_exception: [1:6] failed to parse field [n] of type [long] in document with id "
      "'c'. "
      "Preview of field's value: 'abc' (caused by illegal_argument_exception: For input string: \"abc\")");
}

TEST(EsClientBulkResponse, DeleteOfAMissingDocumentIsDone) {
  const std::string body =
      R"({"errors":false,"took":0,"items":[{"delete":{"_index":"messages_v1","_id":"zz","_version":4,"result":"not_found","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":404}}]})";
  const auto results = EsClient::parse_bulk_response(body, 1);
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::done);
  EXPECT_EQ(results[0].status, 404);
}

TEST(EsClientBulkResponse, MissingIndexOrAliasIsRetriedNotRejected) {
  const std::string body = R"({"errors":true,"took":0,"items":[
    {"index":{"_index":"messages","_id":"zz","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [messages] and [require_alias] request flag is [true] and [messages] is not an alias","index_uuid":"_na_","index":"messages"}}},
    {"delete":{"_index":"messages","_id":"zz","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [messages]","resource.type":"index_or_alias","resource.id":"messages","index_uuid":"_na_","index":"messages"}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 2);
  ASSERT_EQ(results.size(), 2U);
  for (const auto& result : results) {
    EXPECT_EQ(result.outcome, ItemOutcome::retry);
    EXPECT_NE(result.reason.find("index_not_found_exception"), std::string::npos) << result.reason;
  }
}

TEST(EsClientBulkResponse, AWriteBlockIsWaitedForNotRejected) {
  // Set by a resync's hand-over, or by the engine's flood-stage disk protection: both pass.
  const std::string body = R"({"errors":true,"took":0,"items":[
    {"index":{"_index":"messages_v1","_id":"1","status":403,"error":{"type":"cluster_block_exception","reason":"index [messages_v1] blocked by: [FORBIDDEN/8/index write (api)];"}}},
    {"index":{"_index":"messages_v1","_id":"2","status":403,"error":{"type":"security_exception","reason":"action [indices:data/write/bulk[s]] is unauthorized"}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 2);
  ASSERT_EQ(results.size(), 2U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::retry);
  EXPECT_NE(results[0].reason.find("cluster_block_exception"), std::string::npos) << results[0].reason;
  EXPECT_EQ(results[1].outcome, ItemOutcome::reject);  // any other 403 is not a block that passes
}

TEST(EsClientBulkResponse, OverloadAndUnavailableShardsAreRetriedWithTheirReason) {
  const std::string body = R"({"errors":true,"took":1,"items":[
    {"index":{"_index":"messages_v1","_id":"1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, primary_operation_bytes=1024, max_coordinating_and_primary_bytes=1024]"}}},
    {"index":{"_index":"messages_v1","_id":"2","status":503,"error":{"type":"unavailable_shards_exception","reason":"[messages_v1][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest [[messages_v1][0]] containing [index {[messages_v1][2]}]]"}}},
    {"index":{"_index":"messages_v1","_id":"3","status":502,"error":{"type":"node_disconnected_exception","reason":"node disconnected"}}},
    {"delete":{"_index":"messages_v1","_id":"4","status":504,"error":{"type":"process_cluster_event_timeout_exception","reason":"timed out"}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 4);
  ASSERT_EQ(results.size(), 4U);
  for (const auto& result : results) EXPECT_EQ(result.outcome, ItemOutcome::retry) << result.reason;
  EXPECT_EQ(results[0].status, 429);
  EXPECT_NE(results[0].reason.find("es_rejected_execution_exception: rejected execution"), std::string::npos);
  EXPECT_NE(results[1].reason.find("unavailable_shards_exception"), std::string::npos);
}

TEST(EsClientBulkResponse, OtherServerErrorsOfAnItemAreRejected) {
  const std::string body =
      R"({"errors":true,"items":[{"index":{"_index":"messages_v1","_id":"1","status":500,"error":{"type":"illegal_state_exception","reason":"boom"}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 1);
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::reject);
  EXPECT_EQ(results[0].reason, "500 illegal_state_exception: boom");
}

TEST(EsClientBulkResponse, MixedFilteredResponseIsClassifiedPerItemInOrder) {
  // What EsClient actually receives: the response filtered to status, error and result.
  const std::string body =
      R"({"items":[{"index":{"result":"updated","status":200}},{"index":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a\"b]: version conflict, current version [5] is higher than the one provided [4]","index_uuid":"54KcPddxR22j1O5iQUq2Ug","shard":"0","index":"probe_x_v1"}}},{"index":{"status":400,"error":{"type":"document_parsing_exception","reason":"[1:6] failed to parse field [n] of type [long] in document with id 'c'. Preview of field's value: 'abc'","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},{"delete":{"result":"not_found","status":404}},{"index":{"status":429,"error":{"type":"circuit_breaking_exception","reason":"[parent] Data too large"}}},{"index":{"result":"created","status":201}},{"delete":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a\"b]: version conflict, current version [5] is higher than the one provided [3]","index_uuid":"54KcPddxR22j1O5iQUq2Ug","shard":"0","index":"probe_x_v1"}}}]})";
  const auto results = EsClient::parse_bulk_response(body, 7);
  ASSERT_EQ(results.size(), 7U);
  const std::vector<ItemOutcome> expected = {ItemOutcome::done, ItemOutcome::stale, ItemOutcome::reject,
                                             ItemOutcome::done, ItemOutcome::retry, ItemOutcome::done,
                                             ItemOutcome::stale};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(results[i].outcome, expected[i]) << "item " << i << ": " << results[i].reason;
  }
  EXPECT_EQ(results[4].reason, "429 circuit_breaking_exception: [parent] Data too large");
}

TEST(EsClientBulkResponse, UnreadableResponseOrWrongItemCountMakesEveryItemRetry) {
  for (const std::string& body : {std::string("<html>502 Bad Gateway</html>"), std::string(R"({"took":1})"),
                                  std::string(R"({"items":[{"index":{"status":201}}]})")}) {
    const auto results = EsClient::parse_bulk_response(body, 2);
    ASSERT_EQ(results.size(), 2U) << body;
    for (const auto& result : results) {
      EXPECT_EQ(result.outcome, ItemOutcome::retry) << body;
      EXPECT_FALSE(result.reason.empty());
    }
  }
}

TEST(EsClientBulkResponse, ItemWithoutStatusIsRetried) {
  const auto results = EsClient::parse_bulk_response(R"({"items":[{"index":{"result":"created"}}, 5]})", 2);
  ASSERT_EQ(results.size(), 2U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::retry);
  EXPECT_EQ(results[1].outcome, ItemOutcome::retry);
}

// ---- client options ----

TEST(EsClientOptions, GzipAndCredentialsComeFromTheConfig) {
  SearchConfig config;
  config.url = "https://search.example:9200";
  config.request_timeout = std::chrono::milliseconds(1234);
  config.ca_file = "/etc/ca.pem";
  config.verify_tls = false;
  auto options = EsClient::client_options(config, false);
  EXPECT_FALSE(options.gzip_requests);
  EXPECT_FALSE(options.username.has_value());
  EXPECT_FALSE(options.api_key.has_value());
  EXPECT_EQ(options.request_timeout, std::chrono::milliseconds(1234));
  EXPECT_EQ(options.ca_file, "/etc/ca.pem");
  EXPECT_FALSE(options.verify_tls);

  config.username = "elastic";
  config.password = "s3cret";
  config.api_key = "key-1";
  options = EsClient::client_options(config, true);
  EXPECT_TRUE(options.gzip_requests);
  EXPECT_EQ(options.username, "elastic");
  EXPECT_EQ(options.password, "s3cret");
  EXPECT_EQ(options.api_key, "key-1");
}

// ---- against a fake engine on loopback ----

struct Seen {
  std::string method;
  std::string path;
  std::string body;  // decompressed by httplib
  std::string content_type;
  std::string content_encoding;
  std::string require_alias;  // the query parameter
};

class EsClientFakeEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  SearchConfig config() const {
    SearchConfig config;
    config.url = "http://127.0.0.1:" + std::to_string(port_);
    config.username = "elastic";
    config.password = "pw-secret";
    config.request_timeout = std::chrono::seconds(5);
    return config;
  }

  // Registers a handler that also records the request, before the answer leaves.
  void on(const std::string& method, const std::string& path, httplib::Server::Handler handler) {
    auto recorded = [this, handler = std::move(handler)](const httplib::Request& request,
                                                         httplib::Response& response) {
      {
        std::lock_guard lock(mutex_);
        seen_.push_back({request.method, request.path, request.body, request.get_header_value("Content-Type"),
                         request.get_header_value("Content-Encoding"),
                         request.get_param_value("require_alias")});
      }
      handler(request, response);
    };
    if (method == "GET") server_.Get(path, recorded);
    if (method == "POST") server_.Post(path, recorded);
    if (method == "PUT") server_.Put(path, recorded);
  }

  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

TEST_F(EsClientFakeEngine, BulkPostsNdjsonAndRequiresAnAlias) {
  on("POST", "/_bulk", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"items":[{"index":{"result":"created","status":201}}]})", "application/json");
  });
  EsClient client(config(), false);
  const std::vector<BulkAction> actions = {index_action("1", 1, R"({"n":1})")};
  const auto results = client.bulk(pointers(actions));
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::done);
  const auto requests = seen();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].content_type, "application/x-ndjson");
  EXPECT_EQ(requests[0].content_encoding, "");
  EXPECT_EQ(requests[0].require_alias, "true");
  EXPECT_EQ(requests[0].body, EsClient::bulk_body(pointers(actions)));
}

TEST_F(EsClientFakeEngine, GzipCompressesLargeBulkBodies) {
  on("POST", "/_bulk", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"items":[{"index":{"result":"created","status":201}}]})", "application/json");
  });
  EsClient client(config(), true);
  const std::vector<BulkAction> actions = {
      index_action("1", 1, json{{"text", std::string(4096, 'x')}}.dump())};
  ASSERT_EQ(client.bulk(pointers(actions))[0].outcome, ItemOutcome::done);
  const auto requests = seen();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].content_encoding, "gzip");
  EXPECT_EQ(requests[0].body, EsClient::bulk_body(pointers(actions))) << "the engine sees the same NDJSON";
}

TEST_F(EsClientFakeEngine, WholeRequestOverloadOrServerErrorMakesEveryItemRetry) {
  long status = 0;
  on("POST", "/_bulk", [&status](const httplib::Request&, httplib::Response& response) {
    response.status = static_cast<int>(status);
    response.set_content(
        R"({"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429})",
        "application/json");
  });
  EsClient client(config(), false);
  const std::vector<BulkAction> actions = {index_action("1", 1, "{}"), delete_action("2", 2)};
  for (const long answer : {429L, 502L, 503L, 500L, 413L}) {
    status = answer;
    const auto results = client.bulk(pointers(actions));
    ASSERT_EQ(results.size(), 2U);
    for (const auto& result : results) {
      EXPECT_EQ(result.outcome, ItemOutcome::retry) << answer;
      EXPECT_EQ(result.status, answer) << "413 tells the caller to send fewer actions at once";
      EXPECT_NE(result.reason.find("queue full"), std::string::npos) << result.reason;
    }
  }
}

TEST_F(EsClientFakeEngine, WholeRequestClientErrorThrowsAPermanentErrorWithTheEngineReason) {
  on("POST", "/_bulk", [](const httplib::Request&, httplib::Response& response) {
    response.status = 400;
    response.set_content(
        R"({"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"}],"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400})",
        "application/json");
  });
  EsClient client(config(), false);
  const std::vector<BulkAction> actions = {delete_action("1", 1)};
  try {
    client.bulk(pointers(actions));
    FAIL() << "expected SearchRequestError";
  } catch (const SearchRequestError& e) {
    EXPECT_FALSE(e.retriable());
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.error_type(), "illegal_argument_exception");
    EXPECT_EQ(e.reason(), "The bulk request must be terminated by a newline [\\n]");
    EXPECT_EQ(std::string(e.what()).find("pw-secret"), std::string::npos) << e.what();
  }
}

TEST_F(EsClientFakeEngine, ActionsTheEngineWouldRefuseAsAWholeAreRejectedWithoutBeingSent) {
  on("POST", "/_bulk", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"items":[{"index":{"result":"created","status":201}}]})", "application/json");
  });
  EsClient client(config(), false);
  const std::vector<BulkAction> actions = {index_action(std::string(EsClient::kMaxIdBytes + 1, 'a'), 1, "{}"),
                                           index_action("ok", 1, "{}"), delete_action("negative", -1),
                                           index_action("no-source", 1, ""), delete_action("", 1)};
  const auto results = client.bulk(pointers(actions));
  ASSERT_EQ(results.size(), 5U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::reject);
  EXPECT_NE(results[0].reason.find("513 bytes"), std::string::npos) << results[0].reason;
  EXPECT_EQ(results[1].outcome, ItemOutcome::done);
  EXPECT_EQ(results[2].outcome, ItemOutcome::reject);
  EXPECT_EQ(results[3].outcome, ItemOutcome::reject);
  EXPECT_EQ(results[4].outcome, ItemOutcome::reject);
  const auto requests = seen();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(lines_of(requests[0].body).size(), 2U) << "only the valid action is sent";
}

TEST_F(EsClientFakeEngine, EnsureIndexAcceptsTheIndexAnotherInstanceCreatedMeanwhile) {
  int alias_lookups = 0;
  on("GET", "/_alias/messages", [&alias_lookups](const httplib::Request&, httplib::Response& response) {
    // Missing on the first look; there once the other instance's create went through.
    if (alias_lookups++ == 0) {
      response.status = 404;
      response.set_content(R"({"error":"alias [messages] missing","status":404})", "application/json");
    } else {
      response.set_content(R"({"messages_v1":{"aliases":{"messages":{}}}})", "application/json");
    }
  });
  on("GET", "/messages", [](const httplib::Request&, httplib::Response& response) {
    response.status = 404;
    response.set_content(
        R"({"error":{"type":"index_not_found_exception","reason":"no such index [messages]"},"status":404})",
        "application/json");
  });
  json created;
  on("PUT", "/messages_v1", [&created](const httplib::Request& request, httplib::Response& response) {
    created = json::parse(request.body);
    response.status = 400;
    response.set_content(
        R"({"error":{"root_cause":[{"type":"resource_already_exists_exception","reason":"index [messages_v1/54Kc] already exists"}],"type":"resource_already_exists_exception","reason":"index [messages_v1/54Kc] already exists","index":"messages_v1"},"status":400})",
        "application/json");
  });
  // The index found behind the alias is adopted: its gc_deletes is already delete_retention.
  on("GET", "/messages_v1/_settings/index.gc_deletes", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"messages_v1":{"settings":{"index":{"gc_deletes":"86400000ms"}}}})", "application/json");
  });
  on("PUT", "/messages_v1/_mapping", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"acknowledged":true})", "application/json");
  });
  EsClient client(config(), false);
  EXPECT_NO_THROW(client.ensure_index(
      {"messages", R"({"number_of_shards":1})", R"({"properties":{"text":{"type":"text"}}})"}));
  EXPECT_EQ(alias_lookups, 2);
  EXPECT_EQ(created["aliases"], json({{"messages", json::object()}}));
  EXPECT_EQ(created["settings"]["number_of_shards"], 1);
  EXPECT_EQ(created["settings"]["index.gc_deletes"], "86400000ms");
  EXPECT_EQ(created["mappings"]["properties"]["syncline_version"]["type"], "long");
  EXPECT_EQ(created["mappings"]["properties"]["text"]["type"], "text");
}

TEST_F(EsClientFakeEngine, EnsureIndexSetsGcDeletesToTheDeleteRetentionAndRefusesAnotherVersionMapping) {
  json created;
  on("GET", "/_alias/messages",
     [](const httplib::Request&, httplib::Response& response) { response.status = 404; });
  on("GET", "/messages", [](const httplib::Request&, httplib::Response& response) { response.status = 404; });
  on("PUT", "/messages_v1", [&created](const httplib::Request& request, httplib::Response& response) {
    created = json::parse(request.body);
    response.set_content(R"({"acknowledged":true})", "application/json");
  });
  EsClient client(config(), false, std::chrono::hours(2));
  client.ensure_index({"messages", R"({"index":{"gc_deletes":"7d"}})", "{}"});
  // delete_retention_ms is the one horizon: a gc_deletes in settings gives way to it.
  EXPECT_EQ(created["settings"]["index.gc_deletes"], "7200000ms") << created.dump();
  EXPECT_FALSE(created["settings"]["index"].contains("gc_deletes")) << created.dump();

  EXPECT_THROW(
      client.ensure_index({"messages", "{}", R"({"properties":{"syncline_version":{"type":"keyword"}}})"}),
      IndexSetupError);
}

TEST_F(EsClientFakeEngine, FetchOfAnOverloadedEngineThrowsRetriable) {
  on("POST", "/_mget", [](const httplib::Request&, httplib::Response& response) {
    response.status = 503;
    response.set_content(R"({"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503})",
                         "application/json");
  });
  EsClient client(config(), false);
  try {
    client.fetch({{"messages", "1"}});
    FAIL() << "expected SearchUnavailable";
  } catch (const SearchUnavailable& e) {
    EXPECT_TRUE(e.retriable());
    EXPECT_EQ(e.status(), 503);
    EXPECT_NE(std::string(e.what()).find("cluster_block_exception"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(client.fetch({}).empty()) << "nothing to look up, no request";
}

TEST(EsClientTransport, UnreachableEngineIsRetriableAndNeverShowsCredentials) {
  SearchConfig config;
  config.url = "http://user:pw-in-url@127.0.0.1:1";
  config.username = "elastic";
  config.password = "pw-secret";
  config.api_key = "api-key-secret";
  EsClient client(config, true);

  const std::vector<BulkAction> actions = {index_action("1", 1, "{}")};
  const auto results = client.bulk(pointers(actions));
  ASSERT_EQ(results.size(), 1U);
  EXPECT_EQ(results[0].outcome, ItemOutcome::retry);
  EXPECT_EQ(results[0].status, 0);
  for (const std::string secret : {"pw-in-url", "pw-secret", "api-key-secret"}) {
    EXPECT_EQ(results[0].reason.find(secret), std::string::npos) << results[0].reason;
  }

  try {
    client.fetch({{"messages", "1"}});
    FAIL() << "expected SearchUnavailable";
  } catch (const SearchUnavailable& e) {
    EXPECT_EQ(e.status(), 0);
    for (const std::string secret : {"pw-in-url", "pw-secret", "api-key-secret"}) {
      EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(client.ensure_index({"messages", "{}", "{}"}), SearchUnavailable);
  EXPECT_THROW(client.delete_older({.index = "messages", .table = "public.t", .version = 5}), SearchUnavailable);
  EXPECT_FALSE(client.healthy());
}

}  // namespace
}  // namespace syncline::es_projector
