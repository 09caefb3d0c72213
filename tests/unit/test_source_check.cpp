// Unit tests of the source-identity rules: which sources the producer refuses to stream from, and
// what it expects the resent stream to begin with.
#include <gtest/gtest.h>

#include "producer/initial_snapshot.hpp"
#include "producer/source_check.hpp"

namespace syncline::producer {
namespace {

SourcePosition stored_at(Lsn commit, Lsn end, std::string system_id = "7000", std::uint32_t timeline = 1) {
  SourcePosition position{commit, end, 1, true};
  position.source = {std::move(system_id), timeline};
  position.last_published = PublishedTransaction{commit, 42};
  return position;
}

SourceFacts facts_now(std::string system_id = "7000", std::uint32_t timeline = 1, Lsn wal = Lsn(0x9000)) {
  SourceFacts facts;
  facts.now = {std::move(system_id), timeline};
  facts.server_wal = wal;
  facts.slot.exists = true;
  facts.slot_name = "orders";
  return facts;
}

void expect_refused(const std::optional<SourcePosition>& stored, const SourceFacts& facts, std::string_view says) {
  const auto problem = source_problem(stored, facts);
  ASSERT_TRUE(problem.has_value()) << "not refused, but it should say: " << says;
  EXPECT_NE(problem->find(says), std::string::npos) << *problem;
  EXPECT_NE(problem->find(kNewSourceCommand), std::string::npos) << "the recovery command is named: " << *problem;
}

TEST(SourceProblem, the_same_system_on_the_same_timeline_with_its_slot_streams) {
  EXPECT_EQ(source_problem(stored_at(Lsn(0x100), Lsn(0x130)), facts_now()), std::nullopt);
}

TEST(SourceProblem, nothing_stored_a_fresh_position_and_an_older_record_without_identity_are_not_checked) {
  auto facts = facts_now("8000");
  facts.slot.exists = false;
  EXPECT_EQ(source_problem(std::nullopt, facts), std::nullopt);
  SourcePosition fresh;
  fresh.fresh = true;
  fresh.source = {"7000", 1};
  EXPECT_EQ(source_problem(fresh, facts), std::nullopt);
  facts.slot.exists = true;
  EXPECT_EQ(source_problem(stored_at(Lsn(0x100), Lsn(0x130), ""), facts), std::nullopt);
}

TEST(SourceProblem, another_system_is_refused) {
  expect_refused(stored_at(Lsn(0x100), Lsn(0x130)), facts_now("8000"), "another system");
}

TEST(SourceProblem, a_missing_slot_with_a_stored_position_is_refused_not_recreated) {
  auto facts = facts_now();
  facts.slot.exists = false;
  expect_refused(stored_at(Lsn(0x100), Lsn(0x130)), facts, "replication slot \"orders\" is missing");
}

TEST(SourceProblem, a_server_whose_wal_ends_before_the_published_position_is_refused) {
  expect_refused(stored_at(Lsn(0x100), Lsn(0x130)), facts_now("7000", 1, Lsn(0x120)), "restored from a backup");
}

TEST(SourceProblem, an_older_timeline_is_refused) {
  expect_refused(stored_at(Lsn(0x100), Lsn(0x130), "7000", 3), facts_now("7000", 2), "older backup");
}

TEST(SourceProblem, a_newer_timeline_that_branched_off_after_the_position_is_followed) {
  auto facts = facts_now("7000", 2);
  facts.history = parse_timeline_history("1\t0/5000\tno recovery target specified\n");
  EXPECT_EQ(source_problem(stored_at(Lsn(0x100), Lsn(0x130)), facts), std::nullopt);
}

TEST(SourceProblem, a_newer_timeline_that_branched_off_before_the_position_is_refused) {
  auto facts = facts_now("7000", 2);
  facts.history = parse_timeline_history("1\t0/120\tbefore transaction 800\n");
  expect_refused(stored_at(Lsn(0x100), Lsn(0x130)), facts, "switched from timeline 1 to 2 at 0/120");
  facts.history = parse_timeline_history("# other\n");
  expect_refused(stored_at(Lsn(0x100), Lsn(0x130)), facts, "does not contain timeline 1");
}

TEST(TimelineHistory, parses_switches_and_refuses_a_malformed_line) {
  const auto history = parse_timeline_history("1\t0/3000158\tno recovery target specified\n\n2\tA/1F000000\tx\n");
  ASSERT_EQ(history.size(), 2U);
  EXPECT_EQ(history[0].timeline, 1U);
  EXPECT_EQ(history[0].switchpoint, Lsn::from_string("0/3000158"));
  EXPECT_EQ(history[1].switchpoint, Lsn::from_string("A/1F000000"));
  EXPECT_THROW(parse_timeline_history("one\t0/1\n"), std::invalid_argument);
}

TEST(ExpectedFirstTransaction, is_the_last_published_one_unless_the_slot_confirmed_past_it) {
  const auto stored = stored_at(Lsn(0x100), Lsn(0x130));
  EXPECT_EQ(expected_first_transaction(stored, Lsn(0x80)), stored.last_published);
  EXPECT_EQ(expected_first_transaction(stored, Lsn(0x100)), stored.last_published);
  EXPECT_EQ(expected_first_transaction(stored, Lsn(0x130)), std::nullopt);
  EXPECT_EQ(expected_first_transaction(std::nullopt, Lsn(0x80)), std::nullopt);
}

// --- Which tables a snapshot truncates first, and where it resumes ---

SnapshotProgress at(std::size_t table, std::optional<nlohmann::json> key, bool replace = false) {
  return SnapshotProgress{SnapshotProgress::State::running, table, std::move(key), 0, replace};
}

TEST(SnapshotTablePlan, a_keyed_table_resumes_after_its_stored_key_without_a_truncate) {
  const auto plan = plan_table(true, at(1, nlohmann::json{{"id", "9"}}), 1, false);
  EXPECT_TRUE(plan.keyed);
  EXPECT_FALSE(plan.truncate);
  EXPECT_EQ(plan.after_key, (nlohmann::json{{"id", "9"}}));
  EXPECT_EQ(plan_table(true, at(1, nlohmann::json{{"id", "9"}}), 2, false).after_key, std::nullopt)
      << "the stored key belongs to another table";
}

TEST(SnapshotTablePlan, a_table_without_a_key_is_read_again_after_a_truncate_unless_at_the_stream_start) {
  EXPECT_TRUE(plan_table(false, at(0, std::nullopt), 0, false).truncate);
  EXPECT_FALSE(plan_table(false, at(0, std::nullopt), 0, true).truncate);
}

TEST(SnapshotTablePlan, a_replacing_snapshot_truncates_each_table_before_its_first_row_only) {
  EXPECT_TRUE(plan_table(true, at(0, std::nullopt, true), 0, true).truncate);
  EXPECT_FALSE(plan_table(true, at(0, nlohmann::json{{"id", "3"}}, true), 0, false).truncate)
      << "its first rows are in Kafka already: a second truncate would remove them";
}

}  // namespace
}  // namespace syncline::producer
