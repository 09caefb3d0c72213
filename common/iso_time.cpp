// ISO-8601 timestamp parsing (see iso_time.hpp).
#include "common/iso_time.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <charconv>

namespace syncline {

namespace {
bool read_int(std::string_view text, std::size_t at, std::size_t digits, int& out) {
  if (at + digits > text.size()) return false;
  const char* first = text.data() + at;
  for (std::size_t i = 0; i < digits; ++i)
    if (first[i] < '0' || first[i] > '9') return false;
  return std::from_chars(first, first + digits, out).ec == std::errc{};
}
}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_iso_utc(std::string_view text) noexcept {
  using namespace std::chrono;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (text.size() < 20 || !read_int(text, 0, 4, year) || text[4] != '-' || !read_int(text, 5, 2, month) ||
      text[7] != '-' || !read_int(text, 8, 2, day) || (text[10] != 'T' && text[10] != ' ') ||
      !read_int(text, 11, 2, hour) || text[13] != ':' || !read_int(text, 14, 2, minute) || text[16] != ':' ||
      !read_int(text, 17, 2, second)) {
    return std::nullopt;
  }
  const year_month_day date{std::chrono::year(year), std::chrono::month(static_cast<unsigned>(month)),
                            std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  microseconds fraction{0};
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    std::int64_t scale = 100'000;
    const std::size_t start = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      fraction += microseconds((text[at] - '0') * scale);
      scale /= 10;
      ++at;
    }
    if (at == start) return std::nullopt;
  }
  minutes offset{0};
  if (at < text.size() && text[at] == 'Z') {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    int offset_hours = 0, offset_minutes = 0;
    if (!read_int(text, at + 1, 2, offset_hours) || at + 3 >= text.size() || text[at + 3] != ':' ||
        !read_int(text, at + 4, 2, offset_minutes)) {
      return std::nullopt;
    }
    offset = hours(offset_hours) + minutes(offset_minutes);
    if (text[at] == '-') offset = -offset;
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  const auto local = sys_days(date) + hours(hour) + minutes(minute) + seconds(second) + fraction;
  return time_point_cast<system_clock::duration>(local - offset);
}

std::string format_iso_utc(std::chrono::system_clock::time_point time) {
  // fmt 9 prints only whole seconds for %S of a time_point: the milliseconds are added by hand.
  const auto millis = std::chrono::time_point_cast<std::chrono::milliseconds>(time);
  const auto seconds = std::chrono::floor<std::chrono::seconds>(millis);
  const auto fraction = (millis - seconds).count();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", seconds, fraction);
}

}  // namespace syncline
