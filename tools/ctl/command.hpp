// The contract between syncline-ctl's main() and its subcommands: global options, exit codes,
// and the registration function each subcommand file provides.
#pragma once

#include <CLI/CLI.hpp>

#include <stdexcept>
#include <string>

#include "common/config.hpp"

namespace syncline::ctl {

// Exit codes, the same for every subcommand (and said in --help).
inline constexpr int kExitOk = 0;       // done; nothing wrong found
inline constexpr int kExitProblem = 1;  // the command ran and found a problem (lag, differences, ...)
inline constexpr int kExitError = 2;    // it could not run: usage, config, a service unreachable, refused

// Options every subcommand shares; filled by main() before a subcommand's callback runs.
struct GlobalOptions {
  std::string config_path = "syncline.yaml";
  bool verbose = false;  // the config's log level; otherwise only warnings and errors are logged
};

// Thrown for a request the tool refuses (e.g. resetting offsets while a projector runs); main()
// prints the message and exits kExitError.
class Refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Loads and validates the config file named by the global options (throws ConfigError).
Config load_ctl_config(const GlobalOptions& global);

// Each adds its subcommand(s) to `app`. The callback stores its exit code in `exit_code`; it may
// throw (ConfigError, Refused, a service's error), which main() reports and turns into kExitError.
void add_status_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
void add_offsets_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
void add_verify_command(CLI::App& app, const GlobalOptions& global, int& exit_code);
// `resync` is shared: replay and snapshot add themselves below it.
void add_replay_command(CLI::App& resync, const GlobalOptions& global, int& exit_code);
void add_snapshot_command(CLI::App& resync, const GlobalOptions& global, int& exit_code);
void add_source_command(CLI::App& resync, const GlobalOptions& global, int& exit_code);

}  // namespace syncline::ctl
