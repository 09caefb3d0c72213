// Human output of syncline-ctl: colour only on a terminal (and never with NO_COLOR), aligned
// tables, and the number, byte and duration formats every subcommand prints.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncline::ctl {

// Whether `stream` is a terminal.
bool is_terminal(std::FILE* stream);

// ANSI colours when enabled, the text unchanged otherwise.
class Style {
 public:
  explicit Style(bool enabled) : enabled_(enabled) {}
  // Enabled when stdout is a terminal and NO_COLOR is unset (https://no-color.org).
  static Style for_stdout();

  bool enabled() const { return enabled_; }
  std::string bold(std::string_view text) const { return wrap("1", text); }
  std::string dim(std::string_view text) const { return wrap("2", text); }
  std::string red(std::string_view text) const { return wrap("31", text); }
  std::string green(std::string_view text) const { return wrap("32", text); }
  std::string yellow(std::string_view text) const { return wrap("33", text); }

 private:
  std::string wrap(std::string_view code, std::string_view text) const;
  bool enabled_;
};

// Columns padded to their widest cell (ANSI colour codes do not count); numeric columns
// right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  Table& align_right(std::size_t column);
  void add_row(std::vector<std::string> cells);  // fewer cells than headers: the rest are blank
  bool empty() const { return rows_.empty(); }
  // Header underlined by the style (bold), one line per row, each ending in '\n'.
  std::string render(const Style& style) const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// Printed width of `text`: UTF-8 code points, ANSI escape sequences skipped.
std::size_t visible_width(std::string_view text);

std::string format_count(std::int64_t value);       // 1234567 -> "1,234,567"
std::string format_bytes(std::uint64_t bytes);      // "512 B", "1.5 KiB", "3.2 MiB", ...
std::string format_seconds(double seconds);         // "850 ms", "4.2 s", "3 min 10 s", "2 h 5 min"
std::string format_optional(const std::optional<std::int64_t>& value, std::string_view none = "-");

}  // namespace syncline::ctl
