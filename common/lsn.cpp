// Lsn parsing and printing in PostgreSQL's "X/Y" form.
#include "common/lsn.hpp"

#include <charconv>
#include <ostream>
#include <stdexcept>

namespace syncline {

namespace {

// from_chars alone would accept an empty string's prefix and leave the rest unchecked.
std::optional<std::uint32_t> parse_hex_half(std::string_view text) {
  if (text.empty() || text.size() > 8) return std::nullopt;
  std::uint32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<Lsn> Lsn::parse(std::string_view text) noexcept {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto high = parse_hex_half(text.substr(0, slash));
  const auto low = parse_hex_half(text.substr(slash + 1));
  if (!high || !low) return std::nullopt;
  return Lsn{(std::uint64_t{*high} << 32U) | *low};
}

Lsn Lsn::from_string(std::string_view text) {
  if (auto lsn = parse(text)) return *lsn;
  throw std::invalid_argument(fmt::format("invalid LSN '{}': expected two hex numbers like 0/16B3748", text));
}

std::string Lsn::to_string() const { return fmt::format("{:X}/{:X}", value_ >> 32U, value_ & 0xFFFFFFFFU); }

std::ostream& operator<<(std::ostream& out, Lsn lsn) { return out << lsn.to_string(); }

}  // namespace syncline
