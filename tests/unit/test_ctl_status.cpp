// syncline-ctl status and offsets, their pure parts: lag, the LSN binary search, the problems a
// report holds (the exit rule), its JSON against schemas/status.schema.json, the human tables,
// and which projections a pg reset moves too.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "common/json_schema.hpp"
#include "tools/ctl/offsets_reset.hpp"
#include "tools/ctl/pipeline_state.hpp"
#include "tools/ctl/status_report.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::ctl {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Lag

TEST(CtlLag, is_the_end_minus_the_held_offset) {
  EXPECT_EQ(partition_lag(5, {0, 17}), 12);
  EXPECT_EQ(partition_lag(17, {0, 17}), 0);
}

TEST(CtlLag, counts_everything_the_partition_holds_when_nothing_is_held) {
  EXPECT_EQ(partition_lag(std::nullopt, {3, 17}), 14);
  EXPECT_EQ(partition_lag(std::nullopt, {0, 0}), 0);
}

TEST(CtlLag, counts_from_the_low_watermark_when_the_held_records_were_deleted) {
  EXPECT_EQ(partition_lag(2, {10, 17}), 7);
}

TEST(CtlLag, is_never_negative) {
  EXPECT_EQ(partition_lag(20, {0, 17}), 0);  // a topic recreated under a stored offset
}

// ---------------------------------------------------------------------------------------------
// Offset by LSN

// A partition's records: offset -> commit LSN (gaps are transaction markers or aborted records).
class FakePartition {
 public:
  explicit FakePartition(std::map<std::int64_t, std::optional<std::uint64_t>> records) : records_(std::move(records)) {}
  RecordProbe probe() {
    return [this](std::int64_t offset) -> std::optional<ProbedRecord> {
      ++probes_;
      const auto it = records_.lower_bound(offset);
      if (it == records_.end()) return std::nullopt;
      return ProbedRecord{it->first, it->second ? std::optional<Lsn>(Lsn(*it->second)) : std::nullopt};
    };
  }
  int probes() const { return probes_; }

 private:
  std::map<std::int64_t, std::optional<std::uint64_t>> records_;
  int probes_ = 0;
};

// Offsets 0..2 one transaction (LSN 0x100), marker at 3; 4..5 (0x200), marker 6; 7 (0x300), marker 8.
FakePartition three_transactions() {
  return FakePartition({{0, 0x100}, {1, 0x100}, {2, 0x100}, {4, 0x200}, {5, 0x200}, {7, 0x300}});
}

TEST(CtlLsnSearch, finds_the_first_record_of_the_transaction_at_or_after_the_lsn) {
  const kafka::WatermarkOffsets range{0, 9};
  auto partition = three_transactions();
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x100), range, partition.probe()), 0);
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x200), range, partition.probe()), 4);
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x150), range, partition.probe()), 4);  // between: the next one
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x300), range, partition.probe()), 7);
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x50), range, partition.probe()), 0);
}

TEST(CtlLsnSearch, answers_the_end_when_every_record_is_older) {
  auto partition = three_transactions();
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x301), {0, 9}, partition.probe()), 9);
}

TEST(CtlLsnSearch, an_empty_partition_answers_its_end) {
  FakePartition empty({});
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x1), {5, 5}, empty.probe()), 5);
}

TEST(CtlLsnSearch, starts_at_the_low_watermark) {
  // Records before offset 4 were deleted; the probe never looks below low.
  FakePartition partition({{4, 0x200}, {5, 0x200}, {7, 0x300}});
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x100), {4, 9}, partition.probe()), 4);
}

TEST(CtlLsnSearch, takes_logarithmically_many_probes) {
  std::map<std::int64_t, std::optional<std::uint64_t>> records;
  for (std::int64_t offset = 0; offset < 100'000; offset += 2) records[offset] = 0x1000 + static_cast<std::uint64_t>(offset);
  FakePartition partition(std::move(records));
  EXPECT_EQ(first_offset_at_or_after_lsn(Lsn(0x1000 + 77'777), {0, 100'000}, partition.probe()), 77'778);
  EXPECT_LE(partition.probes(), 20);
}

TEST(CtlLsnSearch, a_record_without_a_commit_lsn_is_an_error_naming_its_offset) {
  FakePartition partition({{0, 0x100}, {1, std::nullopt}, {2, 0x300}});
  try {
    (void)first_offset_at_or_after_lsn(Lsn(0x300), {0, 3}, partition.probe());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("offset 1"), std::string::npos) << error.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Groups and projections

ProjectionInfo projection(std::string name, Sink sink, ProjectionKind kind, std::string group,
                          std::vector<std::string> topics) {
  return ProjectionInfo{std::move(name), sink, kind, std::move(group), std::move(topics), {}, ""};
}

TEST(CtlGroups, one_group_per_sink_with_the_union_of_its_projections_topics) {
  const std::vector<ProjectionInfo> all{
      projection("users", Sink::es, ProjectionKind::es_index, "es-g", {"p.public.users"}),
      projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"p.public.a", "p.public.b"}),
      projection("totals", Sink::pg, ProjectionKind::pg_sql, "pg-g", {"p.events.order", "p.public.a"})};
  const auto groups = configured_groups(all);
  ASSERT_EQ(groups.size(), 2U);
  EXPECT_EQ(groups[0].group, "pg-g");
  EXPECT_EQ(groups[0].projections, (std::vector<std::string>{"mirror", "totals"}));
  EXPECT_EQ(groups[0].topics, (std::vector<std::string>{"p.events.order", "p.public.a", "p.public.b"}));
  EXPECT_EQ(groups[1].group, "es-g");
  EXPECT_EQ(groups[1].sink, Sink::es);
}

TEST(CtlOffsetsReset, a_pg_reset_also_moves_the_pg_projections_reading_the_same_topics) {
  const std::vector<ProjectionInfo> all{
      projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"p.public.a", "p.public.b"}),
      projection("totals", Sink::pg, ProjectionKind::pg_sql, "pg-g", {"p.public.a"}),
      projection("other", Sink::pg, ProjectionKind::pg_sql, "pg-g", {"p.events.x"}),
      projection("a_index", Sink::es, ProjectionKind::es_index, "es-g", {"p.public.a"})};
  const auto sharing = projections_sharing_topics(all, all[0]);
  ASSERT_EQ(sharing.size(), 1U);
  EXPECT_EQ(sharing[0].name, "totals");
  EXPECT_TRUE(projections_sharing_topics(all, all[3]).empty());  // the es group is its own
}

TEST(CtlOffsetsReset, moving_backwards_means_some_partition_goes_below_what_it_held) {
  ResetPlan plan{projection("m", Sink::pg, ProjectionKind::pg_mirror, "g", {"t"}), {}, {}, {}, {}, {}};
  plan.partitions.push_back({{"t", 0}, {0, 10}, 10, 10, 10});
  plan.partitions.push_back({{"t", 1}, {0, 10}, std::nullopt, std::nullopt, 0});
  EXPECT_FALSE(plan.moves_backwards());
  plan.partitions.push_back({{"t", 2}, {0, 10}, 8, 8, 3});
  EXPECT_TRUE(plan.moves_backwards());
}

TEST(CtlOffsetsReset, warns_of_the_projections_also_moved_and_of_sql_ones_applying_events_twice) {
  const auto mirror = projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"p.public.a"});
  const auto totals = projection("totals", Sink::pg, ProjectionKind::pg_sql, "pg-g", {"p.public.a"});
  ResetPlan plan{mirror, {}, {}, {}, {totals}, {}};
  plan.partitions.push_back({{"p.public.a", 0}, {0, 10}, 10, 10, 10});
  auto warnings = reset_warnings(plan);
  ASSERT_EQ(warnings.size(), 1U);
  EXPECT_NE(warnings[0].find("also moves totals (pg sql)"), std::string::npos) << warnings[0];
  plan.partitions[0].after = 4;  // backwards: totals applies offsets 4-9 again
  warnings = reset_warnings(plan);
  ASSERT_EQ(warnings.size(), 2U);
  EXPECT_NE(warnings[1].find("SQL projection(s) totals"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[1].find("not idempotent"), std::string::npos) << warnings[1];
  plan.missing_topics.push_back("p.public.b");
  EXPECT_EQ(reset_warnings(plan).size(), 3U);
}

TEST(CtlOffsetsReset, a_mirror_alone_moving_backwards_needs_no_warning) {
  ResetPlan plan{projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"t"}), {}, {}, {}, {}, {}};
  plan.partitions.push_back({{"t", 0}, {0, 10}, 10, 10, 0});
  EXPECT_TRUE(reset_warnings(plan).empty());
}

TEST(CtlOffsetsReset, the_human_plan_shows_before_after_and_what_is_applied_again) {
  ResetPlan plan{projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"t"}), {}, {}, {}, {}, {}};
  plan.target.mode = ResetTarget::Mode::lsn;
  plan.target.lsn = Lsn(0x16B3800);
  plan.partitions.push_back({{"t", 0}, {0, 10}, 10, std::nullopt, 4});
  plan.partitions.push_back({{"t", 1}, {0, 10}, std::nullopt, std::nullopt, 7});
  const auto text = render_reset(plan, true, false, Style(false));
  for (const char* expected : {"to LSN 0/16B3800", "HELD BEFORE", "KAFKA BEFORE", "6 to apply again", "7 skipped",
                               "none", "Dry run: nothing was changed."})
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " in\n" << text;
  const auto document = reset_json(plan, true, false);
  EXPECT_EQ(document["target"], (nlohmann::json{{"mode", "lsn"}, {"lsn", "0/16B3800"}}));
  EXPECT_EQ(document["partitions"][1]["before"], nullptr);
  EXPECT_EQ(document["partitions"][0]["after"], 4);
}

// ---------------------------------------------------------------------------------------------
// The report: problems, JSON, tables

constexpr auto kNow = std::chrono::sys_days{std::chrono::year{2026} / 11 / 22} + 10h;

StatusReport sample_report() {
  StatusReport report;
  report.generated_at = kNow;
  GroupReport pg{{"pg-g", Sink::pg, {"mirror"}, {"p.public.a"}}, std::nullopt, {}};
  pg.state.partitions.push_back({{"p.public.a", 0}, {0, 17}, HeldPosition{5, Lsn(0x16B3800), "2026-11-22T09:59:50.000000Z"}, 5});
  pg.state.partitions.push_back({{"p.public.a", 1}, {2, 9}, std::nullopt, std::nullopt});
  GroupReport es{{"es-g", Sink::es, {"users"}, {"p.public.users"}}, std::nullopt, {}};
  es.state.partitions.push_back({{"p.public.users", 0}, {0, 4}, HeldPosition{4, Lsn(0x100), "2026-11-22T09:00:00.000Z"}, 4});
  es.state.missing_topics.push_back("p.public.gone");
  report.groups = {pg, es};
  const std::vector<ProjectionInfo> projections{
      projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"p.public.a"}),
      projection("users", Sink::es, ProjectionKind::es_index, "es-g", {"p.public.users"})};
  report.projections = project_reports(projections, report.groups, kNow);
  report.slot = {"syncline", true, true, true, 4096, Lsn(0x100), Lsn(0x200), "reserved", 1ULL << 30, std::nullopt};
  report.dead_letters = {{"producer", "p.dlq.producer", false, 0, std::nullopt},
                         {"pg-projector", "p.dlq.pg-projector", true, 3, std::nullopt}};
  return report;
}

TEST(CtlStatusReport, a_projections_lag_and_freshness_come_from_its_topics_partitions) {
  const auto report = sample_report();
  ASSERT_EQ(report.projections.size(), 2U);
  const auto& mirror = report.projections[0];
  EXPECT_EQ(mirror.lag, 12 + 7);
  EXPECT_EQ(mirror.applied.commit_lsn, Lsn(0x16B3800));
  ASSERT_TRUE(mirror.age_seconds.has_value());
  EXPECT_DOUBLE_EQ(*mirror.age_seconds, 10.0);
  EXPECT_EQ(report.projections[1].lag, 0);
  EXPECT_DOUBLE_EQ(*report.projections[1].age_seconds, 3600.0);
}

TEST(CtlStatusReport, without_limits_a_healthy_report_has_no_problem) {
  EXPECT_TRUE(find_problems(sample_report(), {}).empty());
}

TEST(CtlStatusReport, a_partition_over_max_lag_is_a_problem) {
  const auto report = sample_report();
  EXPECT_TRUE(find_problems(report, {12, std::nullopt}).empty());
  const auto problems = find_problems(report, {11, std::nullopt});
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("p.public.a/0"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("--max-lag 11"), std::string::npos) << problems[0];
}

TEST(CtlStatusReport, age_over_max_age_is_a_problem_only_while_events_are_pending) {
  const auto report = sample_report();
  // users: an hour old but caught up (an idle source); mirror: 10 s old with 19 pending.
  EXPECT_TRUE(find_problems(report, {std::nullopt, 60.0}).empty());
  const auto problems = find_problems(report, {std::nullopt, 5.0});
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("projection mirror"), std::string::npos) << problems[0];
}

TEST(CtlStatusReport, a_missing_inactive_or_overfull_slot_is_a_problem) {
  auto report = sample_report();
  report.slot.active = false;
  EXPECT_EQ(find_problems(report, {}).size(), 1U);
  report.slot.active = true;
  report.slot.retained_wal_bytes = static_cast<std::int64_t>(report.slot.warning_bytes);
  ASSERT_EQ(find_problems(report, {}).size(), 1U);
  EXPECT_NE(find_problems(report, {})[0].find("warning threshold"), std::string::npos);
  report.slot.exists = false;
  ASSERT_EQ(find_problems(report, {}).size(), 1U);
  EXPECT_NE(find_problems(report, {})[0].find("does not exist"), std::string::npos);
  report.slot.configured = false;  // no write_db: not checked, not a problem
  EXPECT_TRUE(find_problems(report, {}).empty());
}

TEST(CtlStatusReport, an_unreachable_store_is_a_problem_and_its_section_says_why) {
  auto report = sample_report();
  report.groups[0].error = "read PostgreSQL: connection refused";
  report.projections = project_reports({projection("mirror", Sink::pg, ProjectionKind::pg_mirror, "pg-g", {"p.public.a"})},
                                       report.groups, kNow);
  const auto problems = find_problems(report, {});
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("connection refused"), std::string::npos);
  EXPECT_FALSE(report.projections[0].lag.has_value());
  const auto text = render_status(report, {}, Style(false));
  EXPECT_NE(text.find("pg group pg-g (mirror): read PostgreSQL: connection refused"), std::string::npos) << text;
}

nlohmann::json status_schema_violations(const nlohmann::json& document) {
  const auto schema = JsonSchema::load(std::filesystem::path(SYNCLINE_SOURCE_DIR) / "schemas" / "status.schema.json");
  nlohmann::json violations = nlohmann::json::array();
  for (const auto& violation : schema.validate(document))
    violations.push_back(format_json_path(violation.path) + ": " + violation.message);
  return violations;
}

TEST(CtlStatusReport, its_json_validates_against_the_status_schema) {
  auto report = sample_report();
  const auto healthy = status_json(report, {});
  EXPECT_EQ(status_schema_violations(healthy), nlohmann::json::array()) << healthy.dump(2);
  EXPECT_EQ(healthy["ok"], true);
  EXPECT_EQ(healthy["groups"][0]["lag"], 19);
  EXPECT_EQ(healthy["groups"][0]["partitions"][1]["held"], nullptr);
  EXPECT_EQ(healthy["projections"][0]["last_commit_lsn"], "0/16B3800");
  EXPECT_EQ(healthy["generated_at"], "2026-11-22T10:00:00.000Z");

  report.groups[1].error = "Kafka: timed out";
  report.slot = {"syncline", true, false, false, std::nullopt, std::nullopt, std::nullopt, std::nullopt, 1, std::nullopt};
  const auto broken = status_json(report, {3, 1.5});
  EXPECT_EQ(status_schema_violations(broken), nlohmann::json::array()) << broken.dump(2);
  EXPECT_EQ(broken["ok"], false);
  EXPECT_EQ(broken["groups"][1]["lag"], nullptr);
  EXPECT_EQ(broken["limits"]["max_lag"], 3);
}

TEST(CtlStatusReport, the_schema_rejects_a_document_of_another_shape) {
  auto document = status_json(sample_report(), {});
  document["groups"][0]["partitions"][0]["lag"] = "12";
  document.erase("slot");
  EXPECT_EQ(status_schema_violations(document).size(), 2U);
}

TEST(CtlStatusReport, the_human_report_has_a_section_per_part_and_says_none_for_nothing_held) {
  const auto text = render_status(sample_report(), {}, Style(false));
  for (const char* expected : {"Consumer groups", "Replication slot", "Freshness", "Dead letters", "No problems found.",
                               "0/16B3800", "p.public.gone does not exist yet", "4.0 KiB", "(no topic yet)"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " in\n" << text;
  }
  // Partition 1 of p.public.a holds nothing: "none", and everything it has (9 - 2) is pending.
  std::string line;
  for (std::size_t start = 0; start < text.size();) {
    const auto end = text.find('\n', start);
    const auto candidate = text.substr(start, end - start);
    if (candidate.find("p.public.a") != std::string::npos && candidate.find("none") != std::string::npos)
      line = candidate;
    start = end == std::string::npos ? text.size() : end + 1;
  }
  ASSERT_FALSE(line.empty()) << text;
  EXPECT_EQ(line.back(), '7') << line;
  EXPECT_EQ(text.find("\x1b["), std::string::npos);  // no colour without a terminal
}

TEST(CtlStatusReport, the_human_report_lists_the_problems_last) {
  auto report = sample_report();
  report.slot.active = false;
  const auto text = render_status(report, {}, Style(false));
  EXPECT_NE(text.find("1 problem(s):\n  - replication slot syncline is not active"), std::string::npos) << text;
}

}  // namespace
}  // namespace syncline::ctl
