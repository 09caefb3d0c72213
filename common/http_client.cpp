// HTTP client over a libcurl easy handle (see http_client.hpp).
#include "common/http_client.hpp"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>

#include "common/logging.hpp"

namespace syncline::http {

namespace {

struct SlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

void global_init() {
  // curl_global_init is not thread-safe; run it once before the first handle.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto& headers = *static_cast<std::map<std::string, std::string>*>(user);
  const std::string_view line(data, size * count);
  // A new status line (after a redirect or "100 Continue") starts a new header block.
  if (line.starts_with("HTTP/")) {
    headers.clear();
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string_view value = line.substr(colon + 1);
    const auto first = value.find_first_not_of(" \t");
    const auto last = value.find_last_not_of(" \t\r\n");
    headers[name] = first == std::string_view::npos ? "" : std::string(value.substr(first, last - first + 1));
  }
  return size * count;
}

SlistPtr append_header(SlistPtr list, const std::string& header) {
  curl_slist* appended = curl_slist_append(list.get(), header.c_str());
  if (appended == nullptr) throw std::bad_alloc();
  (void)list.release();  // `appended` is the same list, grown
  return SlistPtr(appended);
}

}  // namespace

void CurlDeleter::operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }

std::optional<std::string> Response::header(const std::string& lower_case_name) const {
  const auto it = headers.find(lower_case_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

bool is_retriable_curl_code(int curl_code) noexcept {
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_AGAIN:
      return true;
    default:
      return false;
  }
}

bool is_retriable_status(long status) noexcept {
  return status == 408 || status == 429 || (status >= 500 && status != 501 && status != 505);
}

std::string gzip(std::string_view data) {
  // cpp-httplib (already linked, built with zlib) does the deflating, so Syncline needs no
  // direct zlib dependency.
  httplib::detail::gzip_compressor compressor;
  std::string out;
  const bool ok =
      compressor.compress(data.data(), data.size(), true, [&out](const char* chunk, std::size_t size) {
        out.append(chunk, size);
        return true;
      });
  if (!ok) throw std::runtime_error("gzip compression failed");
  return out;
}

HttpClient::HttpClient(ClientOptions options) : options_(std::move(options)) {
  global_init();
  handle_.reset(curl_easy_init());
  if (!handle_) throw std::runtime_error("curl_easy_init failed");
  while (options_.base_url.ends_with('/')) options_.base_url.pop_back();
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

Response HttpClient::send(const Request& request) {
  CURL* curl = handle_.get();
  // Reset keeps the live connections (keep-alive) and caches, and forgets the last request's
  // options, so no body or method leaks from one request into the next.
  curl_easy_reset(curl);

  const std::string url = options_.base_url + request.path;
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  Response response;
  std::string body = request.body;
  SlistPtr headers;
  headers = append_header(std::move(headers), "Expect:");  // no 100-continue round trip
  if (!body.empty() || request.method == "POST" || request.method == "PUT") {
    headers = append_header(std::move(headers), "Content-Type: " + request.content_type);
  }
  if (options_.gzip_requests && body.size() >= options_.gzip_min_bytes) {
    body = gzip(body);
    headers = append_header(std::move(headers), "Content-Encoding: gzip");
  }
  if (options_.api_key)
    headers = append_header(std::move(headers), "Authorization: ApiKey " + *options_.api_key);
  for (const auto& [name, value] : request.headers)
    headers = append_header(std::move(headers), std::string(name).append(": ").append(value));

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: we are multithreaded
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // any encoding curl can decode
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (options_.username) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, options_.username->c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, options_.password.value_or("").c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer.data());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);

  if (request.method == "GET" && body.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!body.empty() || request.method == "POST" || request.method == "PUT") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
  }

  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    const std::string detail = error_buffer[0] != '\0' ? error_buffer.data() : curl_easy_strerror(code);
    throw HttpError(code, is_retriable_curl_code(code),
                    request.method + " " + redact_secrets(url) + " failed: " + redact_secrets(detail));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  log::get("http")->debug("{} {} -> {}", request.method, redact_secrets(url), response.status);
  return response;
}

}  // namespace syncline::http
