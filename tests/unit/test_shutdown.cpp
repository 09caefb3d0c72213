// Unit tests for graceful shutdown: raising SIGTERM/SIGINT in-process sets the stop flag and
// wakes waiters.
#include <gtest/gtest.h>
#include <poll.h>

#include <csignal>
#include <future>

#include "common/shutdown.hpp"

namespace syncline::shutdown {
namespace {

class ShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    install_signal_handlers();
    reset_for_testing();
  }
  void TearDown() override { reset_for_testing(); }
};

TEST_F(ShutdownTest, NotRequestedInitially) {
  EXPECT_FALSE(requested());
  EXPECT_EQ(signal_number(), 0);
}

TEST_F(ShutdownTest, SigtermSetsTheFlagAndRecordsTheSignal) {
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_TRUE(requested());
  EXPECT_EQ(signal_number(), SIGTERM);
}

TEST_F(ShutdownTest, SigintSetsTheFlag) {
  ASSERT_EQ(std::raise(SIGINT), 0);
  EXPECT_TRUE(requested());
  EXPECT_EQ(signal_number(), SIGINT);
}

TEST_F(ShutdownTest, WaitTimesOutWhenNoStopIsRequested) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(wait_for(std::chrono::milliseconds(50)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
}

TEST_F(ShutdownTest, WaitReturnsAtOnceAfterTheSignal) {
  ASSERT_EQ(std::raise(SIGTERM), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_for(std::chrono::seconds(10)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(ShutdownTest, EveryWaitingThreadWakesOnTheSignal) {
  auto waiter = [] { return wait_for(std::chrono::seconds(30)); };
  auto first = std::async(std::launch::async, waiter);
  auto second = std::async(std::launch::async, waiter);
  ASSERT_EQ(std::raise(SIGTERM), 0);
  ASSERT_EQ(first.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(second.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(first.get());
  EXPECT_TRUE(second.get());
}

TEST_F(ShutdownTest, ProgrammaticRequestWakesPollLoops) {
  pollfd fd{wakeup_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&fd, 1, 0), 0);
  request();
  EXPECT_TRUE(requested());
  EXPECT_EQ(signal_number(), 0);
  EXPECT_EQ(::poll(&fd, 1, 1000), 1);
}

}  // namespace
}  // namespace syncline::shutdown
