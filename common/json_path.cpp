// JsonPath parsing and resolving, shared by SQL projection parameters and search-index mappings.
#include "common/json_path.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>
#include <system_error>

namespace syncline {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_step_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_step_char(char c) { return is_step_start(c) || is_digit(c); }

constexpr std::array<std::string_view, 11> kEnvelopeFields = {
    "id", "type",   "aggregate_type", "aggregate_id", "occurred_at", "payload",
    "op", "before", "after",          "source",       "headers"};
constexpr std::array<std::string_view, 10> kSourceFields = {
    "db", "schema", "table", "lsn", "commit_lsn", "seq", "txid", "commit_ts", "snapshot", "unchanged_toast"};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

template <std::size_t N>
std::string join(const std::array<std::string_view, N>& names) {
  std::string out;
  for (const auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

JsonPath parse_json_path(std::string_view text) {
  const auto fail = [&](const std::string& what) {
    throw std::invalid_argument("JSON path '" + std::string(text) + "': " + what);
  };
  if (text.empty()) throw std::invalid_argument("empty JSON path");
  JsonPath path;
  std::string_view rest = text;
  if (rest.ends_with('?')) {
    path.optional = true;
    rest.remove_suffix(1);
  }
  path.text = std::string(rest);
  std::size_t begin = 0;
  while (true) {
    std::size_t end = begin;
    while (end < rest.size() && is_step_char(rest[end])) ++end;
    if (end == begin) {
      if (begin < rest.size() && rest[begin] != '.') {
        fail("unexpected character '" + std::string(1, rest[begin]) + "' at position " +
             std::to_string(begin + 1));
      }
      fail(begin == rest.size() && begin > 0 ? "a '.' that no step follows" : "an empty step");
    }
    const std::string_view step = rest.substr(begin, end - begin);
    if (is_step_start(step.front())) {
      path.steps.push_back({std::string(step), 0, false});
    } else {
      if (!std::all_of(step.begin(), step.end(), is_digit)) {
        fail("the step '" + std::string(step) +
             "' mixes digits and letters (a path step is an identifier or digits, "
             "not both)");
      }
      JsonPathStep index{std::string(step), 0, true};
      const auto [last, error] = std::from_chars(step.data(), step.data() + step.size(), index.index);
      if (error != std::errc() || last != step.data() + step.size())
        fail("array index " + index.key + " too large");
      path.steps.push_back(std::move(index));
    }
    if (end == rest.size()) break;
    if (rest[end] != '.') {
      fail("unexpected character '" + std::string(1, rest[end]) + "' at position " + std::to_string(end + 1));
    }
    begin = end + 1;
  }
  return path;
}

std::size_t json_path_length(std::string_view text) {
  std::size_t i = 0;
  const auto step = [&] {
    while (i < text.size() && is_step_char(text[i])) ++i;
  };
  if (text.empty() || !is_step_char(text.front())) return 0;
  step();
  while (i + 1 < text.size() && text[i] == '.' && is_step_char(text[i + 1])) {
    ++i;
    step();
  }
  if (i < text.size() && text[i] == '?') ++i;
  return i;
}

const nlohmann::json* resolve(const nlohmann::json& root, const JsonPath& path) {
  const nlohmann::json* value = &root;
  for (const JsonPathStep& step : path.steps) {
    if (value->is_object()) {
      const auto found = value->find(step.key);
      if (found == value->end()) return nullptr;
      value = &*found;
    } else if (step.is_index && value->is_array() && step.index < value->size()) {
      value = &(*value)[step.index];
    } else {
      return nullptr;
    }
  }
  return value;
}

void check_envelope_path(const JsonPath& path) {
  if (path.steps.empty()) throw std::invalid_argument("an empty path");
  const std::string& field = path.steps.front().key;
  if (!contains(kEnvelopeFields, field)) {
    throw std::invalid_argument("the envelope has no field '" + field + "' (it has " + join(kEnvelopeFields) +
                                ")");
  }
  if (field == "source" && path.steps.size() > 1 && !contains(kSourceFields, path.steps[1].key)) {
    throw std::invalid_argument("the envelope's source has no field '" + path.steps[1].key + "' (it has " +
                                join(kSourceFields) + ")");
  }
}

}  // namespace syncline
