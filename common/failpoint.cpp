// Failpoints (see failpoint.hpp): parsed from the environment once, counted under a mutex.
#include "common/failpoint.hpp"

#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace syncline::failpoint {
namespace {

struct Armed {
  bool enabled = false;
  std::mutex mutex;
  std::map<std::string, unsigned long, std::less<>> remaining;  // name -> hits left before the kill
};

void parse(Armed& points, std::string_view text) {
  points.enabled = !text.empty();
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    unsigned long nth = 1;
    if (const auto at = item.find('@'); at != std::string_view::npos) {
      const auto count = item.substr(at + 1);
      std::from_chars(count.data(), count.data() + count.size(), nth);
      item = item.substr(0, at);
    }
    if (!item.empty() && nth > 0) points.remaining[std::string(item)] = nth;
  }
}

// Not enabled when SYNCLINE_FAILPOINTS is unset or empty: the common case stays one check.
Armed& armed() {
  static Armed points;
  static const bool parsed = [] {
    const char* text = std::getenv("SYNCLINE_FAILPOINTS");
    parse(points, text == nullptr ? std::string_view{} : std::string_view(text));
    return true;
  }();
  (void)parsed;
  return points;
}

}  // namespace

void hit(std::string_view name) {
  Armed& points = armed();
  if (!points.enabled) return;
  std::lock_guard lock(points.mutex);
  const auto it = points.remaining.find(name);
  if (it == points.remaining.end() || --it->second > 0) return;
  // Unbuffered, so the test's log shows where the process died.
  const std::string line = "failpoint " + std::string(name) + ": killing the process\n";
  (void)!write(STDERR_FILENO, line.data(), line.size());
  ::kill(::getpid(), SIGKILL);
}

}  // namespace syncline::failpoint
