// Poison events: what can never apply (not JSON, a missing JSON path, a constraint violation)
// goes to the dead-letter topic with its original bytes and the reason, and the events after it
// are applied.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/integration/counter_workload.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

std::string header(const ConsumedRecord& record, std::string_view name) {
  for (const auto& h : record.headers)
    if (h.key == name) return h.value;
  return {};
}

TEST(PgProjectorDeadLetters, poison_events_are_dead_lettered_with_the_reason_and_the_next_events_apply) {
  ASSERT_TRUE(require_kafka());
  ASSERT_TRUE(require_read_pg());
  CounterWorkload workload(unique_name("counters"));
  PgProjectorHarness harness("pgp_poison", "", workload.projector_yaml(100));
  const auto topic = harness.event_topic("counter");
  EventPublisher::create_topics({topic}, 1);
  harness.start();
  ASSERT_TRUE(harness.wait_ready());
  EventPublisher publisher;
  const auto good = [&](int i, const std::string& aggregate) {
    return domain_event("g" + std::to_string(i), "Incremented", "counter", aggregate, {{"by", 1}},
                        0x2000000 + static_cast<std::uint64_t>(i), 0)
        .dump();
  };
  publisher.begin();
  publisher.send(topic, "a", good(1, "a"), "Incremented");
  publisher.send(topic, "a", "{not json", "Incremented");                             // not JSON
  publisher.send(topic, "a", domain_event("m", "Incremented", "counter", "a", {{"other", 1}}, 0x2000100, 0).dump(),
                 "Incremented");                                                       // no payload.by
  publisher.send(topic, "b", domain_event("n", "Incremented", "counter", "b", {{"by", nullptr}}, 0x2000101, 0).dump(),
                 "Incremented");                                                       // NOT NULL violated
  publisher.send(topic, "a", good(2, "a"), "Incremented");
  publisher.send(topic, "c", good(3, "c"), "Ignored");  // a type no projection wants: skipped
  publisher.commit();

  ASSERT_TRUE(poll_until([&] { return workload.applied_sum(harness.read_db()) >= 2; }, 60s, "the good events"))
      << harness.process().log_tail();
  const auto letters = read_committed_records({harness.dead_letter_topic()}, 3, 60s);
  ASSERT_EQ(letters.size(), 3u);
  EXPECT_EQ(letters[0].value, "{not json");
  EXPECT_NE(header(letters[0], "syncline-dlq-reason").find("not a JSON envelope"), std::string::npos)
      << header(letters[0], "syncline-dlq-reason");
  EXPECT_NE(header(letters[1], "syncline-dlq-reason").find("payload.by"), std::string::npos)
      << header(letters[1], "syncline-dlq-reason");
  EXPECT_NE(header(letters[2], "syncline-dlq-reason").find("23502"), std::string::npos)
      << header(letters[2], "syncline-dlq-reason");
  EXPECT_EQ(header(letters[2], "syncline-dlq-projection"), "counters");
  EXPECT_EQ(header(letters[2], "syncline-dlq-topic"), topic);
  EXPECT_EQ(header(letters[2], "syncline-dlq-partition"), "0");
  EXPECT_EQ(header(letters[2], "syncline-dlq-offset"), "3");
  EXPECT_EQ(header(letters[2], "syncline-event-type"), "Incremented");  // the original headers are kept

  const auto counters = harness.read_db().exec("SELECT id, n FROM public." + workload.table() + " ORDER BY id");
  ASSERT_EQ(counters.rows(), 1);
  EXPECT_EQ(counters.value(0, 0), "a");
  EXPECT_EQ(counters.value(0, 1), "2");
  ASSERT_TRUE(poll_until([&] { return harness.caught_up(); }, 60s, "queue_size 0"));
  const auto status = harness.status();
  const auto& projection = status["projections"][0];
  EXPECT_EQ(projection["applied"], 2);
  EXPECT_EQ(projection["dead_lettered"], 3);
  EXPECT_EQ(projection["skipped"], 1);
  EXPECT_EQ(harness.stop(), 0);
  workload.drop(harness.read_db());
}

}  // namespace
}  // namespace syncline::test
