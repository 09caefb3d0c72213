// ChildProcess: a Syncline binary started by a test, killed or stopped by it, reaped on destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace syncline::test {

// Owned by the test thread. The child's stdout and stderr go to `log_path` (appended), so a failing
// test can show what the binary said.
class ChildProcess {
 public:
  ChildProcess(std::string program, std::vector<std::string> args, std::string log_path);
  ~ChildProcess();  // SIGKILL and reap if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void start();
  // An environment variable for the next start() (e.g. SYNCLINE_FAILPOINTS); an empty value unsets it.
  void set_env(std::string name, std::string value);
  bool running();
  pid_t pid() const { return pid_; }
  // Sends `signal` and waits up to `timeout` for the exit; returns the exit status (128+signal when
  // killed by a signal), or nullopt if it did not exit in time.
  std::optional<int> stop(int signal, std::chrono::milliseconds timeout);
  std::optional<int> wait(std::chrono::milliseconds timeout);
  const std::string& log_path() const { return log_path_; }
  // The last `lines` lines of the log, for failure messages.
  std::string log_tail(std::size_t lines = 40) const;

 private:
  std::string program_;
  std::vector<std::string> args_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::string log_path_;
  pid_t pid_ = -1;
  int pidfd_ = -1;  // readable once the child exits
  std::optional<int> exit_status_;
};

// Peak resident set of a running process, from the kernel's accounting (VmHWM), in KiB; -1 if unknown.
long peak_rss_kib(pid_t pid);

}  // namespace syncline::test
