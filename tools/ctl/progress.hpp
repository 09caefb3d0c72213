// Progress of a long syncline-ctl run (replay, snapshot, verify): a bar redrawn in place on a
// terminal, a plain line every few seconds otherwise (logs, CI). Written to stderr, so that
// stdout keeps only the command's result (a table or --json).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace syncline::ctl {

// Owned by the thread that runs the command; not thread-safe.
class Progress {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `what` names the unit and the job, e.g. "events replayed into mirror__resync".
  // `terminal` nullopt: a bar when stderr is a terminal.
  explicit Progress(std::string what, std::optional<bool> terminal = std::nullopt,
                    std::chrono::milliseconds line_interval = std::chrono::seconds(5), std::FILE* out = stderr,
                    Clock clock = std::chrono::steady_clock::now);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` of `total` (nullopt: unknown, no ETA). Cheap to call per event: redraws at most every
  // 100 ms (terminal) or every `line_interval` (otherwise).
  void update(std::uint64_t done, std::optional<std::uint64_t> total);
  // Ends the bar's line (if any) and prints `summary` on its own line.
  void finish(std::string_view summary);

  // The line a redraw prints, e.g. "[#####-----] 5,000/10,000 events replayed  2,100/s  ETA 2.4 s".
  std::string line(std::uint64_t done, std::optional<std::uint64_t> total) const;

 private:
  std::string what_;
  bool terminal_;
  std::chrono::milliseconds line_interval_;
  std::FILE* out_;
  Clock clock_;
  std::chrono::steady_clock::time_point started_;
  std::optional<std::chrono::steady_clock::time_point> last_draw_;
  bool drawn_ = false;
};

}  // namespace syncline::ctl
