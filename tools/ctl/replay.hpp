// What `syncline-ctl resync replay` reports, whichever sink it rebuilt (read PostgreSQL or the
// search index), and the duration syntax of its --grace option.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace syncline::ctl {

struct ReplayResult {
  std::string projection;
  std::string sink;                       // "pg" or "es"
  std::optional<std::string> old_target;  // where the replaced read model went (nullopt: there was none)
  std::string new_target;                 // what readers read now
  bool old_dropped = false;               // the old target is already gone (--grace 0)
  std::uint64_t events = 0;               // records this run applied to the shadow
  double seconds = 0;
  bool resumed = false;                   // continued a shadow an interrupted run left
};

// The result on stdout: a few human lines, or one JSON object
// {projection, sink, old_target, new_target, old_dropped, events, seconds, resumed}.
void print_replay_result(const ReplayResult& result, bool json);

// "0", "90" (seconds), "500ms", "90s", "5m", "2h" (also "5min"). Throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);

}  // namespace syncline::ctl
