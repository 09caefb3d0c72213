// syncline-ctl verify (placeholder until implemented).
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

void add_verify_command(CLI::App& app, const GlobalOptions& /*global*/, int& /*exit_code*/) {
  app.add_subcommand("verify", "(not implemented yet)")->callback([] { throw Refused("verify is not implemented yet"); });
}

}  // namespace syncline::ctl
