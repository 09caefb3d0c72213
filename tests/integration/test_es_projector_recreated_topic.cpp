// A topic deleted and recreated under the es-projector (issue 14 point 5, search side). The
// es-projector keeps its positions as the consumer group's offsets in Kafka, which the broker
// deletes with the topic: the recreated topic is read from its start, never from the old offset,
// whether it is longer or shorter than the old one and whether the projector runs or not
// (docs/ES_PROJECTOR.md, "Recreated topics").
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/http_client.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class EsProjectorRecreatedTopic : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_kafka());
    ASSERT_TRUE(require_search());
  }
  void TearDown() override { search_.del("/" + alias_ + "_v1"); }

  // One transaction of `count` events, ids `<prefix>-0` ...: one document each.
  void publish(const std::string& prefix, int count, std::uint64_t first_lsn) {
    EventPublisher publisher;
    publisher.begin();
    for (int i = 0; i < count; ++i) {
      publisher.send(topic_, "a",
                     domain_event(fmt::format("{}-{}", prefix, i), "Noted", "note", "a", {{"n", i}},
                                  first_lsn + static_cast<std::uint64_t>(i), 0)
                         .dump(),
                     "Noted");
    }
    publisher.commit();
  }
  std::int64_t documents() {
    search_.post("/" + alias_ + "/_refresh", "");
    const auto response = search_.get("/" + alias_ + "/_count");
    return response.status == 200 ? json::parse(response.body)["count"].get<std::int64_t>() : -1;
  }
  bool has(const std::string& id) { return search_.get("/" + alias_ + "/_doc/" + id).status == 200; }
  ::testing::AssertionResult projected(std::int64_t count, std::int64_t next_offset) {
    return poll_until(
        [&] { return documents() == count && committed_offsets(projector_.name(), topic_) == next_offset; }, 60s,
        fmt::format("{} documents and committed offset {}", count, next_offset));
  }

  // 10 documents indexed, the group's offset 11 (10 records and the commit marker).
  void project_the_first_topic() {
    EventPublisher::create_topics({topic_}, 1);
    publish("old", 10, 0x1000000);
    projector_.start();
    ASSERT_TRUE(projector_.wait_ready());
    ASSERT_TRUE(projected(10, 11)) << projector_.process().log_tail();
  }

  std::string alias_ = unique_name("recreated");
  PgProjectorHarness projector_{
      "esp_recreated", "",
      fmt::format("  mappings:\n    - index: {}\n      aggregate_types: [note]\n      events:\n"
                  "        - {{types: Noted, id: id, fields: {{n: payload.n}}}}\n",
                  alias_),
      {}, ProjectorKind::es};
  std::string topic_ = projector_.event_topic("note");
  http::HttpClient search_{http::ClientOptions{.base_url = stack_env().search_url}};
};

TEST_F(EsProjectorRecreatedTopic, a_stopped_projector_reads_a_longer_recreated_topic_from_its_start) {
  project_the_first_topic();
  ASSERT_EQ(projector_.stop(), 0);
  ASSERT_TRUE(recreate_topic(topic_));
  publish("new", 25, 0x2000000);  // offsets 0-24 and the marker: the old offset 11 lies inside it

  projector_.start();
  ASSERT_TRUE(projected(10 + 25, 26)) << projector_.process().log_tail();
  for (const char* id : {"new-0", "new-10", "new-24"}) EXPECT_TRUE(has(id)) << id;
  EXPECT_EQ(projector_.stop(), 0);
}

TEST_F(EsProjectorRecreatedTopic, a_running_projector_reads_a_shorter_recreated_topic_from_its_start) {
  project_the_first_topic();
  ASSERT_TRUE(recreate_topic(topic_));
  publish("new", 3, 0x2000000);  // offsets 0-2 and the marker: below the old offset 11

  ASSERT_TRUE(projected(10 + 3, 4)) << projector_.process().log_tail();
  EXPECT_TRUE(has("new-0"));
  EXPECT_EQ(projector_.stop(), 0);
}

TEST_F(EsProjectorRecreatedTopic, a_running_projector_reads_a_longer_recreated_topic_from_its_start) {
  project_the_first_topic();
  ASSERT_TRUE(recreate_topic(topic_));
  publish("new", 25, 0x2000000);  // the old offset 11 lies inside the new topic

  ASSERT_TRUE(projected(10 + 25, 26)) << projector_.process().log_tail();
  for (const char* id : {"new-0", "new-10", "new-24"}) EXPECT_TRUE(has(id)) << id;
  EXPECT_EQ(projector_.stop(), 0);
}

}  // namespace
}  // namespace syncline::test
