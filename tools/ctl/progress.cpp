// Progress of a long syncline-ctl run (see progress.hpp).
#include "tools/ctl/progress.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

Progress::Progress(std::string what, std::optional<bool> terminal, std::chrono::milliseconds line_interval,
                   std::FILE* out, Clock clock)
    : what_(std::move(what)),
      terminal_(terminal.value_or(is_terminal(out))),
      line_interval_(line_interval),
      out_(out),
      clock_(std::move(clock)),
      started_(clock_()) {}

Progress::~Progress() {
  if (terminal_ && drawn_) std::fputc('\n', out_);
}

std::string Progress::line(std::uint64_t done, std::optional<std::uint64_t> total) const {
  const double elapsed = std::chrono::duration<double>(clock_() - started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  std::string text;
  if (total && *total > 0) {
    constexpr int kWidth = 24;
    const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(*total));
    const int filled = static_cast<int>(fraction * kWidth);
    text = fmt::format("[{}{}] {:3.0f}% {}/{} {}", std::string(static_cast<std::size_t>(filled), '#'),
                       std::string(static_cast<std::size_t>(kWidth - filled), '-'), fraction * 100.0,
                       format_count(static_cast<std::int64_t>(done)), format_count(static_cast<std::int64_t>(*total)),
                       what_);
  } else {
    text = fmt::format("{} {}", format_count(static_cast<std::int64_t>(done)), what_);
  }
  text += fmt::format("  {}/s", format_count(static_cast<std::int64_t>(rate)));
  if (total && rate > 0 && *total > done) {
    text += "  ETA " + format_seconds(static_cast<double>(*total - done) / rate);
  }
  return text;
}

void Progress::update(std::uint64_t done, std::optional<std::uint64_t> total) {
  const auto now = clock_();
  const auto interval = terminal_ ? std::chrono::milliseconds(100) : line_interval_;
  if (last_draw_ && now - *last_draw_ < interval) return;
  last_draw_ = now;
  if (terminal_) {
    // \r and "erase to end of line": the bar redraws in place.
    fmt::print(out_, "\r{}\x1b[K", line(done, total));
    drawn_ = true;
  } else {
    fmt::print(out_, "{}\n", line(done, total));
  }
  std::fflush(out_);
}

void Progress::finish(std::string_view summary) {
  if (terminal_ && drawn_) fmt::print(out_, "\r\x1b[K");
  drawn_ = false;
  if (!summary.empty()) fmt::print(out_, "{}\n", summary);
  std::fflush(out_);
}

}  // namespace syncline::ctl
