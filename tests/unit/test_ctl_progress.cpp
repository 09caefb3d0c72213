// Unit tests of syncline-ctl's progress reporting and projection catalogue.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "common/config.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/projections.hpp"

namespace syncline::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A clock the test moves by hand.
struct ManualClock {
  std::chrono::steady_clock::time_point now{};
  Progress::Clock fn() {
    return [this] { return now; };
  }
};

std::string captured(std::FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text += static_cast<char>(c);
  return text;
}

TEST(CtlProgress, line_shows_done_total_rate_and_eta) {
  ManualClock clock;
  Progress progress("events replayed", false, std::chrono::seconds(5), stderr, clock.fn());
  clock.now += std::chrono::seconds(10);
  const std::string line = progress.line(5000, 10000);
  EXPECT_THAT(line, HasSubstr("5,000/10,000 events replayed"));
  EXPECT_THAT(line, HasSubstr(" 50%"));
  EXPECT_THAT(line, HasSubstr("500/s"));
  EXPECT_THAT(line, HasSubstr("ETA 10.0 s"));
}

TEST(CtlProgress, line_without_total_has_no_eta) {
  ManualClock clock;
  Progress progress("rows", false, std::chrono::seconds(5), stderr, clock.fn());
  clock.now += std::chrono::seconds(2);
  const std::string line = progress.line(300, std::nullopt);
  EXPECT_THAT(line, HasSubstr("300 rows"));
  EXPECT_THAT(line, Not(HasSubstr("ETA")));
}

TEST(CtlProgress, off_a_terminal_prints_plain_lines_at_most_once_per_interval) {
  ManualClock clock;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  {
    Progress progress("events", false, std::chrono::seconds(5), out, clock.fn());
    progress.update(1, 100);  // first update draws
    clock.now += std::chrono::seconds(1);
    progress.update(2, 100);  // too soon
    clock.now += std::chrono::seconds(5);
    progress.update(50, 100);
    progress.finish("done: 100 events");
  }
  const std::string text = captured(out);
  std::fclose(out);
  EXPECT_THAT(text, Not(HasSubstr("\r")));
  EXPECT_THAT(text, Not(HasSubstr("\x1b[")));
  EXPECT_THAT(text, HasSubstr("1/100 events"));
  EXPECT_THAT(text, Not(HasSubstr("2/100 events")));
  EXPECT_THAT(text, HasSubstr("50/100 events"));
  EXPECT_THAT(text, HasSubstr("done: 100 events\n"));
}

TEST(CtlProgress, on_a_terminal_redraws_in_place_and_clears_the_bar_at_the_end) {
  ManualClock clock;
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  {
    Progress progress("events", true, std::chrono::seconds(5), out, clock.fn());
    progress.update(10, 100);
    clock.now += std::chrono::milliseconds(150);
    progress.update(20, 100);
    progress.finish("replayed 100 events");
  }
  const std::string text = captured(out);
  std::fclose(out);
  EXPECT_THAT(text, HasSubstr("\r[##"));
  EXPECT_THAT(text, HasSubstr("20/100 events"));
  EXPECT_THAT(text, HasSubstr("\r\x1b[Kreplayed 100 events\n"));
}

Config catalogue_config() {
  return config_from_string(R"(
kafka: {bootstrap_servers: "127.0.0.1:9092", topic_prefix: app}
read_db: {dsn: "host=x"}
search: {url: "http://127.0.0.1:9200"}
pg_projector:
  group_id: pg-group
  mirror: {schema: mirror, tables: [public.users, public.teams]}
  projections:
    - name: conversation_summary
      aggregate_types: [conversation]
      events: [{types: MessageSent, sql: "SELECT 1"}]
es_projector:
  group_id: es-group
  indices: [{name: users}, {name: messages}]
  mirror: [{table: public.users, index: users}]
  mappings:
    - index: messages
      aggregate_types: [conversation]
      events: [{types: MessageSent, id: payload.message_id, fields: {body: payload.body}}]
)",
                            "catalogue.yaml");
}

TEST(CtlProjections, lists_every_projection_with_its_group_topics_and_target) {
  const auto projections = list_projections(catalogue_config());
  ASSERT_EQ(projections.size(), 4u);
  EXPECT_EQ(projections[0].name, "mirror");
  EXPECT_EQ(projections[0].kind, ProjectionKind::pg_mirror);
  EXPECT_EQ(projections[0].group, "pg-group");
  EXPECT_EQ(projections[0].target, "mirror");
  EXPECT_THAT(projections[0].topics, ElementsAre("app.public.teams", "app.public.users"));
  EXPECT_EQ(projections[1].name, "conversation_summary");
  EXPECT_THAT(projections[1].topics, ElementsAre("app.events.conversation"));
  EXPECT_EQ(projections[2].name, "users");
  EXPECT_EQ(projections[2].sink, Sink::es);
  EXPECT_EQ(projections[2].group, "es-group");
  EXPECT_THAT(projections[2].topics, ElementsAre("app.public.users"));
  EXPECT_EQ(projections[3].name, "messages");
  EXPECT_THAT(projections[3].topics, ElementsAre("app.events.conversation"));
}

TEST(CtlProjections, find_names_the_known_projections_when_one_is_unknown) {
  const auto projections = list_projections(catalogue_config());
  EXPECT_EQ(find_projection(projections, "messages").sink, Sink::es);
  try {
    find_projection(projections, "nope");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& error) {
    EXPECT_THAT(error.what(), HasSubstr("no projection 'nope'"));
    EXPECT_THAT(error.what(), HasSubstr("conversation_summary (pg)"));
    EXPECT_THAT(error.what(), HasSubstr("messages (es)"));
  }
  EXPECT_THROW(find_projection(projections, "mirror", Sink::es), std::invalid_argument);
}

}  // namespace
}  // namespace syncline::ctl
