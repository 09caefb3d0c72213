// Running syncline-ctl from a test: its exit code, stdout and stderr kept apart (stdout holds the
// table or --json, stderr the progress and logs).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"

namespace syncline::test {

struct CtlResult {
  int exit_code = -1;  // 128+signal when killed; -1 when it did not finish in time
  std::string out;
  std::string err;
  // For failure messages: the command line, exit code and both outputs.
  std::string describe() const;
  std::string command;
};

// A syncline-ctl run in the background (a resync while a workload runs, an interrupted run).
class CtlProcess {
 public:
  // `args` follow the binary: e.g. {"--config", path, "status", "--json"}.
  explicit CtlProcess(std::vector<std::string> args);
  ~CtlProcess();  // SIGKILL if still running
  CtlProcess(const CtlProcess&) = delete;
  CtlProcess& operator=(const CtlProcess&) = delete;

  void start();
  bool running();
  ChildProcess& process() { return *process_; }
  // Waits for the exit (up to `timeout`), then collects the outputs.
  CtlResult wait(std::chrono::milliseconds timeout);
  // Sends `signal`, then as wait().
  CtlResult stop(int signal, std::chrono::milliseconds timeout);
  // What it has written so far.
  std::string out_so_far() const;
  std::string err_so_far() const;

 private:
  CtlResult collect(std::optional<int> status) const;
  std::vector<std::string> args_;
  std::string out_path_;
  std::string err_path_;
  std::unique_ptr<ChildProcess> process_;
};

// Runs syncline-ctl to completion (failing the result with exit_code -1 after `timeout`).
CtlResult run_ctl(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(120));

}  // namespace syncline::test
