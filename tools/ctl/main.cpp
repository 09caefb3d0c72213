// syncline-ctl: wires the subcommands together; each lives in its own file.
// GCC 12 at -O2 reports a "potential null pointer dereference" inside std::string when CLI11's
// subcommand parsing is inlined here; it is a false positive in the headers, not in our code.
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "common/config.hpp"
#include "common/logging.hpp"
#include "tools/ctl/command.hpp"

int main(int argc, char** argv) {
  using namespace syncline;
  CLI::App app{
      "syncline-ctl: the operator's tool for a Syncline pipeline.\n"
      "  status   consumer lag per group and partition, the replication slot, freshness, dead letters\n"
      "  resync   rebuild a projection from the topics (replay) or from the write database (snapshot);\n"
      "           check or accept the write database as the producer's source (source)\n"
      "  verify   compare the write database with the read PostgreSQL and the search index\n"
      "  offsets  show or reset where a projection reads\n"
      "Every subcommand has --help with examples and --json for machines.\n\n"
      "Exit codes: 0 nothing wrong found, 1 the command found a problem (lag over a limit,\n"
      "differences, ...), 2 it could not run (usage, config, a service unreachable, refused).",
      "syncline-ctl"};
  ctl::GlobalOptions global;
  app.add_option("-c,--config", global.config_path, "Config file (see examples/syncline.example.yaml)")
      ->capture_default_str();
  app.add_flag("-v,--verbose", global.verbose, "Log at the config's log level (default: warnings and errors only)");
  app.set_version_flag("--version", SYNCLINE_VERSION);
  app.require_subcommand(1);

  int exit_code = ctl::kExitOk;
  ctl::add_status_command(app, global, exit_code);
  CLI::App& resync = *app.add_subcommand("resync", "Rebuild a read model: replay its topics, or re-publish rows");
  resync.require_subcommand(1);
  ctl::add_replay_command(resync, global, exit_code);
  ctl::add_snapshot_command(resync, global, exit_code);
  ctl::add_source_command(resync, global, exit_code);
  ctl::add_verify_command(app, global, exit_code);
  ctl::add_offsets_command(app, global, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);  // prints help, or the usage error
    return code == 0 ? ctl::kExitOk : ctl::kExitError;
  } catch (const ctl::Refused& error) {
    std::fprintf(stderr, "syncline-ctl: refused: %s\n", redact_secrets(error.what()).c_str());
    return ctl::kExitError;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "syncline-ctl: %s\n", redact_secrets(error.what()).c_str());
    return ctl::kExitError;
  }
  return exit_code;
}
