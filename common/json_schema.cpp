// JSON Schema validation with valijson, with violations rephrased for people and located by path.
#include "common/json_schema.hpp"
#include "syncline_source_dir.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace syncline {

using nlohmann::json;

struct JsonSchema::Impl {
  json document;  // kept to explain violations (expected types, allowed keys)
  valijson::Schema schema;
};

namespace {

// valijson reports each failure again at every enclosing level; these add nothing to the innermost one.
bool is_wrapper_error(std::string_view description) {
  constexpr std::array<std::string_view, 4> wrappers = {
      "Failed to validate against schema associated with property name",
      "Failed to validate item #",
      "Failed to validate against additional properties schema",
      "Failed to validate against child schema #",
  };
  for (const auto prefix : wrappers) {
    if (description.starts_with(prefix)) return true;
  }
  return false;
}

// valijson's context is {"<root>", "[key]", "[3]", ...}; whether "[3]" is an index depends on the document.
SchemaPath to_path(const std::vector<std::string>& context, const json& document) {
  SchemaPath path;
  const json* current = &document;
  for (std::size_t i = 1; i < context.size(); ++i) {
    std::string step = context[i];
    if (step.size() >= 2 && step.front() == '[' && step.back() == ']') step = step.substr(1, step.size() - 2);
    if (current != nullptr && current->is_array()) {
      const auto index = static_cast<std::size_t>(std::stoull(step));
      path.emplace_back(index);
      current = index < current->size() ? &(*current)[index] : nullptr;
    } else {
      current =
          current != nullptr && current->is_object() && current->contains(step) ? &(*current)[step] : nullptr;
      path.emplace_back(std::move(step));
    }
  }
  return path;
}

const json* resolve_ref(const json& root, const json* schema) {
  // Only local refs ("#/definitions/x") are used in our schemas; a few hops cover refs to refs.
  for (int hops = 0; schema != nullptr && schema->is_object() && schema->contains("$ref") && hops < 8;
       ++hops) {
    const auto& ref = (*schema)["$ref"].get_ref<const std::string&>();
    if (!ref.starts_with("#")) return nullptr;
    const json::json_pointer pointer(ref.substr(1));
    schema = root.contains(pointer) ? &root.at(pointer) : nullptr;
  }
  return schema;
}

const json* member(const json* object, const std::string& key) {
  if (object == nullptr || !object->is_object()) return nullptr;
  const auto it = object->find(key);
  return it == object->end() ? nullptr : &*it;
}

// The subschema that governs the value at `path`, when it can be found without evaluating combinators.
const json* subschema_at(const json& root, const SchemaPath& path) {
  const json* schema = resolve_ref(root, &root);
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      const json* property = member(member(schema, "properties"), *key);
      schema = property != nullptr ? property : member(schema, "additionalProperties");
    } else {
      schema = member(schema, "items");
    }
    schema = resolve_ref(root, schema);
  }
  return schema != nullptr && schema->is_object() ? schema : nullptr;
}

const json* value_at(const json& document, const SchemaPath& path) {
  const json* value = &document;
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      if (!value->is_object() || !value->contains(*key)) return nullptr;
      value = &(*value)[*key];
    } else {
      const auto index = std::get<std::size_t>(step);
      if (!value->is_array() || index >= value->size()) return nullptr;
      value = &(*value)[index];
    }
  }
  return value;
}

std::string json_type_name(const json& value) {
  if (value.is_number_integer()) return "integer";
  return value.type_name();
}

std::string join_strings(const json& values) {
  std::vector<std::string> parts;
  for (const auto& value : values)
    parts.push_back(value.is_string() ? value.get<std::string>() : value.dump());
  return fmt::format("{}", fmt::join(parts, ", "));
}

SchemaViolation explain(const valijson::ValidationResults::Error& error, const json& schema_root,
                        const json& document) {
  SchemaViolation violation{to_path(error.context, document), error.description};
  const std::string_view description = error.description;
  const json* schema = subschema_at(schema_root, violation.path);
  const json* value = value_at(document, violation.path);

  constexpr std::string_view unknown_marker = "or 'additionalProperties' constraints: '";
  if (const auto at = description.find(unknown_marker); at != std::string_view::npos) {
    auto key = description.substr(at + unknown_marker.size());
    key = key.substr(0, key.rfind("'."));
    violation.path.emplace_back(std::string(key));
    violation.message = "unknown key";
    if (schema != nullptr && schema->contains("properties")) {
      std::vector<std::string> known;
      for (const auto& [name, _] : (*schema)["properties"].items()) known.push_back(name);
      violation.message += fmt::format(" (expected one of: {})", fmt::join(known, ", "));
    }
  } else if (description.starts_with("Missing required property '")) {
    auto key = description.substr(std::string_view("Missing required property '").size());
    violation.path.emplace_back(std::string(key.substr(0, key.rfind("'."))));
    violation.message = "missing (required)";
  } else if (description.starts_with("Value type not permitted") && schema != nullptr &&
             schema->contains("type")) {
    const auto& type = (*schema)["type"];
    violation.message =
        fmt::format("expected {}, got {}", type.is_array() ? join_strings(type) : type.get<std::string>(),
                    value != nullptr ? json_type_name(*value) : "nothing");
  } else if (description.starts_with("Failed to match against any enum") && schema != nullptr &&
             schema->contains("enum")) {
    violation.message = fmt::format("must be one of: {}", join_strings((*schema)["enum"]));
  } else if (description.starts_with("Expected number") && schema != nullptr && value != nullptr &&
             value->is_number()) {
    if (schema->contains("maximum") && *value > (*schema)["maximum"]) {
      violation.message = fmt::format("must be at most {}", (*schema)["maximum"].dump());
    } else if (schema->contains("minimum") && *value < (*schema)["minimum"]) {
      violation.message = fmt::format("must be at least {}", (*schema)["minimum"].dump());
    }
  } else if (description.starts_with("Failed to match regex") && schema != nullptr &&
             schema->contains("pattern")) {
    violation.message = fmt::format("does not match the pattern {}", (*schema)["pattern"].get<std::string>());
  }
  return violation;
}

}  // namespace

std::string format_json_path(const SchemaPath& path) {
  if (path.empty()) return "(top level)";
  std::string text;
  for (const auto& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      if (!text.empty()) text += '.';
      text += *key;
    } else {
      text += fmt::format("[{}]", std::get<std::size_t>(step));
    }
  }
  return text;
}

std::filesystem::path schema_dir() {
  if (const char* dir = std::getenv("SYNCLINE_SCHEMA_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::filesystem::path(SYNCLINE_SOURCE_DIR) / "schemas";
}

JsonSchema::JsonSchema(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

JsonSchema JsonSchema::embedded(std::string_view name) {
  const auto text = embedded_schema_text(name);
  if (!text) throw std::runtime_error(fmt::format("no JSON Schema named '{}' is built in", name));
  return from_json(json::parse(*text));
}

JsonSchema JsonSchema::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("cannot read JSON Schema {}", file.string()));
  try {
    return from_json(json::parse(in));
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("invalid JSON Schema {}: {}", file.string(), e.what()));
  }
}

JsonSchema JsonSchema::from_json(const json& schema) {
  auto impl = std::make_shared<Impl>();
  impl->document = schema;
  valijson::SchemaParser parser;
  const valijson::adapters::NlohmannJsonAdapter adapter(impl->document);
  parser.populateSchema(adapter, impl->schema);
  return JsonSchema(std::move(impl));
}

std::vector<SchemaViolation> JsonSchema::validate(const json& document) const {
  valijson::Validator validator;
  valijson::ValidationResults results;
  const valijson::adapters::NlohmannJsonAdapter adapter(document);
  if (validator.validate(impl_->schema, adapter, &results)) return {};

  std::vector<SchemaViolation> specific;
  std::vector<SchemaViolation> wrappers;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    auto violation = explain(error, impl_->document, document);
    (is_wrapper_error(error.description) ? wrappers : specific).push_back(std::move(violation));
  }
  // A wrapper is only worth reporting when no specific violation explains it (some constraints,
  // such as propertyNames, fail without saying why).
  for (auto& wrapper : wrappers) {
    const bool explained = std::any_of(specific.begin(), specific.end(), [&](const SchemaViolation& v) {
      return v.path.size() >= wrapper.path.size() &&
             std::equal(wrapper.path.begin(), wrapper.path.end(), v.path.begin());
    });
    if (!explained) specific.push_back(std::move(wrapper));
  }
  return specific;
}

}  // namespace syncline
