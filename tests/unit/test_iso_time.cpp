// parse_iso_utc: the timestamps of envelopes (source.commit_ts, occurred_at), for latency metrics.
#include <gtest/gtest.h>

#include "common/iso_time.hpp"

namespace syncline {
namespace {

using namespace std::chrono;

system_clock::time_point at(int y, unsigned mo, unsigned d, int h, int mi, int s, int us = 0) {
  return sys_days(year_month_day(year(y), month(mo), day(d))) + hours(h) + minutes(mi) + seconds(s) +
         microseconds(us);
}

TEST(IsoTime, parses_utc_with_and_without_fractions) {
  EXPECT_EQ(parse_iso_utc("2026-11-22T10:00:00Z"), at(2026, 11, 22, 10, 0, 0));
  EXPECT_EQ(parse_iso_utc("2026-11-22T10:00:00.125Z"), at(2026, 11, 22, 10, 0, 0, 125000));
  EXPECT_EQ(parse_iso_utc("2026-11-22T10:00:00.123456Z"), at(2026, 11, 22, 10, 0, 0, 123456));
  EXPECT_EQ(parse_iso_utc("2026-11-22 10:00:00Z"), at(2026, 11, 22, 10, 0, 0));
}

TEST(IsoTime, applies_a_numeric_offset) {
  EXPECT_EQ(parse_iso_utc("2026-11-22T12:30:00+02:30"), at(2026, 11, 22, 10, 0, 0));
  EXPECT_EQ(parse_iso_utc("2026-11-22T05:00:00.5-05:00"), at(2026, 11, 22, 10, 0, 0, 500000));
}

TEST(IsoTime, formats_utc_with_milliseconds_and_reads_back_the_same_instant) {
  EXPECT_EQ(format_iso_utc(at(2026, 11, 22, 10, 0, 0, 125000)), "2026-11-22T10:00:00.125Z");
  EXPECT_EQ(format_iso_utc(at(2026, 11, 22, 10, 0, 7)), "2026-11-22T10:00:07.000Z");
  EXPECT_EQ(format_iso_utc(at(2026, 11, 22, 23, 59, 59, 999900)), "2026-11-22T23:59:59.999Z");
  EXPECT_EQ(parse_iso_utc(format_iso_utc(at(2026, 1, 2, 3, 4, 5, 678000))), at(2026, 1, 2, 3, 4, 5, 678000));
}

TEST(IsoTime, rejects_what_is_not_a_full_timestamp_with_a_zone) {
  for (const char* text : {"", "2026-11-22", "2026-11-22T10:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                           "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00Zjunk", "2026-11-22T25:00:00Z",
                           "2026-11-22T10:00:00+0200"}) {
    EXPECT_EQ(parse_iso_utc(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace syncline
