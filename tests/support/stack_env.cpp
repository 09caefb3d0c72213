// Test support: stack addresses, reachability checks and polling (see stack_env.hpp).
#include "tests/support/stack_env.hpp"

#include <libpq-fe.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>

#include "common/http_client.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::test {

namespace {

constexpr std::string_view kHint = " — is `scripts/stack up` running?";

std::string stack_file_path() { return std::string(SYNCLINE_SOURCE_DIR) + "/scripts/stack.env"; }

std::map<std::string, std::string> read_stack_file() {
  std::map<std::string, std::string> values;
  std::ifstream file(stack_file_path());
  std::string line;
  while (std::getline(file, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto equals = line.find('=', first);
    if (equals == std::string::npos) continue;
    std::string key = line.substr(first, equals - first);
    if (key.starts_with("export ")) key = key.substr(7);
    std::string value = line.substr(equals + 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    values[key] = value;
  }
  return values;
}

struct HostPort {
  std::string host;
  std::string port;
  std::string text() const { return host + ":" + port; }
};

// Connects and closes a TCP socket; an error message, or empty on success.
std::string tcp_probe(const HostPort& address, std::chrono::milliseconds deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(address.host.c_str(), address.port.c_str(), &hints, &found); rc != 0) {
    return std::string("cannot resolve: ") + ::gai_strerror(rc);
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
  std::string error = "no address";
  for (const addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    int so_error = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      so_error = errno;
      if (so_error == EINPROGRESS) {
        pollfd pfd{fd, POLLOUT, 0};
        if (::poll(&pfd, 1, static_cast<int>(deadline.count())) == 1) {
          socklen_t length = sizeof so_error;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length);
        } else {
          so_error = ETIMEDOUT;
        }
      }
    }
    ::close(fd);
    if (so_error == 0) return {};
    error = std::strerror(so_error);
  }
  return error;
}

HostPort first_bootstrap_server(const std::string& bootstrap) {
  std::string first = bootstrap.substr(0, bootstrap.find(','));
  if (const auto scheme = first.find("://"); scheme != std::string::npos) first = first.substr(scheme + 3);
  const auto colon = first.rfind(':');
  if (colon == std::string::npos) return {first, "9092"};
  return {first.substr(0, colon), first.substr(colon + 1)};
}

// host:port of a libpq DSN, for messages (never the DSN itself: it holds a password).
std::string pg_address(const std::string& dsn) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return redact_secrets(dsn);
  }
  std::string host = "localhost";
  std::string port = "5432";
  for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val == nullptr) continue;
    if (std::strcmp(option->keyword, "host") == 0) host = option->val;
    if (std::strcmp(option->keyword, "port") == 0) port = option->val;
  }
  PQconninfoFree(options);
  return host + ":" + port;
}

::testing::AssertionResult require_pg(std::string_view service, const std::string& dsn,
                                      std::chrono::milliseconds deadline) {
  try {
    // libpq's connect_timeout has a resolution of seconds (and a minimum of 2).
    pg::PgConnection connection(
        dsn, std::chrono::duration_cast<std::chrono::seconds>(deadline + std::chrono::milliseconds(999)));
    connection.exec("SELECT 1");
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << service << " (" << pg_address(dsn) << ") is not reachable: " << e.what() << kHint;
  }
}

}  // namespace

std::string stack_value(std::string_view key) {
  const std::string name(key);
  if (const char* value = std::getenv(name.c_str()); value != nullptr && *value != '\0') return value;
  static const std::map<std::string, std::string> file_values = read_stack_file();
  if (const auto it = file_values.find(name); it != file_values.end() && !it->second.empty())
    return it->second;
  throw std::runtime_error(name + " is set neither in the environment nor in " + stack_file_path());
}

const StackEnv& stack_env() {
  static const StackEnv env{stack_value("SYNCLINE_WRITE_PG_DSN"), stack_value("SYNCLINE_READ_PG_DSN"),
                            stack_value("SYNCLINE_KAFKA_BOOTSTRAP"), stack_value("SYNCLINE_SEARCH_URL")};
  return env;
}

::testing::AssertionResult require_write_pg(std::chrono::milliseconds deadline) {
  return require_pg("write PostgreSQL", stack_env().write_pg_dsn, deadline);
}

::testing::AssertionResult require_read_pg(std::chrono::milliseconds deadline) {
  return require_pg("read PostgreSQL", stack_env().read_pg_dsn, deadline);
}

::testing::AssertionResult require_kafka(std::chrono::milliseconds deadline) {
  const HostPort address = first_bootstrap_server(stack_env().kafka_bootstrap);
  if (const std::string error = tcp_probe(address, deadline); !error.empty()) {
    return ::testing::AssertionFailure()
           << "Kafka (" << address.text() << ") is not reachable: " << error << kHint;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult require_stack() {
  for (const auto& require : {require_write_pg, require_read_pg, require_kafka, require_search}) {
    if (auto answered = require(std::chrono::seconds(3)); !answered) return answered;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult require_search(std::chrono::milliseconds deadline) {
  const std::string& url = stack_env().search_url;
  try {
    http::HttpClient client({.base_url = url, .connect_timeout = deadline, .request_timeout = deadline});
    const http::Response response = client.get("/_cluster/health");
    if (response.status != 200) {
      return ::testing::AssertionFailure()
             << "Elasticsearch (" << redact_secrets(url) << ") answered /_cluster/health with "
             << response.status << ": " << response.body << kHint;
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << "Elasticsearch (" << redact_secrets(url) << ") is not reachable: " << e.what() << kHint;
  }
}

::testing::AssertionResult poll_until(const std::function<bool()>& predicate,
                                      std::chrono::milliseconds deadline, std::string_view what) {
  const auto start = std::chrono::steady_clock::now();
  auto interval = std::chrono::milliseconds(5);
  while (true) {
    if (predicate()) return ::testing::AssertionSuccess();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed >= deadline) {
      return ::testing::AssertionFailure()
             << "timed out after " << deadline.count() << " ms waiting for " << what;
    }
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(interval, deadline - elapsed));
    interval = std::min(interval * 2, std::chrono::milliseconds(200));
  }
}

std::string unique_name(std::string_view prefix) {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string name = std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(now) +
                     "_" + std::to_string(counter.fetch_add(1));
  for (char& c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if ((c < 'a' || c > 'z') && (c < '0' || c > '9')) c = '_';
  }
  return name;
}

}  // namespace syncline::test
