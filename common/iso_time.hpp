// ISO-8601 UTC timestamps as Syncline writes them ("2026-11-22T10:00:00.123456Z"), parsed
// without locale or time-zone state, for latency metrics.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace syncline {

// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)"; nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_iso_utc(std::string_view text) noexcept;

// "2026-11-22T10:00:00.123Z" (milliseconds, UTC).
std::string format_iso_utc(std::chrono::system_clock::time_point time);

}  // namespace syncline
