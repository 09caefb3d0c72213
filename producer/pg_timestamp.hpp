// PgTimestamp: PostgreSQL's TimestampTz as the replication protocol carries it (µs since 2000-01-01 UTC).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <string>

namespace syncline::producer {

// Kept in PostgreSQL's own epoch so that decoding and re-encoding never changes a value; converted to
// system time only where one is needed.
struct PgTimestamp {
  using SysTime = std::chrono::sys_time<std::chrono::microseconds>;
  // 2000-01-01 minus 1970-01-01.
  static constexpr std::int64_t kUnixOffsetMicros = 946'684'800'000'000;

  std::int64_t micros_since_2000 = 0;

  static PgTimestamp from_sys_time(SysTime time);
  // Saturates instead of overflowing: a garbled value must not be undefined behaviour.
  SysTime to_sys_time() const;
  // UTC, PostgreSQL's fraction digits (trailing zeros dropped): "2026-11-22T10:00:00.125Z".
  std::string to_iso8601() const;

  friend constexpr auto operator<=>(PgTimestamp, PgTimestamp) = default;
};

}  // namespace syncline::producer
