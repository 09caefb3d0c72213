// syncline-ctl status (placeholder until implemented).
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

void add_status_command(CLI::App& app, const GlobalOptions& /*global*/, int& /*exit_code*/) {
  app.add_subcommand("status", "(not implemented yet)")->callback([] { throw Refused("status is not implemented yet"); });
}

}  // namespace syncline::ctl
