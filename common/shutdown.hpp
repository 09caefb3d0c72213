// Graceful shutdown: SIGTERM/SIGINT set a process-wide stop flag that loops poll or wait on.
#pragma once

#include <chrono>

namespace syncline::shutdown {

// Installs the SIGTERM and SIGINT handlers. Call once from main() before starting threads.
// The handler only sets an atomic flag and writes to a self-pipe (async-signal-safe).
void install_signal_handlers();

// Asks for a stop as a signal would (e.g. after a fatal error elsewhere). Async-signal-safe
// once install_signal_handlers() or wakeup_fd() has run (they create the self-pipe).
void request() noexcept;

// True once a stop was requested. Cheap: loops may call it on every iteration.
bool requested() noexcept;

// The signal that requested the stop, 0 if none or request() was used.
int signal_number() noexcept;

// Blocks until a stop is requested or `timeout` passes; returns requested(). Any number of
// threads may wait at once; all wake up. Use it instead of sleeping between retries.
bool wait_for(std::chrono::milliseconds timeout);

// The readable end of the self-pipe: becomes readable on stop, for poll()-based loops.
int wakeup_fd();

// Clears the flag so a test can request again. Not for production code.
void reset_for_testing();

}  // namespace syncline::shutdown
