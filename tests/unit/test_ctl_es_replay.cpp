// The decisions of syncline-ctl's search-index replay: versioned index names, where a run starts
// (new shadow, resumed shadow, retired indices), when a position is caught up, and its output.
#include <gtest/gtest.h>

#include "common/iso_time.hpp"
#include "tools/ctl/es_replay.hpp"

namespace syncline::ctl::es_replay {
namespace {

using namespace std::chrono_literals;
using es_projector::IndexInfo;
using nlohmann::json;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 56));

TEST(CtlEsReplay, index_version_reads_only_alias_underscore_v_and_digits) {
  EXPECT_EQ(index_version("messages", "messages_v1"), 1);
  EXPECT_EQ(index_version("messages", "messages_v12"), 12);
  EXPECT_EQ(index_version("messages", "messages"), std::nullopt);
  EXPECT_EQ(index_version("messages", "messages_v"), std::nullopt);
  EXPECT_EQ(index_version("messages", "messages_v0"), std::nullopt);
  EXPECT_EQ(index_version("messages", "messages_v01"), std::nullopt);
  EXPECT_EQ(index_version("messages", "messages_v2x"), std::nullopt);
  EXPECT_EQ(index_version("messages", "messages_archive_v2"), std::nullopt);
  EXPECT_EQ(index_version("messages", "other_v2"), std::nullopt);
  EXPECT_EQ(versioned_index("messages", 3), "messages_v3");
  EXPECT_EQ(shadow_group("syncline-es-projector", "messages", 3), "syncline-es-projector.resync.messages.v3");
}

TEST(CtlEsReplay, a_first_replay_builds_the_next_version_beside_the_live_index) {
  const auto layout = plan_layout("m", "m_v1", {{"m_v1", {"m"}, json::object()}}, kNow);
  EXPECT_EQ(layout.live, "m_v1");
  EXPECT_EQ(layout.shadow, "m_v2");
  EXPECT_EQ(layout.shadow_version, 2);
  EXPECT_FALSE(layout.resume);
  EXPECT_TRUE(layout.delete_now.empty());
  EXPECT_TRUE(layout.mark_retired.empty());
}

TEST(CtlEsReplay, an_unaliased_index_above_the_live_one_is_resumed) {
  const auto layout =
      plan_layout("m", "m_v1", {{"m_v1", {"m"}, json::object()}, {"m_v2", {}, json::object()}}, kNow);
  EXPECT_TRUE(layout.resume);
  EXPECT_EQ(layout.shadow, "m_v2");
  EXPECT_EQ(layout.shadow_version, 2);
}

TEST(CtlEsReplay, retired_indices_are_deleted_after_their_grace_and_unmarked_older_ones_are_marked) {
  const json over = retirement_meta({"2026-01-01T00:00:00.000Z", format_iso_utc(kNow - 1s), "m_v3"});
  const json pending = retirement_meta({"2026-01-01T00:00:00.000Z", format_iso_utc(kNow + 1h), "m_v3"});
  const json kept = retirement_meta({"2026-01-01T00:00:00.000Z", std::nullopt, "m_v3"});
  const auto layout = plan_layout("m", "m_v4",
                                  {{"m_v1", {}, over},
                                   {"m_v2", {}, pending},
                                   {"m_v3", {}, json::object()},
                                   {"m_v4", {"m", "other"}, json::object()},
                                   {"m_v5", {}, kept},  // above the live one: a shadow, whatever its _meta
                                   {"m_old", {}, json::object()}},
                                  kNow);
  EXPECT_EQ(layout.delete_now, std::vector<std::string>{"m_v1"});
  EXPECT_EQ(layout.mark_retired, std::vector<std::string>{"m_v3"});
  EXPECT_TRUE(layout.resume);
  EXPECT_EQ(layout.shadow, "m_v5");
}

TEST(CtlEsReplay, an_alias_on_an_unversioned_index_gets_v1_as_shadow) {
  const auto layout = plan_layout("m", "legacy", {}, kNow);
  EXPECT_EQ(layout.shadow, "m_v1");
  EXPECT_FALSE(layout.resume);
}

TEST(CtlEsReplay, an_alias_over_two_indices_is_refused) {
  EXPECT_THROW(
      plan_layout("m", "m_v1", {{"m_v1", {"m"}, json::object()}, {"m_v2", {"m"}, json::object()}}, kNow),
      std::runtime_error);
}

TEST(CtlEsReplay, the_retirement_mark_reads_back_as_written) {
  const auto read =
      retirement_of(retirement_meta({"2026-11-22T10:00:00.000Z", "2026-11-22T10:05:00.000Z", "m_v2"}));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->retired_at, "2026-11-22T10:00:00.000Z");
  EXPECT_EQ(read->delete_after, "2026-11-22T10:05:00.000Z");
  EXPECT_EQ(read->replaced_by, "m_v2");
  EXPECT_FALSE(retirement_of(retirement_meta({"t", std::nullopt, "m_v2"}))->delete_after.has_value());
  EXPECT_FALSE(retirement_of(json{{"owner", "team"}}).has_value());
  EXPECT_FALSE(retirement_of(json()).has_value());
}

TEST(CtlEsReplay, caught_up_means_every_target_partition_at_or_past_its_target) {
  const kafka::TopicPartition a{"t", 0};
  const kafka::TopicPartition b{"t", 1};
  EXPECT_TRUE(reached({{a, 10}, {b, 5}}, {{a, 10}, {b, 4}}));
  EXPECT_FALSE(reached({{a, 9}, {b, 5}}, {{a, 10}, {b, 4}}));
  EXPECT_FALSE(reached({{a, 10}}, {{a, 10}, {b, 0}}))
      << "a partition without a position has not reached anything";
  EXPECT_TRUE(reached({{a, 1}}, {}));
}

TEST(CtlEsReplay, the_json_result_names_projection_sink_indices_events_seconds_and_resumed) {
  EsReplayResult result;
  result.projection = "messages";
  result.alias = "messages";
  result.old_index = "messages_v1";
  result.new_index = "messages_v2";
  result.events = 1234;
  result.seconds = 2.5;
  result.resumed = true;
  result.swapped = true;
  result.old_index_state = "deleted";
  const json out = result_json(result);
  EXPECT_EQ(out["projection"], "messages");
  EXPECT_EQ(out["sink"], "es");
  EXPECT_EQ(out["old_index"], "messages_v1");
  EXPECT_EQ(out["new_index"], "messages_v2");
  EXPECT_EQ(out["events"], 1234);
  EXPECT_EQ(out["seconds"], 2.5);
  EXPECT_EQ(out["resumed"], true);
  EXPECT_EQ(out["old_index_state"], "deleted");

  const std::string text = result_text(result, Style(false));
  EXPECT_NE(text.find("messages now points at messages_v2 (was messages_v1), resumed"), std::string::npos)
      << text;
  EXPECT_NE(text.find("1,234 replayed"), std::string::npos) << text;
  EXPECT_NE(text.find("messages_v1 deleted"), std::string::npos) << text;

  result.swapped = false;
  result.interrupted = true;
  result.old_index_state = "live";
  const std::string interrupted = result_text(result, Style(false));
  EXPECT_NE(interrupted.find("still points at messages_v1"), std::string::npos) << interrupted;
  EXPECT_NE(interrupted.find("run the replay again to resume"), std::string::npos) << interrupted;
}

}  // namespace
}  // namespace syncline::ctl::es_replay
