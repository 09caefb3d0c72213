// JSON text written straight into a string, byte for byte as nlohmann::json::dump() writes it, for the
// producer's hot path: no JSON tree is built per event.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace syncline::json_text {

// Appends `text` as a JSON string: UTF-8 kept as it is; '"', '\' and control characters escaped as
// dump() escapes them (\b \t \n \f \r, else \u00xx). Invalid UTF-8 throws dump()'s
// nlohmann::json::type_error (316), message included.
void append_string(std::string& out, std::string_view text);

void append_unsigned(std::string& out, std::uint64_t value);

// Appends `value.dump()` without the intermediate string.
void append_dump(std::string& out, const nlohmann::json& value);

// Appends nlohmann::json::parse(text).dump() — keys sorted, duplicates resolved, numbers and strings
// normalised — and returns true, for the JSON PostgreSQL's json/jsonb output and most writers produce:
// objects, arrays, strings, integers, literals. Returns false with `out` unchanged for what it leaves to
// nlohmann (floats, integers beyond 64 bits, duplicate keys, keys that need escaping in an object whose
// keys are out of order, nesting deeper than 64) and for anything that is not valid JSON, so that
// the caller's nlohmann::json::parse() decides and reports exactly as before.
bool append_canonical(std::string& out, std::string_view text);

}  // namespace syncline::json_text
