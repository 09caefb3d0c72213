// Backoff: jittered, doubling, capped, reset after a success.
#include <gtest/gtest.h>

#include "common/backoff.hpp"

namespace syncline {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, waits_between_half_and_all_of_a_doubling_delay_up_to_the_cap) {
  Backoff backoff(1000ms, 100ms, 7);
  const std::chrono::milliseconds expected[] = {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms};
  for (const auto full : expected) {
    const auto wait = backoff.next();
    EXPECT_GE(wait, full / 2);
    EXPECT_LE(wait, full);
  }
}

TEST(Backoff, reset_starts_again_from_the_initial_delay) {
  Backoff backoff(10'000ms, 100ms, 7);
  for (int i = 0; i < 5; ++i) backoff.next();
  backoff.reset();
  EXPECT_LE(backoff.next(), 100ms);
}

}  // namespace
}  // namespace syncline
