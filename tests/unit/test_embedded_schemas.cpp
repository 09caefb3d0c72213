// The schemas compiled into the binaries are the ones in schemas/.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/json_schema.hpp"
#include "syncline_source_dir.hpp"

namespace syncline {
namespace {

nlohmann::json read_schema_file(const std::string& name) {
  std::ifstream in(std::filesystem::path(SYNCLINE_SOURCE_DIR) / "schemas" / (name + ".schema.json"));
  return nlohmann::json::parse(in);
}

TEST(EmbeddedSchemas, each_built_in_schema_equals_its_file_in_the_source_tree) {
  for (const std::string name : {"config", "envelope"}) {
    const auto text = embedded_schema_text(name);
    ASSERT_TRUE(text.has_value()) << name;
    EXPECT_EQ(nlohmann::json::parse(*text), read_schema_file(name)) << name;
  }
}

TEST(EmbeddedSchemas, an_unknown_schema_name_is_an_error_that_names_it) {
  EXPECT_FALSE(embedded_schema_text("nope").has_value());
  try {
    (void)JsonSchema::embedded("nope");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace syncline
