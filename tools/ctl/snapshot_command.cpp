// syncline-ctl resync snapshot: re-publish the current rows of captured tables from one consistent
// snapshot of the write database, as op "r" row changes, in resumable primary-key chunks.
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/logging.hpp"
#include "common/shutdown.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/snapshot.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {
namespace {

struct SnapshotOptions {
  std::vector<std::string> tables;
  std::string where;
  std::size_t chunk_rows = 1000;
  bool restart = false;
  bool json = false;
};

// `text` as one shell word, for the command line a resume message suggests.
std::string shell_quote(const std::string& text) {
  const bool plain =
      !text.empty() &&
      text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/=:,") ==
          std::string::npos;
  if (plain) return text;
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string resume_command(const GlobalOptions& global, const SnapshotOptions& options,
                           const std::vector<TableName>& remaining) {
  std::string command = "syncline-ctl --config " + shell_quote(global.config_path) + " resync snapshot";
  for (const auto& table : remaining) command += " --table " + shell_quote(table.schema + "." + table.table);
  if (!options.where.empty()) command += " --where " + shell_quote(options.where);
  if (options.chunk_rows != 1000) command += fmt::format(" --chunk-rows {}", options.chunk_rows);
  return command;
}

nlohmann::json result_json(const TableName& table, const SnapshotResult& result) {
  return {{"table", table.schema + "." + table.table},
          {"rows", result.rows},
          {"deletes", result.deletes},
          {"chunks", result.chunks},
          {"snapshot_lsn", result.snapshot_lsn.to_string()},
          {"resumed", result.resumed},
          {"seconds", result.seconds},
          {"previous_rows", result.previous_rows},
          {"dead_letters", result.dead_letters},
          {"topic", result.topic},
          {"restarted_after_done", result.restarted_after_done}};
}

int run_snapshot(const GlobalOptions& global, const SnapshotOptions& options) {
  const Config config = load_ctl_config(global);
  std::vector<TableName> tables;
  for (const auto& text : options.tables) tables.push_back(parse_table_name(text));
  // Every table is checked before the first one starts: a typo must not leave half the work done.
  for (const auto& table : tables) check_snapshot_table(config, table);
  shutdown::install_signal_handlers();

  const Style style = Style::for_stdout();
  Table summary({"table", "rows", "chunks", "position", "resumed", "seconds"});
  summary.align_right(1).align_right(2).align_right(5);
  nlohmann::json results = nlohmann::json::array();
  std::uint64_t dead_letters = 0;
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const TableName& table = tables[i];
    const std::string name = table.schema + "." + table.table;
    SnapshotRequest request{.table = table,
                            .where = options.where,
                            .keys = std::nullopt,
                            .chunk_rows = options.chunk_rows,
                            .restart = options.restart};
    SnapshotResult result;
    {
      Progress progress(fmt::format("rows of {} re-published", name));
      try {
        result = publish_snapshot(config, request, &progress);
      } catch (const SnapshotInterrupted& interrupted) {
        progress.finish("");
        throw SnapshotInterrupted(fmt::format(
            "{}.\nTo resume: {}", interrupted.what(),
            resume_command(
                global, options,
                std::vector<TableName>(tables.begin() + static_cast<std::ptrdiff_t>(i), tables.end()))));
      }
      std::string note;
      if (result.resumed) {
        note = fmt::format(" (resumed after {} row(s) of an interrupted run)",
                           format_count(static_cast<std::int64_t>(result.previous_rows)));
      } else if (result.restarted_after_done) {
        note = " (the previous snapshot of this table and predicate had finished: started over)";
      }
      progress.finish(options.json ? std::string()
                                   : fmt::format("{}: {} row(s) re-published to {}{}", name,
                                                 format_count(static_cast<std::int64_t>(result.rows)),
                                                 result.topic, note));
    }
    dead_letters += result.dead_letters;
    results.push_back(result_json(table, result));
    summary.add_row({name, format_count(static_cast<std::int64_t>(result.previous_rows + result.rows)),
                     format_count(static_cast<std::int64_t>(result.chunks)), result.snapshot_lsn.to_string(),
                     result.resumed ? "yes" : "no", format_seconds(result.seconds)});
  }

  if (options.json) {
    std::fputs(((results.size() == 1 ? results.at(0) : results).dump(2) + "\n").c_str(), stdout);
  } else {
    std::fputs(summary.render(style).c_str(), stdout);
    if (dead_letters > 0) {
      std::fputs(
          style
              .red(fmt::format("{} row(s) could not be mapped and went to the producer's dead-letter topic\n",
                               format_count(static_cast<std::int64_t>(dead_letters))))
              .c_str(),
          stdout);
    }
  }
  std::fflush(stdout);
  return dead_letters > 0 ? kExitProblem : kExitOk;
}

}  // namespace

void add_snapshot_command(CLI::App& resync, const GlobalOptions& global, int& exit_code) {
  auto options = std::make_shared<SnapshotOptions>();
  CLI::App* command = resync.add_subcommand(
      "snapshot", "Re-publish the current rows of captured tables from the write database (op \"r\")");
  command
      ->add_option("-t,--table", options->tables, "A table the producer captures (schema.table); repeatable")
      ->required()
      ->type_name("SCHEMA.TABLE");
  command
      ->add_option("--where", options->where,
                   "Only rows matching this SQL predicate on the table (trusted input: it is run as written)")
      ->type_name("SQL");
  command
      ->add_option("--chunk-rows", options->chunk_rows,
                   "Rows per chunk: one keyset query and one Kafka transaction each")
      ->capture_default_str()
      ->type_name("N")
      ->check(CLI::Range(1, 100000));
  command->add_flag("--restart", options->restart, "Start over instead of resuming an interrupted run");
  command->add_flag("--json", options->json,
                    "Print {table, rows, deletes, chunks, snapshot_lsn, resumed, seconds, ...} (an array for "
                    "several tables)");
  command->footer(
      "Reads the tables from ONE consistent snapshot of the write database (a temporary logical\n"
      "replication slot's exported snapshot, REPEATABLE READ, READ ONLY, no locks) in primary-key\n"
      "chunks, and publishes every row as an op \"r\" row change to the table's row-change topic:\n"
      "the producer's own envelope, key, headers and value mapping, with source.snapshot true. The\n"
      "events carry the snapshot's WAL position, just below every change the snapshot does not\n"
      "contain, so the sinks keep the live stream's newer changes where both touch a row. The\n"
      "producer keeps streaming meanwhile.\n"
      "\n"
      "Each chunk and its progress record (topic <prefix>.ctl.snapshots) commit in one Kafka\n"
      "transaction: an interrupted run (Ctrl-C, SIGTERM, a crash) resumes after the last committed\n"
      "key when run again with the same --table and --where, from a new snapshot. A finished run\n"
      "is not resumed: the same command starts over.\n"
      "\n"
      "--where is spliced into the query as written (in a read-only transaction): only use\n"
      "predicates you trust. The progress bar's total is the planner's row estimate.\n"
      "\n"
      "Exit codes:\n"
      "  0  every row re-published\n"
      "  1  done, but rows whose values could not be mapped went to the producer's dead-letter topic\n"
      "  2  it could not run or was interrupted (the message says how to resume): a table not in\n"
      "     producer.capture, without a primary key, a service unreachable\n"
      "\n"
      "Examples:\n"
      "  syncline-ctl -c syncline.yaml resync snapshot --table public.users\n"
      "  syncline-ctl resync snapshot --table public.orders --where \"created_at >= '2026-11-01'\"\n"
      "  syncline-ctl resync snapshot --table public.users --table public.orders --chunk-rows 5000\n"
      "  syncline-ctl resync snapshot --table public.users --restart --json");
  command->callback([&global, &exit_code, options] { exit_code = run_snapshot(global, *options); });
}

}  // namespace syncline::ctl
