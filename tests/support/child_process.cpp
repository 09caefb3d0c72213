// ChildProcess: fork/exec, signals and reaping for tests that run Syncline binaries.
#include "tests/support/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace syncline::test {

ChildProcess::ChildProcess(std::string program, std::vector<std::string> args, std::string log_path)
    : program_(std::move(program)), args_(std::move(args)), log_path_(std::move(log_path)) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
}

void ChildProcess::start() {
  if (pid_ > 0 && !exit_status_) throw std::logic_error("process already running");
  std::vector<char*> argv;
  argv.push_back(program_.data());
  for (auto& arg : args_) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // The environment is built before fork(): the child of a multi-threaded test may only call
  // async-signal-safe functions, so it cannot setenv() itself.
  std::vector<std::string> overrides;
  for (const auto& [key, value] : env_) {
    if (!value.empty()) overrides.push_back(key + "=" + value);  // empty: unset
  }
  std::vector<char*> envp;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const auto name = text.substr(0, text.find('='));
    bool replaced = false;
    for (const auto& [key, value] : env_) replaced = replaced || key == name;
    if (!replaced) envp.push_back(*entry);
  }
  for (auto& entry : overrides) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_path_);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execve(program_.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fd);
  pid_ = pid;
  exit_status_.reset();
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // glibc 2.36 declares pidfd_open without C linkage
  if (pidfd_ < 0) throw std::runtime_error("pidfd_open failed");
}

void ChildProcess::set_env(std::string name, std::string value) {
  std::erase_if(env_, [&](const auto& entry) { return entry.first == name; });
  env_.emplace_back(std::move(name), std::move(value));
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exit_status_) return false;
  return !wait(std::chrono::milliseconds(0)).has_value();
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (exit_status_) return exit_status_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      ::close(pidfd_);
      pidfd_ = -1;
      return exit_status_;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    // The pidfd becomes readable when the child exits: block on that, bounded by the deadline.
    pollfd exited{pidfd_, POLLIN, 0};
    ::poll(&exited, 1, static_cast<int>(left.count()));
  }
}

std::optional<int> ChildProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || exit_status_) return exit_status_;
  ::kill(pid_, signal);
  return wait(timeout);
}

std::string ChildProcess::log_tail(std::size_t lines) const {
  std::ifstream in(log_path_);
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string text;
  for (const auto& line : tail) text += line + "\n";
  return text;
}

long peak_rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

}  // namespace syncline::test
