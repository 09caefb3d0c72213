// syncline-ctl offsets (placeholder until implemented).
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

void add_offsets_command(CLI::App& app, const GlobalOptions& /*global*/, int& /*exit_code*/) {
  app.add_subcommand("offsets", "(not implemented yet)")->callback([] { throw Refused("offsets is not implemented yet"); });
}

}  // namespace syncline::ctl
