// syncline-ctl status: consumer lag per group and partition, the replication slot, freshness per
// projection and dead letters, once or refreshed (--watch).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include "common/shutdown.hpp"
#include "common/iso_time.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/status_report.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

namespace {

struct StatusOptions {
  bool json = false;
  std::string watch;  // seconds as given; empty with --watch alone
  std::int64_t max_lag = -1;
  double max_age = -1;
};

constexpr double kDefaultWatchSeconds = 2.0;

int run_status(const GlobalOptions& global, const StatusOptions& options, bool watching) {
  const Config config = load_ctl_config(global);
  StatusLimits limits;
  if (options.max_lag >= 0) limits.max_lag = options.max_lag;
  if (options.max_age >= 0) limits.max_age_seconds = options.max_age;
  double interval = kDefaultWatchSeconds;
  if (watching && !options.watch.empty()) {
    try {
      interval = std::stod(options.watch);
    } catch (const std::exception&) {
      throw std::invalid_argument(fmt::format("--watch: '{}' is not a number of seconds", options.watch));
    }
    if (!(interval > 0)) throw std::invalid_argument("--watch: the interval must be more than 0 seconds");
  }
  const Style style = Style::for_stdout();
  // Redrawing in place only makes sense on a terminal; a pipe or a log gets one report per interval.
  const bool redraw = watching && !options.json && is_terminal(stdout);
  if (watching) shutdown::install_signal_handlers();

  int exit_code = kExitOk;
  while (true) {
    const auto report = collect_status(config, std::chrono::system_clock::now());
    exit_code = find_problems(report, limits).empty() ? kExitOk : kExitProblem;
    std::string text;
    if (options.json) {
      // One document per line while watching (JSON lines); indented for a single report.
      text = watching ? status_json(report, limits).dump() + '\n' : status_json(report, limits).dump(2) + '\n';
    } else {
      if (watching) {
        text = style.dim(fmt::format("syncline-ctl status at {}, every {} (Ctrl-C stops)",
                                     format_iso_utc(report.generated_at), format_seconds(interval))) +
               "\n\n";
      }
      text += render_status(report, limits, style);
    }
    if (redraw) std::fputs("\x1b[H\x1b[2J", stdout);  // cursor home, clear screen
    else if (watching && !options.json) text += '\n';
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    if (!watching) break;
    if (shutdown::wait_for(std::chrono::milliseconds(static_cast<std::int64_t>(interval * 1000)))) break;
  }
  return exit_code;
}

}  // namespace

void add_status_command(CLI::App& app, const GlobalOptions& global, int& exit_code) {
  auto options = std::make_shared<StatusOptions>();
  CLI::App* command = app.add_subcommand(
      "status", "Consumer lag per group and partition, the replication slot, freshness, dead letters");
  command->add_flag("--json", options->json, "Print the report as JSON (schemas/status.schema.json)");
  CLI::Option* watch =
      command->add_option("--watch", options->watch, "Refresh every SECONDS (default 2) until Ctrl-C / SIGTERM")
          ->expected(0, 1)
          ->type_name("[SECONDS]");
  command->add_option("--max-lag", options->max_lag,
                      "A partition with more than N events pending is a problem (exit 1)")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--max-age", options->max_age,
                      "A projection whose newest applied commit is older than SECONDS while events are pending "
                      "is a problem (exit 1)")
      ->type_name("SECONDS")
      ->check(CLI::NonNegativeNumber);
  command->footer(
      "For each consumer group of the config (pg_projector.group_id, es_projector.group_id) and each\n"
      "partition of the topics its projections read: the offset the sink holds (read PostgreSQL\n"
      "syncline.offsets for the pg-projector, the group's committed offset for the es-projector),\n"
      "the end offset and the lag (end - held; everything the partition holds when nothing is held).\n"
      "Then the replication slot (producer.slot) of the write database, per projection the newest\n"
      "applied commit LSN, its commit time and age, and the sizes of the dead-letter topics.\n"
      "\n"
      "Exit codes:\n"
      "  0  no problem found\n"
      "  1  a problem: a partition's lag over --max-lag; a projection's age over --max-age while it\n"
      "     has events pending; the slot missing, inactive, lost or retaining WAL at or over\n"
      "     producer.slot_lag_warning_bytes; Kafka, the read or the write PostgreSQL unreachable\n"
      "     (the report shows the error in that section and goes on)\n"
      "  2  it could not run (usage, config)\n"
      "With --watch, the exit code is the last report's.\n"
      "\n"
      "Examples:\n"
      "  syncline-ctl -c syncline.yaml status\n"
      "  syncline-ctl status --max-lag 1000 --max-age 60     # for a cron job or a health check\n"
      "  syncline-ctl status --watch 5\n"
      "  syncline-ctl status --json | jq '.groups[].lag'");
  command->callback([&global, &exit_code, options, watch] {
    exit_code = run_status(global, *options, watch->count() > 0);
  });
}

}  // namespace syncline::ctl
