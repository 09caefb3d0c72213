// syncline-ctl verify, the I/O part: reading the write database from one read-only snapshot, the
// read PostgreSQL mirror and the Elasticsearch mirror indices, and the settle / repair loops.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "common/config.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/verify.hpp"

namespace syncline::ctl::verify {

struct Options {
  std::optional<std::string> projection;  // nullopt: every projection
  std::optional<Sink> sink;               // narrows --projection
  bool repair = false;
  std::chrono::milliseconds settle{10'000};           // how long differing keys are re-checked (lag)
  std::chrono::milliseconds repair_timeout{120'000};  // how long a repair may take to be applied
  std::chrono::milliseconds poll_interval{500};
  std::size_t chunk_rows = 5000;
  bool progress = true;  // progress lines on stderr
};

// Runs the verification (and the repair) of the chosen projections. Throws for what stops it
// running: a service unreachable, an unknown projection (std::invalid_argument), a config
// section missing (ConfigError).
Report run(const Config& config, const Options& options);

}  // namespace syncline::ctl::verify
