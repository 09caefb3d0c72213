// JsonPath: the dotted path into an event's JSON envelope that configuration uses
// ("payload.items.0.id", a trailing '?' for optional), parsed once and resolved per event.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace syncline {

// One step of a path. A digits step indexes an array (or names an object key made of digits); it
// is parsed once here so that resolving does no string work.
struct JsonPathStep {
  std::string key;
  std::size_t index = 0;
  bool is_index = false;

  friend bool operator==(const JsonPathStep&, const JsonPathStep&) = default;
};

struct JsonPath {
  std::string text;  // as written, without the '?': "payload.items.0.id"
  std::vector<JsonPathStep> steps;
  bool optional = false;  // written with a trailing '?': an absent value is not an error

  friend bool operator==(const JsonPath&, const JsonPath&) = default;
};

// Grammar: step ('.' step)* '?'?, where a step is an identifier ([A-Za-z_][A-Za-z0-9_]*) or digits.
// Throws std::invalid_argument quoting `text` and saying what is wrong.
JsonPath parse_json_path(std::string_view text);

// The length of the path that starts `text` (including a trailing '?'), for parsers that find
// paths inside other text: steps run while a '.' is followed by a step character, so
// "payload.x. FROM" gives 9. 0 when `text` does not start with a step character. What it measures
// can still be refused by parse_json_path ("payload.0abc": a step mixing digits and letters).
std::size_t json_path_length(std::string_view text);

// The value at `path` in `root`, or nullptr when any step is absent (a missing key, an index out of
// range, or a step into a scalar). A JSON null that is present is returned, not nullptr.
const nlohmann::json* resolve(const nlohmann::json& root, const JsonPath& path);

// Throws std::invalid_argument unless the first step is an envelope field and a step after
// "source" a field of the source (schemas/envelope.schema.json allows no others): a typo in a
// configured path then fails start-up instead of every event. The message does not repeat the
// path, so callers can prefix it with where the path is configured.
void check_envelope_path(const JsonPath& path);

}  // namespace syncline
