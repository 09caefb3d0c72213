// Lsn: a PostgreSQL WAL position, parsed from and printed as PostgreSQL's "X/Y" hex form.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace syncline {

// A strong type so a WAL position is never mixed up with a Kafka offset or a plain counter.
class Lsn {
 public:
  // 0/0 is PostgreSQL's InvalidXLogRecPtr: "no position yet".
  constexpr Lsn() = default;
  constexpr explicit Lsn(std::uint64_t value) : value_(value) {}

  // Accepts what PostgreSQL's pg_lsn accepts: 1-8 hex digits, '/', 1-8 hex digits, any case.
  static std::optional<Lsn> parse(std::string_view text) noexcept;
  // As parse(), but throws std::invalid_argument quoting the input.
  static Lsn from_string(std::string_view text);

  constexpr std::uint64_t value() const { return value_; }
  constexpr bool is_valid() const { return value_ != 0; }
  // Upper-case hex without leading zeros, exactly as PostgreSQL prints it: "0/16B3748".
  std::string to_string() const;

  friend constexpr auto operator<=>(Lsn, Lsn) = default;

 private:
  std::uint64_t value_ = 0;
};

std::ostream& operator<<(std::ostream& out, Lsn lsn);

}  // namespace syncline

template <>
struct fmt::formatter<syncline::Lsn> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(syncline::Lsn lsn, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(lsn.to_string(), ctx);
  }
};
