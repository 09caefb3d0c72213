// syncline-ctl's human output: aligned tables that ignore colour codes, and the number, byte and
// duration formats every subcommand prints.
#include <gtest/gtest.h>

#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {
namespace {

TEST(CtlTable, pads_columns_to_the_widest_cell_and_right_aligns_numeric_ones) {
  Table table({"NAME", "LAG"});
  table.align_right(1);
  table.add_row({"a", "5"});
  table.add_row({"longer", "1,234"});
  EXPECT_EQ(table.render(Style(false)),
            "NAME      LAG\n"
            "a           5\n"
            "longer  1,234\n");
}

TEST(CtlTable, colour_codes_do_not_count_towards_the_width) {
  const Style colour(true);
  Table table({"A", "B"});
  table.add_row({colour.red("x"), "y"});
  table.add_row({"xyz", "w"});
  const auto text = table.render(Style(false));
  EXPECT_NE(text.find("\x1b[31mx\x1b[0m    y\n"), std::string::npos) << text;
  EXPECT_NE(text.find("xyz  w\n"), std::string::npos) << text;
}

TEST(CtlTable, a_short_row_is_padded_with_blank_cells_and_no_line_ends_in_spaces) {
  Table table({"A", "B", "C"});
  table.add_row({"1"});
  EXPECT_EQ(table.render(Style(false)), "A  B  C\n1\n");
}

TEST(CtlStyle, adds_no_escape_codes_when_disabled) {
  const Style plain(false);
  EXPECT_EQ(plain.red("x"), "x");
  EXPECT_EQ(plain.bold("x"), "x");
  EXPECT_EQ(Style(true).green("x"), "\x1b[32mx\x1b[0m");
}

TEST(CtlFormat, counts_bytes_and_durations_read_as_a_person_writes_them) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_count(-1000), "-1,000");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(1ULL << 30), "1.0 GiB");
  EXPECT_EQ(format_seconds(0.85), "850 ms");
  EXPECT_EQ(format_seconds(4.24), "4.2 s");
  EXPECT_EQ(format_seconds(190), "3 min 10 s");
  EXPECT_EQ(format_seconds(7500), "2 h 5 min");
  EXPECT_EQ(format_optional(std::nullopt, "none"), "none");
  EXPECT_EQ(format_optional(12345), "12,345");
}

TEST(CtlFormat, visible_width_skips_escape_codes_and_counts_code_points) {
  EXPECT_EQ(visible_width("\x1b[1mabc\x1b[0m"), 3U);
  EXPECT_EQ(visible_width("d\xC3\xA9j\xC3\xA0"), 4U);  // "déjà"
}

}  // namespace
}  // namespace syncline::ctl
