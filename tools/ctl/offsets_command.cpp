// syncline-ctl offsets show / reset: where each projection reads, and moving it (earliest, latest,
// a time, a source LSN) while its projector is stopped.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include "common/iso_time.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/offsets_reset.hpp"
#include "tools/ctl/pipeline_state.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

namespace {

std::optional<Sink> parse_sink(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text == "pg" ? Sink::pg : Sink::es;  // CLI::IsMember allows nothing else
}

// ---------------------------------------------------------------------------------------------
// show

struct ShowOptions {
  std::string projection;
  std::string sink;
  bool json = false;
};

int run_show(const GlobalOptions& global, const ShowOptions& options) {
  const Config config = load_ctl_config(global);
  const auto all = list_projections(config);
  std::vector<ProjectionInfo> chosen;
  if (options.projection.empty()) {
    chosen = all;
  } else {
    chosen.push_back(find_projection(all, options.projection, parse_sink(options.sink)));
  }
  kafka::AdminClient admin(admin_properties(config.kafka));
  const TopicCatalog catalog = read_topic_catalog(admin);
  std::unique_ptr<pg::PgConnection> read_db;

  nlohmann::json document{{"projections", nlohmann::json::array()}};
  const Style style = Style::for_stdout();
  Table table({"PROJECTION", "SINK", "GROUP", "TOPIC", "PARTITION", "HELD", "KAFKA COMMITTED", "LOW", "HIGH", "LAG"});
  for (std::size_t c = 4; c < 10; ++c) table.align_right(c);
  std::string notes;
  for (const auto& projection : chosen) {
    if (projection.sink == Sink::pg && !read_db)
      read_db = std::make_unique<pg::PgConnection>(config.require_read_db().dsn, std::chrono::seconds(5));
    const GroupState state =
        read_group_state(admin, catalog, projection.sink, projection.group, projection.topics, read_db.get());
    nlohmann::json partitions = nlohmann::json::array();
    for (const auto& partition : state.partitions) {
      const auto held = partition.held_offset();
      table.add_row({projection.name, std::string(to_string(projection.sink)), projection.group,
                     partition.partition.topic, std::to_string(partition.partition.partition),
                     format_optional(held, "none"), format_optional(partition.kafka_committed, "none"),
                     format_count(partition.watermarks.low), format_count(partition.watermarks.high),
                     partition.lag() > 0 ? style.yellow(format_count(partition.lag())) : format_count(partition.lag())});
      partitions.push_back({{"topic", partition.partition.topic},
                            {"partition", partition.partition.partition},
                            {"held", held ? nlohmann::json(*held) : nlohmann::json(nullptr)},
                            {"kafka_committed", partition.kafka_committed ? nlohmann::json(*partition.kafka_committed)
                                                                          : nlohmann::json(nullptr)},
                            {"low", partition.watermarks.low},
                            {"high", partition.watermarks.high},
                            {"lag", partition.lag()}});
    }
    for (const auto& topic : state.missing_topics)
      notes += style.dim(fmt::format("{}: topic {} does not exist yet", projection.name, topic)) + '\n';
    document["projections"].push_back({{"name", projection.name},
                                       {"sink", to_string(projection.sink)},
                                       {"group", projection.group},
                                       {"missing_topics", state.missing_topics},
                                       {"partitions", std::move(partitions)}});
  }
  if (options.json) {
    std::fputs((document.dump(2) + '\n').c_str(), stdout);
  } else {
    std::string out = table.empty() ? style.dim("no partition: no projection configured, or no topic yet") + '\n'
                                    : table.render(style);
    out += notes;
    out += style.dim("HELD: where the projector resumes (pg: read PostgreSQL syncline.offsets; es: the committed "
                     "offset). KAFKA COMMITTED: the group's offset in Kafka (pg: for lag tools only).") +
           '\n';
    std::fputs(out.c_str(), stdout);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// reset

struct ResetOptions {
  std::string projection;
  std::string sink;
  std::vector<std::string> topics;  // empty: every topic of the projection
  bool earliest = false;
  bool latest = false;
  std::string time;
  std::string lsn;
  bool dry_run = false;
  bool json = false;
};

ResetTarget parse_target(const ResetOptions& options) {
  ResetTarget target;
  if (options.earliest) {
    target.mode = ResetTarget::Mode::earliest;
  } else if (options.latest) {
    target.mode = ResetTarget::Mode::latest;
  } else if (!options.time.empty()) {
    const auto time = parse_iso_utc(options.time);
    if (!time) {
      throw std::invalid_argument(fmt::format(
          "--to-time: '{}' is not an ISO-8601 time with a zone, e.g. 2026-11-22T10:00:00Z", options.time));
    }
    target.mode = ResetTarget::Mode::time;
    target.time = *time;
  } else {
    const auto lsn = Lsn::parse(options.lsn);
    if (!lsn) throw std::invalid_argument(fmt::format("--to-lsn: '{}' is not an LSN like 0/16B3800", options.lsn));
    target.mode = ResetTarget::Mode::lsn;
    target.lsn = *lsn;
  }
  return target;
}

int run_reset(const GlobalOptions& global, const ResetOptions& options) {
  const Config config = load_ctl_config(global);
  const ResetTarget target = parse_target(options);
  const auto all = list_projections(config);
  ProjectionInfo projection = find_projection(all, options.projection, parse_sink(options.sink));
  if (!options.topics.empty()) {
    for (const auto& topic : options.topics) {
      if (std::find(projection.topics.begin(), projection.topics.end(), topic) == projection.topics.end()) {
        throw std::invalid_argument(fmt::format("--topic {}: projection {} does not read it (it reads {})", topic,
                                                projection.name, fmt::join(projection.topics, ", ")));
      }
    }
    projection.topics = options.topics;  // the other topics keep their positions
  }
  kafka::AdminClient admin(admin_properties(config.kafka));
  // Checked first, so that a running projector costs no LSN search; checked again by the broker
  // when the Kafka offsets are written.
  refuse_if_group_is_live(admin, projection.group);
  std::unique_ptr<pg::PgConnection> read_db;
  if (projection.sink == Sink::pg)
    read_db = std::make_unique<pg::PgConnection>(config.require_read_db().dsn, std::chrono::seconds(5));
  const ResetPlan plan = plan_reset(config, all, projection, target, admin, read_db.get());
  bool applied = false;
  if (!options.dry_run) {
    apply_reset(plan, admin, read_db.get());
    applied = true;
  }
  const Style style = Style::for_stdout();
  const std::string out = options.json ? reset_json(plan, options.dry_run, applied).dump(2) + '\n'
                                       : render_reset(plan, options.dry_run, applied, style);
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

}  // namespace

void add_offsets_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
  CLI::App* offsets = app.add_subcommand("offsets", "Show or reset where a projection reads");
  offsets->require_subcommand(1);
  offsets->footer(
      "Positions live where each projector resumes from: read PostgreSQL syncline.offsets for the\n"
      "pg-projector (its Kafka committed offsets are kept for lag tools only), the consumer group's\n"
      "committed offsets for the es-projector.\n"
      "\n"
      "Exit codes: 0 done, 2 it could not run (usage, config, a service unreachable, or a reset\n"
      "refused because the projector's consumer group still has live members).");

  auto show = std::make_shared<ShowOptions>();
  CLI::App* show_command = offsets->add_subcommand("show", "Per projection and partition: held and committed offsets, "
                                                           "watermarks, lag");
  show_command->add_option("--projection", show->projection, "Only this projection (default: all)")->type_name("NAME");
  show_command->add_option("--sink", show->sink, "Which sink's projection, when the name exists on both")
      ->check(CLI::IsMember({"pg", "es"}));
  show_command->add_flag("--json", show->json, "Print JSON");
  show_command->footer(
      "Examples:\n"
      "  syncline-ctl offsets show\n"
      "  syncline-ctl offsets show --projection mirror --json");
  show_command->callback([&global, &exit_code, show] { exit_code = run_show(global, *show); });

  auto reset = std::make_shared<ResetOptions>();
  CLI::App* reset_command =
      offsets->add_subcommand("reset", "Move a projection's position; refused while its projector runs");
  reset_command->add_option("--projection", reset->projection, "The projection to move")
      ->type_name("NAME")
      ->required();
  reset_command->add_option("--sink", reset->sink, "Which sink's projection, when the name exists on both")
      ->check(CLI::IsMember({"pg", "es"}));
  reset_command->add_option("--topic", reset->topics,
                            "Only this topic of the projection (repeatable; default: all its topics), e.g. one that "
                            "was deleted and recreated")
      ->type_name("TOPIC");
  CLI::Option_group* to = reset_command->add_option_group("target", "Where to move it (exactly one)");
  to->add_flag("--to-earliest", reset->earliest, "The oldest record each partition still holds");
  to->add_flag("--to-latest", reset->latest, "The end of each partition (skip everything pending)");
  to->add_option("--to-time", reset->time, "The first record written at or after this time")
      ->type_name("ISO8601");
  to->add_option("--to-lsn", reset->lsn,
                 "The first record whose source commit LSN is at or after this one (syncline-commit-lsn header)")
      ->type_name("X/Y");
  to->require_option(1);
  reset_command->add_flag("--dry-run", reset->dry_run, "Show the new positions without writing them");
  reset_command->add_flag("--json", reset->json, "Print JSON");
  reset_command->footer(
      "Stop every projector of the group first: the reset is refused (exit 2) while the consumer\n"
      "group has live members, naming the group, its member count and hosts.\n"
      "pg: every pg projection shares one consumer group, and a position is per (group, topic,\n"
      "partition): moving one projection moves every pg projection reading the same topics; they are\n"
      "listed. Mirror projections re-apply events without changing the final state (versions);\n"
      "SQL projections are not idempotent and apply them again.\n"
      "Moving backwards re-applies events; moving forwards skips them (never applied).\n"
      "\n"
      "Examples:\n"
      "  syncline-ctl offsets reset --projection mirror --to-time 2026-11-22T10:00:00Z --dry-run\n"
      "  syncline-ctl offsets reset --projection mirror --to-time 2026-11-22T10:00:00Z\n"
      "  syncline-ctl offsets reset --projection orders --sink es --to-lsn 0/16B3800\n"
      "  syncline-ctl offsets reset --projection mirror --to-earliest --json\n"
      "  syncline-ctl offsets reset --projection counters --topic syncline.events.counter --to-earliest");
  reset_command->callback([&global, &exit_code, reset] { exit_code = run_reset(global, *reset); });
}

}  // namespace syncline::ctl
