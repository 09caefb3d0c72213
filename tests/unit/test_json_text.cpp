// Unit tests of json_text: every byte it writes is the byte nlohmann::json::dump() writes, checked
// against nlohmann itself on hand-picked and generated inputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/json_text.hpp"

namespace syncline {
namespace {

using nlohmann::json;

// What the producer wrote before json_text: parse, then dump; or the parse error.
std::string nlohmann_canonical(const std::string& text) {
  try {
    return json::parse(text).dump();
  } catch (const json::exception& e) {
    return std::string("error: ") + e.what();
  }
}

// append_canonical's answer, or "fallback" where it leaves the input to nlohmann.
std::string canonical(const std::string& text) {
  std::string out = "prefix";
  if (!json_text::append_canonical(out, text)) {
    EXPECT_EQ(out, "prefix") << "a fallback must leave the output as it was, for " << text;
    return "fallback";
  }
  EXPECT_EQ(out.rfind("prefix", 0), 0U);
  return out.substr(6);
}

std::string dumped_string(const std::string& text) {
  try {
    return json(text).dump();
  } catch (const json::exception& e) {
    return std::string("error: ") + e.what();
  }
}

std::string appended_string(const std::string& text) {
  std::string out;
  try {
    json_text::append_string(out, text);
  } catch (const json::exception& e) {
    return std::string("error: ") + e.what();
  }
  return out;
}

TEST(JsonTextCanonical, writes_what_jsonb_output_becomes_after_parse_and_dump) {
  for (const std::string text : {
           R"({"i": 1, "text": "xxxx"})",
           R"({"id": 7, "amount": "12.50", "customer": {"name": "Zoë", "tags": ["a", "b"]}})",
           R"({"b": 1, "aa": 2, "ccc": [1, -3, 0, -0]})",
           R"({"quote": "he said \"hi\"\n\ttab \\ slash \/ \u00e9 \u0001 \ud83d\ude00 \u001F \u007f"})",
           R"([1, "two", null, true, false, {"z": {}, "y": []}])",
           R"("just a string")",
           R"(12345678901234567890)",
           R"(-9223372036854775808)",
           R"({"nested": {"deeper": {"deepest": [[[]]]}}, "": "empty key", "A": "upper"})",
           "  { \"spaces\" :\t[ 1 ,\r\n2 ] }  ",
           R"(null)",
           R"({"a\"b": 1})",
           R"({"k": "\u0000"})",
           "{\"raw\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}",
       }) {
    const auto written = canonical(text);
    EXPECT_NE(written, "fallback") << text;
    EXPECT_EQ(written, nlohmann_canonical(text)) << text;
  }
}

TEST(JsonTextCanonical, leaves_floats_duplicates_and_invalid_json_to_nlohmann) {
  for (const std::string& text : std::vector<std::string>{
           R"({"f": 1.5})",
           R"(1e10)",
           R"(18446744073709551616)",
           R"(-9223372036854775809)",
           R"({"dup": 1, "dup": 2})",
           R"({"b": 1, "a": 2, "b": 3})",
           R"({"\"": 1, "#": 2})",
           R"({"#": 1, "\"": 2})",
           R"({"a": 1, "\u0061": 2})",
           R"({"bad": })",
           R"({"k": 1} trailing)",
           R"([1, 2,])",
           R"(01)",
           R"(-)",
           R"("\ud800")",
           R"("\udc00")",
           R"("\x")",
           "\"a\x01\"",
           "\"\xc3\x28\"",
           "\"\xed\xa0\x80\"",
           "\xef\xbb\xbf{}",
           std::string("{}\0x", 4),
           "",
           "tru",
           "nul",
           "[",
       }) {
    EXPECT_EQ(canonical(text), "fallback") << text;
  }
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_EQ(canonical(deep), "fallback");
}

// Random JSON-like text: mostly valid, with out-of-order keys, escapes, UTF-8 and random damage.
class JsonGenerator {
 public:
  explicit JsonGenerator(unsigned seed) : random_(seed) {}

  std::string document() {
    auto text = value(0);
    if (pick(10) == 0 && !text.empty()) text[pick(text.size())] = piece(kDamage);  // broken
    return text;
  }

 private:
  static constexpr std::string_view kDamage = "{}[],:\"\\ 0a-\x01\xc3\xff";

  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_); }
  char piece(std::string_view from) { return from[pick(from.size())]; }

  std::string space() {
    static const std::vector<std::string> spaces{"", "", "", " ", "\n  ", "\t", "\r\n"};
    return spaces[pick(spaces.size())];
  }

  std::string string() {
    static const std::vector<std::string> parts{"a",
                                                "b",
                                                "aa",
                                                "ab",
                                                "B",
                                                "z",
                                                "key",
                                                "",
                                                "\\\"",
                                                "\\\\",
                                                "\\/",
                                                "\\n",
                                                "\\t",
                                                "\\u00e9",
                                                "\\u0001",
                                                "\\ud83d\\ude00",
                                                "\xc3\xa9",
                                                "\xe2\x82\xac",
                                                "\xf0\x9f\x98\x80",
                                                "\x7f",
                                                " ",
                                                "#",
                                                "~"};
    std::string text = "\"";
    for (std::size_t i = pick(4); i > 0; --i) text += parts[pick(parts.size())];
    return text + "\"";
  }

  std::string number() {
    static const std::vector<std::string> numbers{"0",
                                                  "-0",
                                                  "1",
                                                  "-1",
                                                  "42",
                                                  "9223372036854775807",
                                                  "-9223372036854775808",
                                                  "18446744073709551615",
                                                  "1.5",
                                                  "1e3",
                                                  "-2.50",
                                                  "100"};
    return numbers[pick(numbers.size())];
  }

  std::string value(int depth) {
    switch (depth > 4 ? pick(4) : pick(7)) {
      case 0:
        return string();
      case 1:
        return number();
      case 2: {
        static const std::vector<std::string> literals{"true", "false", "null"};
        return literals[pick(literals.size())];
      }
      case 3:
        return number();
      case 4:
      case 5: {
        std::string text = "{" + space();
        for (std::size_t i = pick(5); i > 0; --i) {
          text +=
              string() + space() + ":" + space() + value(depth + 1) + space() + (i > 1 ? "," : "") + space();
        }
        return text + "}";
      }
      default: {
        std::string text = "[" + space();
        for (std::size_t i = pick(5); i > 0; --i)
          text += value(depth + 1) + space() + (i > 1 ? "," : "") + space();
        return text + "]";
      }
    }
  }

  std::mt19937 random_;
};

TEST(JsonTextCanonical, agrees_with_nlohmann_on_generated_documents) {
  JsonGenerator generator(20261122);
  std::size_t written = 0;
  for (int i = 0; i < 20000; ++i) {
    const auto text = generator.document();
    const auto result = canonical(text);
    if (result == "fallback") continue;
    ++written;
    ASSERT_EQ(result, nlohmann_canonical(text)) << text;
  }
  EXPECT_GT(written, 5000U) << "the generator should mostly produce documents the fast path writes";
}

TEST(JsonTextString, escapes_every_byte_as_dump_does) {
  std::string all_ascii;
  for (int c = 0; c < 0x80; ++c) all_ascii += static_cast<char>(c);
  EXPECT_EQ(appended_string(all_ascii), dumped_string(all_ascii));
  for (const std::string text : {"", "plain", "Zoë Ångström", "tab\there", "\xf0\x9f\x98\x80", "\x7f"}) {
    EXPECT_EQ(appended_string(text), dumped_string(text)) << text;
  }
}

TEST(JsonTextString, throws_dumps_error_for_invalid_utf8) {
  for (const std::string text :
       {"\xc3\x28", "ok \xff", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xc0\xaf", "caf\xc3"}) {
    const auto appended = appended_string(text);
    EXPECT_THAT(appended, ::testing::StartsWith("error: ")) << text;
    EXPECT_EQ(appended, dumped_string(text));
  }
}

TEST(JsonTextString, agrees_with_dump_on_random_bytes) {
  std::mt19937 random(7);
  for (int i = 0; i < 20000; ++i) {
    std::string text(std::uniform_int_distribution<std::size_t>(0, 12)(random), '\0');
    for (auto& c : text) {
      // Mostly ASCII and UTF-8 lead/continuation bytes, so valid sequences occur too.
      static constexpr std::string_view kBytes =
          "aZ \"\\\x01\x1f\x7f\x80\xbf\xc3\xa9\xe2\x82\xac\xed\xf0\x9f\xf4\xff";
      c = kBytes[std::uniform_int_distribution<std::size_t>(0, kBytes.size() - 1)(random)];
    }
    ASSERT_EQ(appended_string(text), dumped_string(text));
  }
}

TEST(JsonTextDump, appends_what_dump_returns) {
  const json value = {{"b", {1, 2.5, "x"}}, {"a", nullptr}};
  std::string out = "[";
  json_text::append_dump(out, value);
  EXPECT_EQ(out, "[" + value.dump());
}

}  // namespace
}  // namespace syncline
