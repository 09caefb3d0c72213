// Shared by the subcommands: loading the config file.
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

Config load_ctl_config(const GlobalOptions& global) {
  Config config = load_config(global.config_path);
  // An operator's command prints its own results; routine progress logs would only hide them.
  auto log_options = config.log;
  if (!global.verbose && log_options.level != "error" && log_options.level != "critical" && log_options.level != "off")
    log_options.level = "warn";
  log::init(log_options);
  return config;
}

}  // namespace syncline::ctl
