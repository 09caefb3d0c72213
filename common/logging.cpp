// Logging: shared stderr sink, text or JSON-lines formatters, and redaction of every message.
#include "common/logging.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace syncline {

namespace {

constexpr std::string_view mask = "***";

std::string lower_alnum(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0)
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Key names compared lower-case without '_'/'-', so api_key, API-KEY and apiKey all match.
bool is_secret_key(std::string_view key) {
  static constexpr std::array<std::string_view, 8> secret_words = {
      "password", "passwd", "pwd", "secret", "apikey", "token", "credential", "privatekey"};
  const std::string normal = lower_alnum(key);
  return normal == "authorization" ||
         std::any_of(secret_words.begin(), secret_words.end(),
                     [&](std::string_view word) { return normal.find(word) != std::string::npos; });
}

bool is_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
}

bool ends_bare_value(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0 ||
         std::string_view(",;&})]\"'").find(c) != std::string_view::npos;
}

// user:secret@ in the authority of any URL (postgresql://, postgres://, http://, ...).
std::string redact_url_passwords(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto scheme_end = text.find("://", pos);
    if (scheme_end == std::string_view::npos) break;
    const auto authority = scheme_end + 3;
    auto end = authority;
    while (end < text.size() && std::isspace(static_cast<unsigned char>(text[end])) == 0 &&
           std::string_view("/?#\"'<>").find(text[end]) == std::string_view::npos) {
      ++end;
    }
    const auto userinfo = text.substr(authority, end - authority);
    const auto at = userinfo.rfind('@');
    const auto colon = userinfo.find(':');
    if (at != std::string_view::npos && colon < at) {
      out.append(text.substr(pos, authority + colon + 1 - pos));
      out.append(mask);
      out.append(text.substr(authority + at, end - authority - at));
    } else {
      out.append(text.substr(pos, end - pos));
    }
    pos = end;
  }
  out.append(text.substr(std::min(pos, text.size())));
  return out;
}

// The value after a secret key: "quoted", 'quoted', \"escaped-quoted\" (JSON inside JSON) or bare.
// Returns its end; writes the masked value to `out`.
std::size_t mask_value(std::string_view text, std::size_t start, std::string& out) {
  for (const std::string_view quote :
       {std::string_view("\\\""), std::string_view("\""), std::string_view("'")}) {
    if (text.substr(start).starts_with(quote)) {
      auto close = start + quote.size();
      while (close < text.size() && !text.substr(close).starts_with(quote))
        close += text[close] == '\\' && quote.size() == 1 ? 2 : 1;
      out.append(quote).append(mask).append(quote);
      return std::min(close + quote.size(), text.size());
    }
  }
  auto end = start;
  while (end < text.size() && !ends_bare_value(text[end])) ++end;
  if (end > start) out.append(mask);
  return end;
}

// key=value, key: value, "key": "value" and 'key': 'value' where the key names a secret.
std::string redact_key_values(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!is_key_char(text[pos])) {
      out += text[pos++];
      continue;
    }
    auto key_end = pos;
    while (key_end < text.size() && is_key_char(text[key_end])) ++key_end;
    const auto key = text.substr(pos, key_end - pos);
    out.append(key);
    pos = key_end;
    if (!is_secret_key(key)) continue;

    // Closing quote of a quoted key (also \" inside escaped JSON), then ':' or '=' with spaces around.
    auto cursor = pos;
    if (text.substr(cursor).starts_with("\\\""))
      cursor += 2;
    else if (cursor < text.size() && (text[cursor] == '"' || text[cursor] == '\''))
      ++cursor;
    while (cursor < text.size() && text[cursor] == ' ') ++cursor;
    if (cursor >= text.size() || (text[cursor] != ':' && text[cursor] != '=')) continue;
    ++cursor;
    while (cursor < text.size() && text[cursor] == ' ') ++cursor;
    out.append(text.substr(pos, cursor - pos));

    // "Authorization: Bearer abc": keep the scheme, hide the credentials.
    if (lower_alnum(key) == "authorization") {
      auto word_end = cursor;
      while (word_end < text.size() && std::isalpha(static_cast<unsigned char>(text[word_end])) != 0)
        ++word_end;
      static constexpr std::array<std::string_view, 5> schemes = {"basic", "bearer", "apikey", "digest",
                                                                  "negotiate"};
      const auto word = lower_alnum(text.substr(cursor, word_end - cursor));
      if (word_end < text.size() && text[word_end] == ' ' &&
          std::find(schemes.begin(), schemes.end(), word) != schemes.end()) {
        out.append(text.substr(cursor, word_end + 1 - cursor));
        cursor = word_end + 1;
      }
    }
    pos = mask_value(text, cursor, out);
  }
  return out;
}

}  // namespace

std::string redact_secrets(std::string_view text) { return redact_key_values(redact_url_passwords(text)); }

namespace log {

namespace {

std::string_view as_string_view(spdlog::string_view_t text) { return {text.data(), text.size()}; }

std::string iso8601_utc(spdlog::log_clock::time_point time) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", utc, since_epoch.count() % 1000);
}

class JsonLinesFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const nlohmann::ordered_json line = {
        {"ts", iso8601_utc(msg.time)},
        {"level", as_string_view(spdlog::level::to_string_view(msg.level))},
        {"logger", as_string_view(msg.logger_name)},
        {"msg", as_string_view(msg.payload)},
    };
    // A message with invalid UTF-8 must still produce a line, not an exception in the logger.
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonLinesFormatter>(); }
};

// Redacts the message before the inner formatter sees it, so no sink can receive a secret.
class RedactingFormatter final : public spdlog::formatter {
 public:
  explicit RedactingFormatter(std::unique_ptr<spdlog::formatter> inner) : inner_(std::move(inner)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string redacted = redact_secrets(as_string_view(msg.payload));
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(redacted.data(), redacted.size());
    inner_->format(copy, dest);
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<RedactingFormatter>(inner_->clone());
  }

 private:
  std::unique_ptr<spdlog::formatter> inner_;
};

spdlog::level::level_enum parse_level(const std::string& name) {
  const auto level = spdlog::level::from_str(name);
  // from_str answers "off" for any name it does not know; a typo must not silence the logs.
  if (level == spdlog::level::off && name != "off") {
    throw std::invalid_argument(fmt::format("unknown log level '{}'", name));
  }
  return level;
}

struct Registry {
  Registry() { spdlog::set_formatter(make_formatter(Format::text)); }

  std::mutex mutex;  // makes get()'s look-up-or-create atomic
  // stderr, so that a program's own output on stdout (syncline-ctl tables, --json) stays clean.
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
};

// Constructed on first use, so loggers made before init() redact too.
Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

std::unique_ptr<spdlog::formatter> make_formatter(Format format) {
  std::unique_ptr<spdlog::formatter> inner;
  if (format == Format::json) {
    inner = std::make_unique<JsonLinesFormatter>();
  } else {
    inner = std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l [%n] %v",
                                                        spdlog::pattern_time_type::utc);
  }
  return std::make_unique<RedactingFormatter>(std::move(inner));
}

void init(const Options& options) {
  const auto level = parse_level(options.level);
  auto& state = registry();
  const std::lock_guard lock(state.mutex);
  spdlog::set_formatter(make_formatter(options.format));
  spdlog::set_level(level);
  // Third-party code and stray spdlog::info() calls go through the same sink and redaction.
  auto fallback = std::make_shared<spdlog::logger>("", state.sink);
  fallback->set_formatter(make_formatter(options.format));
  fallback->set_level(level);
  spdlog::set_default_logger(std::move(fallback));
}

std::shared_ptr<spdlog::logger> get(std::string_view module) {
  auto& state = registry();
  const std::string name(module);
  const std::lock_guard lock(state.mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, state.sink);
  // Registers it and applies the formatter and level init() set.
  spdlog::initialize_logger(logger);
  return logger;
}

}  // namespace log

}  // namespace syncline
