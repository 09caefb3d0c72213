// Unit tests of `syncline-ctl resync replay` for read PostgreSQL without a database: the names of
// shadow and retired schemas, the --grace syntax, and what the replay refuses before it starts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/config.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/pg_replay.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/replay.hpp"

namespace syncline::ctl {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Config config_of(const std::string& pg_projector) {
  LoadOptions options;
  options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return config_from_string("kafka: {bootstrap_servers: 'k:9092', topic_prefix: app}\n"
                            "read_db: {dsn: 'postgresql://u@h/db'}\n"
                            "pg_projector:\n" +
                                pg_projector,
                            "test.yaml", options);
}

std::string refusal(const Config& config, const std::string& name) {
  const auto projections = list_projections(config);
  try {
    pg_replay_target(config, find_projection(projections, name));
  } catch (const Refused& refused) {
    return refused.what();
  }
  ADD_FAILURE() << "not refused: " << name;
  return {};
}

TEST(CtlPgReplayNames, derive_the_shadow_the_retired_schema_and_the_replay_group) {
  EXPECT_EQ(shadow_schema_name("mirror"), "mirror__resync");
  EXPECT_EQ(retired_schema_name("mirror", 1795336567), "mirror__retired_1795336567");
  EXPECT_EQ(retired_schema_time("mirror__retired_1795336567", "mirror"), 1795336567);
  EXPECT_EQ(replay_group_name("syncline-pg-projector", "counters"), "syncline-pg-projector.resync.counters");
}

TEST(CtlPgReplayNames, read_a_swap_time_only_from_the_schema_s_own_retired_names) {
  EXPECT_EQ(retired_schema_time("mirror__retired_", "mirror"), std::nullopt);
  EXPECT_EQ(retired_schema_time("mirror__retired_12x", "mirror"), std::nullopt);
  EXPECT_EQ(retired_schema_time("mirror2__retired_12", "mirror"), std::nullopt);
  EXPECT_EQ(retired_schema_time("mirror__resync", "mirror"), std::nullopt);
}

TEST(CtlReplayDuration, reads_seconds_minutes_hours_and_milliseconds) {
  EXPECT_EQ(parse_duration("0"), 0ms);
  EXPECT_EQ(parse_duration("90"), 90s);
  EXPECT_EQ(parse_duration("90s"), 90s);
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("5min"), 5min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_THROW(parse_duration(""), std::invalid_argument);
  EXPECT_THROW(parse_duration("5 m"), std::invalid_argument);
  EXPECT_THROW(parse_duration("m5"), std::invalid_argument);
  EXPECT_THROW(parse_duration("-1s"), std::invalid_argument);
}

TEST(CtlPgReplayTarget, the_mirror_replays_its_schema) {
  const auto config = config_of("  group_id: g\n  mirror: {schema: read_mirror, tables: [public.users]}\n");
  const auto projections = list_projections(config);
  const auto target = pg_replay_target(config, find_projection(projections, "mirror"));
  EXPECT_EQ(target.schema, "read_mirror");
  EXPECT_EQ(target.shadow, "read_mirror__resync");
  EXPECT_EQ(target.replay_group, "g.resync.mirror");
}

TEST(CtlPgReplayTarget, a_sql_projection_with_a_schema_and_the_placeholder_replays_its_schema) {
  const auto config = config_of(
      "  projections:\n"
      "    - {name: counters, schema: rm, topics: t, setup: 'CREATE TABLE IF NOT EXISTS {{schema}}.c (n int)',\n"
      "       events: [{types: A, sql: 'UPDATE {{schema}}.c SET n = n + 1'}]}\n");
  const auto projections = list_projections(config);
  EXPECT_EQ(pg_replay_target(config, find_projection(projections, "counters")).shadow, "rm__resync");
}

TEST(CtlPgReplayTarget, refuses_a_sql_projection_without_schema_or_placeholder) {
  EXPECT_THAT(refusal(config_of("  projections:\n"
                                "    - {name: p, topics: t, events: [{types: A, sql: 'UPDATE public.c SET n = 1'}]}\n"),
                      "p"),
              HasSubstr("has no 'schema' key"));
  EXPECT_THAT(refusal(config_of("  projections:\n"
                                "    - {name: p, schema: rm, topics: t, events: [{types: A, sql: 'UPDATE rm.c SET n = 1'}]}\n"),
                      "p"),
              HasSubstr("does not write {{schema}}"));
  EXPECT_THAT(refusal(config_of("  projections:\n"
                                "    - {name: p, schema: public, topics: t,\n"
                                "       events: [{types: A, sql: 'UPDATE {{schema}}.c SET n = 1'}]}\n"),
                      "p"),
              HasSubstr("public"));
}

TEST(CtlPgReplayTarget, refuses_a_schema_that_two_projections_write) {
  const auto config = config_of(
      "  mirror: {schema: shared, tables: [public.users]}\n"
      "  projections:\n"
      "    - {name: p, schema: shared, topics: t, events: [{types: A, sql: 'UPDATE {{schema}}.c SET n = 1'}]}\n");
  EXPECT_THAT(refusal(config, "mirror"), HasSubstr("several projections (mirror, p)"));
  EXPECT_THAT(refusal(config, "p"), HasSubstr("belong to one projection only"));
}

TEST(CtlPgReplayTarget, refuses_a_schema_name_too_long_for_its_retired_name) {
  const std::string long_name(50, 'm');
  EXPECT_THAT(refusal(config_of("  mirror: {schema: " + long_name + ", tables: [public.users]}\n"), "mirror"),
              HasSubstr("too long"));
}

TEST(CtlReplayResult, json_names_every_field) {
  ReplayResult result;
  result.projection = "mirror";
  result.sink = "pg";
  result.old_target = "mirror__retired_1";
  result.new_target = "mirror";
  result.old_dropped = true;
  result.events = 12;
  result.seconds = 1.5;
  testing::internal::CaptureStdout();
  print_replay_result(result, true);
  const auto out = nlohmann::json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(out["projection"], "mirror");
  EXPECT_EQ(out["sink"], "pg");
  EXPECT_EQ(out["old_target"], "mirror__retired_1");
  EXPECT_EQ(out["new_target"], "mirror");
  EXPECT_EQ(out["old_dropped"], true);
  EXPECT_EQ(out["events"], 12);
  EXPECT_EQ(out["seconds"], 1.5);
  EXPECT_EQ(out["resumed"], false);
}

}  // namespace
}  // namespace syncline::ctl
