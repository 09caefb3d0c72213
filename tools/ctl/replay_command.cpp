// syncline-ctl resync replay: rebuild one projection from its topics into a shadow target and swap
// it in atomically (read PostgreSQL: tools/ctl/pg_replay.hpp; the search index: es_replay.hpp).
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/shutdown.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/es_replay.hpp"
#include "tools/ctl/pg_replay.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/replay.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

std::chrono::milliseconds parse_duration(std::string_view text) {
  const auto invalid = [&] {
    return std::invalid_argument(fmt::format("'{}' is not a duration (e.g. 0, 90s, 5m, 2h, 500ms)", text));
  };
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0) ++digits;
  if (digits == 0 || digits > 12) throw invalid();
  const long long value = std::stoll(std::string(text.substr(0, digits)));
  const std::string_view unit = text.substr(digits);
  if (unit.empty() || unit == "s") return std::chrono::seconds(value);
  if (unit == "ms") return std::chrono::milliseconds(value);
  if (unit == "m" || unit == "min") return std::chrono::minutes(value);
  if (unit == "h") return std::chrono::hours(value);
  throw invalid();
}

void print_replay_result(const ReplayResult& result, bool json) {
  if (json) {
    const nlohmann::json out = {
        {"projection", result.projection},
        {"sink", result.sink},
        {"old_target", result.old_target ? nlohmann::json(*result.old_target) : nlohmann::json(nullptr)},
        {"new_target", result.new_target},
        {"old_dropped", result.old_dropped},
        {"events", result.events},
        {"seconds", result.seconds},
        {"resumed", result.resumed},
    };
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  const Style style = Style::for_stdout();
  std::printf("%s\n", fmt::format("{} projection {} ({}): {} events replayed in {}{}", style.green("Replayed"),
                                  style.bold(result.projection), result.sink,
                                  format_count(static_cast<std::int64_t>(result.events)), format_seconds(result.seconds),
                                  result.resumed ? " (resumed an interrupted run)" : "")
                          .c_str());
  std::printf("  readers now read   %s\n", result.new_target.c_str());
  if (!result.old_target) {
    std::printf("  old read model     none (there was nothing to replace)\n");
  } else if (result.old_dropped) {
    std::printf("  old read model     %s (dropped)\n", result.old_target->c_str());
  } else {
    std::printf("  old read model     %s (kept; a later replay drops it once its grace has passed)\n",
                result.old_target->c_str());
  }
}

void add_replay_command(CLI::App& resync, const GlobalOptions& global, int& exit_code) {
  struct Options {
    std::string projection;
    std::string sink;
    std::string grace = "5m";
    bool keep_old = false;
    bool restart = false;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = resync.add_subcommand(
      "replay",
      "Rebuild one projection from its topics into a shadow target, then swap it in atomically.\n"
      "Steps: (1) create the shadow (read PostgreSQL: schema <schema>__resync; search index: a new\n"
      "versioned index); (2) consume the projection's topics from the beginning with a consumer group of\n"
      "its own, never past the live group's position; (3) swap in one transaction (renamed schemas; one\n"
      "_aliases request) exactly at the live position, so the live projector goes on in the new target;\n"
      "(4) drop the old target after --grace. Readers never see a missing or half-built read model.\n"
      "Interrupting it before the swap leaves the live projection untouched; running it again resumes.");
  command->add_option("--projection", options->projection, "The projection to rebuild (see `syncline-ctl status`)")
      ->required();
  command->add_option("--sink", options->sink, "pg or es, when the name exists in both")
      ->check(CLI::IsMember({"pg", "es"}));
  command->add_option("--grace", options->grace,
                      "How long the old target is kept after the swap for readers still using it (0, 90s, 5m, 1h)")
      ->capture_default_str();
  command->add_flag("--keep-old", options->keep_old, "Never drop the old target (drop it yourself later)");
  command->add_flag("--restart", options->restart, "Discard the shadow an interrupted run left and start over");
  command->add_flag("--json", options->json,
                    "One JSON object on stdout: projection, sink, old_target, new_target, old_dropped, events, "
                    "seconds, resumed");
  command->footer(
      "Examples:\n"
      "  syncline-ctl resync replay --projection mirror\n"
      "  syncline-ctl resync replay --projection conversation_summary --grace 0\n"
      "  syncline-ctl resync replay --projection messages --sink es --keep-old --json\n"
      "  syncline-ctl resync replay --projection mirror --restart     # discard an interrupted run's shadow\n\n"
      "A SQL projection can be replayed when it has `schema: NAME` and writes {{schema}} in its setup and SQL.\n"
      "Progress (events done / total, rate, ETA) goes to stderr; the result to stdout.\n"
      "Exit codes: 0 swapped, 1 interrupted before the swap (the live projection untouched: run it again to\n"
      "resume), 2 could not run or refused.");
  command->callback([options, &global, &exit_code] {
    const Config config = load_ctl_config(global);
    const std::chrono::milliseconds grace = parse_duration(options->grace);
    const auto projections = list_projections(config);
    std::optional<Sink> sink;
    if (options->sink == "pg") sink = Sink::pg;
    if (options->sink == "es") sink = Sink::es;
    const ProjectionInfo& projection = find_projection(projections, options->projection, sink);
    shutdown::install_signal_handlers();
    Progress progress(fmt::format("events replayed into {}", options->projection));
    if (projection.sink == Sink::es) {
      if (options->restart) {
        throw Refused("--restart is for read-PostgreSQL projections; an index replay resumes or starts over by itself");
      }
      EsReplayOptions es_options;
      es_options.grace = grace;
      es_options.keep_old = options->keep_old;
      es_options.json = options->json;
      exit_code = run_es_replay(config, projection, es_options, progress);
      return;
    }
    PgReplayOptions pg_options;
    pg_options.grace = grace;
    pg_options.keep_old = options->keep_old;
    pg_options.restart = options->restart;
    pg_options.json = options->json;
    exit_code = run_pg_replay(config, projection, pg_options, progress);
  });
}

}  // namespace syncline::ctl
