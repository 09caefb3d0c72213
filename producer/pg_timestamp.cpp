// PgTimestamp conversions.
#include "producer/pg_timestamp.hpp"

#include <fmt/format.h>

#include <limits>

namespace syncline::producer {

PgTimestamp PgTimestamp::from_sys_time(SysTime time) {
  std::int64_t micros = 0;
  if (__builtin_sub_overflow(time.time_since_epoch().count(), kUnixOffsetMicros, &micros)) {
    micros = std::numeric_limits<std::int64_t>::min();
  }
  return PgTimestamp{micros};
}

PgTimestamp::SysTime PgTimestamp::to_sys_time() const {
  std::int64_t unix_micros = 0;
  if (__builtin_add_overflow(micros_since_2000, kUnixOffsetMicros, &unix_micros)) {
    unix_micros = std::numeric_limits<std::int64_t>::max();
  }
  return SysTime{std::chrono::microseconds{unix_micros}};
}

std::string PgTimestamp::to_iso8601() const {
  // PostgreSQL's DT_NOEND / DT_NOBEGIN, printed as PostgreSQL prints them.
  if (micros_since_2000 == std::numeric_limits<std::int64_t>::max()) return "infinity";
  if (micros_since_2000 == std::numeric_limits<std::int64_t>::min()) return "-infinity";
  const auto time = to_sys_time();
  const auto day = std::chrono::floor<std::chrono::days>(time);
  const std::chrono::year_month_day date{day};
  const std::chrono::hh_mm_ss clock{time - day};
  auto text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(date.year()),
                          static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                          clock.hours().count(), clock.minutes().count(), clock.seconds().count());
  if (const auto micros = clock.subseconds().count(); micros != 0) {
    auto fraction = fmt::format("{:06}", micros);
    fraction.erase(fraction.find_last_not_of('0') + 1);
    text += '.' + fraction;
  }
  return text + 'Z';
}

}  // namespace syncline::producer
