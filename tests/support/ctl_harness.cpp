// Running syncline-ctl from a test (see ctl_harness.hpp).
#include "tests/support/ctl_harness.hpp"

#include <csignal>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "tests/support/stack_env.hpp"
#include "syncline_test_binaries.hpp"

namespace syncline::test {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string CtlResult::describe() const {
  return fmt::format("`{}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}", command, exit_code, out, err);
}

CtlProcess::CtlProcess(std::vector<std::string> args) : args_(std::move(args)) {
  const std::string name = unique_name("ctl");
  out_path_ = fmt::format("/tmp/{}.out", name);
  err_path_ = fmt::format("/tmp/{}.err", name);
  // The child's stdout goes to out_path_ (ChildProcess's log); the shell moves stderr apart,
  // then becomes syncline-ctl (exec), so signals reach the tool itself.
  std::vector<std::string> shell_args{"-c", fmt::format("exec 2>>'{}'; exec \"$0\" \"$@\"", err_path_),
                                      SYNCLINE_CTL_BIN};
  shell_args.insert(shell_args.end(), args_.begin(), args_.end());
  process_ = std::make_unique<ChildProcess>("/bin/sh", std::move(shell_args), out_path_);
}

CtlProcess::~CtlProcess() {
  process_.reset();
  std::remove(out_path_.c_str());
  std::remove(err_path_.c_str());
}

void CtlProcess::start() { process_->start(); }

bool CtlProcess::running() { return process_->running(); }

std::string CtlProcess::out_so_far() const { return read_file(out_path_); }
std::string CtlProcess::err_so_far() const { return read_file(err_path_); }

CtlResult CtlProcess::collect(std::optional<int> status) const {
  CtlResult result;
  result.exit_code = status.value_or(-1);
  result.out = out_so_far();
  result.err = err_so_far();
  result.command = "syncline-ctl";
  for (const auto& arg : args_) result.command += " " + arg;
  return result;
}

CtlResult CtlProcess::wait(std::chrono::milliseconds timeout) { return collect(process_->wait(timeout)); }

CtlResult CtlProcess::stop(int signal, std::chrono::milliseconds timeout) {
  return collect(process_->stop(signal, timeout));
}

CtlResult run_ctl(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  CtlProcess process(std::move(args));
  process.start();
  auto result = process.wait(timeout);
  if (result.exit_code == -1) process.process().stop(SIGKILL, std::chrono::seconds(5));
  return result;
}

}  // namespace syncline::test
