// syncline-ctl resync replay (placeholder until implemented).
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

void add_replay_command(CLI::App& resync, const GlobalOptions& /*global*/, int& /*exit_code*/) {
  resync.add_subcommand("replay", "(not implemented yet)")->callback([] { throw Refused("replay is not implemented yet"); });
}

}  // namespace syncline::ctl
