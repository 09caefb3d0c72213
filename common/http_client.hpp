// HTTP client: an RAII libcurl easy handle with keep-alive, timeouts, authentication, TLS
// verification and optional gzip request bodies, behind a small request/response API.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace syncline::http {

struct ClientOptions {
  std::string base_url;  // "http://127.0.0.1:19200"; request paths are appended to it
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};  // whole request, 0 = none
  std::optional<std::string> username{};                                // basic auth, with password
  std::optional<std::string> password{};
  std::optional<std::string> api_key{};  // sent as "Authorization: ApiKey <key>"
  std::string ca_file{};                 // empty: the system's CA bundle
  bool verify_tls = true;                // peer and host verification; off only for local testing
  bool gzip_requests = false;            // compress request bodies (Content-Encoding: gzip)
  std::size_t gzip_min_bytes = 1024;     // smaller bodies are not worth compressing
};

struct Request {
  std::string method = "GET";
  std::string path{};  // "/index/_bulk?refresh=false"
  std::string body{};
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers{};
};

struct Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::optional<std::string> header(const std::string& lower_case_name) const;
};

// A transport failure (no HTTP status): connection refused, timeout, TLS, ... The message holds
// the URL with any credentials redacted.
class HttpError : public std::runtime_error {
 public:
  HttpError(int curl_code, bool retriable, const std::string& what)
      : std::runtime_error(what), curl_code_(curl_code), retriable_(retriable) {}
  int curl_code() const noexcept { return curl_code_; }
  bool retriable() const noexcept { return retriable_; }

 private:
  int curl_code_;
  bool retriable_;
};

// Whether a libcurl result code is worth retrying (network/timeout) or not (TLS, bad URL, ...).
bool is_retriable_curl_code(int curl_code) noexcept;
// Whether an HTTP status is worth retrying: 408, 429 and 5xx except 501/505.
bool is_retriable_status(long status) noexcept;

struct CurlDeleter {
  void operator()(CURL* handle) const noexcept;
};

// One connection-reusing client. Not thread-safe: one per thread (libcurl easy handles are not
// shared). HTTP error statuses are returned, not thrown.
class HttpClient {
 public:
  explicit HttpClient(ClientOptions options);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  Response send(const Request& request);
  Response get(const std::string& path) { return send({"GET", path, {}, {}, {}}); }
  Response del(const std::string& path) { return send({"DELETE", path, {}, {}, {}}); }
  Response put(const std::string& path, std::string body) {
    return send({"PUT", path, std::move(body), "application/json", {}});
  }
  Response post(const std::string& path, std::string body, std::string content_type = "application/json") {
    return send({"POST", path, std::move(body), std::move(content_type), {}});
  }

  const ClientOptions& options() const noexcept { return options_; }

 private:
  ClientOptions options_;
  std::unique_ptr<CURL, CurlDeleter> handle_;
};

// gzip-compresses `data` (exposed for tests).
std::string gzip(std::string_view data);

}  // namespace syncline::http
