// JSON Schema validation (valijson) of documents against the schemas in schemas/.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace syncline {

// One step from a document's root: an object key or an array index.
using SchemaPathElement = std::variant<std::string, std::size_t>;
using SchemaPath = std::vector<SchemaPathElement>;

// "kafka.properties[2].name"; "(top level)" for the root itself.
std::string format_json_path(const SchemaPath& path);

struct SchemaViolation {
  SchemaPath path;        // the value that is wrong; for an unknown key, that key
  std::string message;  // "unknown key", "expected integer, got string", ...
};

// The folder of the JSON Schemas: $SYNCLINE_SCHEMA_DIR if set, else the source tree's schemas/.
std::filesystem::path schema_dir();

// The text of schemas/<name>.schema.json as it was at build time ("config", "envelope").
std::optional<std::string_view> embedded_schema_text(std::string_view name);

// A parsed JSON Schema. Cheap to copy; immutable, so it can be shared between threads.
class JsonSchema {
 public:
  // Throws std::runtime_error naming the file if it cannot be read or is not a valid schema.
  static JsonSchema load(const std::filesystem::path& file);
  // One of the schemas compiled into the binary (embedded_schema_text).
  static JsonSchema embedded(std::string_view name);
  static JsonSchema from_json(const nlohmann::json& schema);

  // Every violation (wrappers such as "property x failed" left out); empty when the document is valid.
  std::vector<SchemaViolation> validate(const nlohmann::json& document) const;

 private:
  struct Impl;
  explicit JsonSchema(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace syncline
