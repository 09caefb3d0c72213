// syncline-ctl resync snapshot (placeholder until implemented).
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

void add_snapshot_command(CLI::App& resync, const GlobalOptions& /*global*/, int& /*exit_code*/) {
  resync.add_subcommand("snapshot", "(not implemented yet)")->callback([] { throw Refused("snapshot is not implemented yet"); });
}

}  // namespace syncline::ctl
