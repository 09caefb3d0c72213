// Logging: one named spdlog logger per module, text or JSON lines, secrets redacted.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace syncline::log {

enum class Format { text, json };

struct Options {
  std::string level = "info";  // trace|debug|info|warn|error|critical|off
  Format format = Format::text;
};

// Configures every logger, present and future. Safe to call more than once.
void init(const Options& options);

// The logger of one module ("producer", "kafka", "pg", ...), created on first use.
std::shared_ptr<spdlog::logger> get(std::string_view module);

// The formatter init() installs: redacts every message, then writes one text or JSON line
// ({"ts","level","logger","msg"}). For sinks built by hand, e.g. in tests.
std::unique_ptr<spdlog::formatter> make_formatter(Format format);

}  // namespace syncline::log

namespace syncline {

// Returns `text` with secrets replaced by "***": passwords in postgres URIs
// (postgresql://user:secret@host) and key/value DSNs (password=secret), user:secret@ in any URL,
// and values of keys named like password/secret/api_key/token in "k=v" or JSON-ish text.
std::string redact_secrets(std::string_view text);

}  // namespace syncline
