// Backoff: capped exponential back-off with jitter, for retrying a transient failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace syncline {

// Owned by one thread. Each next() returns a wait in [current/2, current] and doubles current up
// to the cap; the jitter keeps several processes from retrying in lock-step against a recovering
// server. reset() after a success.
class Backoff {
 public:
  explicit Backoff(std::chrono::milliseconds cap, std::chrono::milliseconds initial = std::chrono::milliseconds(250),
                   std::uint32_t seed = std::random_device{}())
      : initial_(initial), cap_(cap), current_(initial), random_(seed) {}

  std::chrono::milliseconds next() {
    const auto half = current_.count() / 2;
    const auto wait = std::chrono::milliseconds(half + std::uniform_int_distribution<std::int64_t>(0, half)(random_));
    current_ = std::min(current_ * 2, cap_);
    return wait;
  }
  void reset() noexcept { current_ = initial_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds cap_;
  std::chrono::milliseconds current_;
  std::mt19937 random_;
};

}  // namespace syncline
