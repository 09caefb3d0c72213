// Positions in the pipeline as strong types: the WAL position (Lsn) and the Kafka offset.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <ostream>

#include "common/lsn.hpp"

namespace syncline {

// A Kafka partition offset. Distinct from Lsn so one can never be passed where the other is meant.
class KafkaOffset {
 public:
  constexpr explicit KafkaOffset(std::int64_t value) : value_(value) {}

  constexpr std::int64_t value() const { return value_; }
  // Kafka commits the offset of the next message to read, not of the last one processed.
  constexpr KafkaOffset next() const { return KafkaOffset{value_ + 1}; }

  friend constexpr auto operator<=>(KafkaOffset, KafkaOffset) = default;

 private:
  std::int64_t value_;
};

inline std::ostream& operator<<(std::ostream& out, KafkaOffset offset) { return out << offset.value(); }

}  // namespace syncline

template <>
struct fmt::formatter<syncline::KafkaOffset> : fmt::formatter<std::int64_t> {
  template <typename FormatContext>
  auto format(syncline::KafkaOffset offset, FormatContext& ctx) const {
    return fmt::formatter<std::int64_t>::format(offset.value(), ctx);
  }
};
