// The pg-projector's topic identity decisions: where a stored partition starts, and when a
// recreated or rewritten topic stops the projector instead of being skipped.
#include "consumers/pg/topic_identity.hpp"

#include <gtest/gtest.h>

namespace syncline::pg_projector {
namespace {

const kafka::TopicPartition kPartition{"syncline.events.counter", 0};
const std::string kRecovery = recovery_commands("g", kPartition.topic, {"counters"});

std::string refusal_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const TopicRewritten& error) {
    return error.what();
  }
  return {};
}

TEST(TopicIdentity, the_recovery_names_the_group_the_projection_the_topic_and_earliest) {
  EXPECT_EQ(kRecovery,
            "To read the topic again from its start, stop every syncline-pg-projector of group g and run: "
            "syncline-ctl offsets reset --projection counters --topic syncline.events.counter --to-earliest");
  EXPECT_NE(recovery_commands("g", "t", {"a", "b"}).find("it moves every pg projection reading the topic: a, b"),
            std::string::npos);
}

TEST(TopicIdentity, a_stored_offset_beyond_the_end_of_the_partition_is_refused_naming_the_offsets) {
  const std::string message = refusal_of([] { plan_start(kPartition, {11, std::nullopt}, {0, 4}, kRecovery); });
  EXPECT_NE(message.find("topic syncline.events.counter partition 0 was deleted and recreated"), std::string::npos)
      << message;
  EXPECT_NE(message.find("stored next offset 11 is beyond the partition's end (log start 0, end 4)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(kRecovery), std::string::npos) << message;
}

TEST(TopicIdentity, a_stored_offset_at_the_end_starts_there) {
  const auto plan = plan_start(kPartition, {4, std::nullopt}, {0, 4}, kRecovery);
  EXPECT_EQ(plan.start, 4);
  EXPECT_FALSE(plan.verify);
}

TEST(TopicIdentity, a_readable_last_applied_record_is_read_again_first) {
  const auto plan = plan_start(kPartition, {11, Fingerprint{9, "old-9"}}, {0, 26}, kRecovery);
  EXPECT_EQ(plan.start, 9);
  ASSERT_TRUE(plan.verify);
  EXPECT_EQ(plan.verify->expected, (Fingerprint{9, "old-9"}));
  EXPECT_EQ(plan.verify->stored_next, 11);
}

TEST(TopicIdentity, a_last_applied_record_below_the_log_start_cannot_be_checked) {
  const auto plan = plan_start(kPartition, {11, Fingerprint{9, "old-9"}}, {10, 26}, kRecovery);
  EXPECT_EQ(plan.start, 11);
  EXPECT_FALSE(plan.verify);
}

TEST(TopicIdentity, a_fingerprint_at_or_past_the_stored_offset_is_ignored) {
  const auto plan = plan_start(kPartition, {11, Fingerprint{11, "x"}}, {0, 26}, kRecovery);
  EXPECT_EQ(plan.start, 11);
  EXPECT_FALSE(plan.verify);
}

TEST(TopicIdentity, the_same_event_id_at_the_fingerprint_offset_passes) {
  const PendingFingerprint pending{{9, "old-9"}, 11, {0, 26}};
  EXPECT_TRUE(check_fingerprint(kPartition, pending, 9, std::string("old-9"), kRecovery));
}

TEST(TopicIdentity, another_event_id_at_the_fingerprint_offset_is_refused_naming_both_ids) {
  const PendingFingerprint pending{{9, "old-9"}, 11, {0, 26}};
  const std::string message =
      refusal_of([&] { check_fingerprint(kPartition, pending, 9, std::string("new-9"), kRecovery); });
  EXPECT_NE(message.find("the record at offset 9, the last one applied (stored next offset 11; log start 0, end 26), "
                         "was event old-9 and is now event new-9"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(kRecovery), std::string::npos) << message;
  EXPECT_NE(refusal_of([&] { check_fingerprint(kPartition, pending, 9, std::nullopt, kRecovery); })
                .find("is now a record without an event id"),
            std::string::npos);
}

TEST(TopicIdentity, a_fingerprint_record_that_is_gone_cannot_be_compared_and_passes) {
  // Compacted away, or a transaction marker in a rewritten log: the first record is past it.
  const PendingFingerprint pending{{9, "old-9"}, 11, {0, 26}};
  EXPECT_TRUE(check_fingerprint(kPartition, pending, 10, std::string("other"), kRecovery));
  EXPECT_FALSE(check_fingerprint(kPartition, pending, 8, std::string("other"), kRecovery));
}

TEST(TopicIdentity, a_delivered_offset_below_the_floor_is_refused) {
  EXPECT_NO_THROW(check_delivery(kPartition, std::nullopt, 0, std::nullopt, kRecovery));
  EXPECT_NO_THROW(check_delivery(kPartition, 11, 11, 11, kRecovery));
  EXPECT_NO_THROW(check_delivery(kPartition, 11, 13, 11, kRecovery));  // past control records
  const std::string message = refusal_of([] { check_delivery(kPartition, 11, 0, 11, kRecovery); });
  EXPECT_NE(message.find("the consumer delivered offset 0 where the projector expected 11 or later (stored next "
                         "offset 11)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(kRecovery), std::string::npos) << message;
}

}  // namespace
}  // namespace syncline::pg_projector
