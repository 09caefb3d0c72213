// Graceful shutdown on SIGTERM/SIGINT through an atomic flag and a self-pipe (see shutdown.hpp).
#include "common/shutdown.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

namespace syncline::shutdown {

namespace {

static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

std::atomic<bool> g_requested{false};
std::atomic<int> g_signal{0};
// The pipe is never drained while stopping: it stays readable, so every waiter, present and
// future, wakes up.
std::array<int, 2> g_pipe{-1, -1};
std::once_flag g_pipe_once;

void ensure_pipe() {
  std::call_once(g_pipe_once, [] {
    if (::pipe2(g_pipe.data(), O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::runtime_error(std::string("cannot create the shutdown pipe: ") + std::strerror(errno));
    }
  });
}

void wake() noexcept {
  if (g_requested.exchange(true)) return;  // one byte is enough for everyone
  const int saved_errno = errno;           // a signal handler must not change errno
  const char byte = 1;
  while (::write(g_pipe[1], &byte, 1) < 0 && errno == EINTR) {
  }
  errno = saved_errno;
}

void on_signal(int signal) {
  int expected = 0;
  g_signal.compare_exchange_strong(expected, signal);
  wake();
}

}  // namespace

void install_signal_handlers() {
  ensure_pipe();
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (const int signal : {SIGTERM, SIGINT}) {
    if (::sigaction(signal, &action, nullptr) != 0) {
      throw std::runtime_error(std::string("cannot install the signal handler: ") + std::strerror(errno));
    }
  }
}

void request() noexcept {
  try {
    ensure_pipe();
  } catch (...) {
    g_requested.store(true);
    return;
  }
  wake();
}

bool requested() noexcept { return g_requested.load(); }

int signal_number() noexcept { return g_signal.load(); }

bool wait_for(std::chrono::milliseconds timeout) {
  ensure_pipe();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!requested()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd fd{g_pipe[0], POLLIN, 0};
    // Round up so a sub-millisecond remainder does not spin.
    const int rc = ::poll(&fd, 1, static_cast<int>(std::min<long long>(left.count() + 1, 60'000)));
    if (rc < 0 && errno != EINTR)
      throw std::runtime_error(std::string("poll failed: ") + std::strerror(errno));
  }
  return requested();
}

int wakeup_fd() {
  ensure_pipe();
  return g_pipe[0];
}

void reset_for_testing() {
  ensure_pipe();
  std::array<char, 16> buffer{};
  while (::read(g_pipe[0], buffer.data(), buffer.size()) > 0) {
  }
  g_signal.store(0);
  g_requested.store(false);
}

}  // namespace syncline::shutdown
