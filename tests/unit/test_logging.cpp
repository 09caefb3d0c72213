// Unit tests of logging: secret redaction, text and JSON-lines formats, init() and get().
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/logging.hpp"

namespace syncline {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactSecrets, hides_the_password_of_postgres_uris) {
  EXPECT_EQ(redact_secrets("connecting to postgresql://app:s3cret@db:5432/write"),
            "connecting to postgresql://app:***@db:5432/write");
  EXPECT_EQ(redact_secrets("postgres://app:p%40ss@db/write?sslmode=require"),
            "postgres://app:***@db/write?sslmode=require");
}

TEST(RedactSecrets, hides_a_password_that_contains_an_at_sign) {
  EXPECT_EQ(redact_secrets("postgresql://app:p@ss@db/write"), "postgresql://app:***@db/write");
}

TEST(RedactSecrets, hides_user_password_in_http_urls) {
  EXPECT_EQ(redact_secrets("GET https://elastic:changeme@es:9200/_bulk failed"),
            "GET https://elastic:***@es:9200/_bulk failed");
  EXPECT_EQ(redact_secrets("http://user:pw@es"), "http://user:***@es");
}

TEST(RedactSecrets, leaves_urls_without_password_alone) {
  for (const char* text :
       {"http://es:9200/_bulk", "postgresql://app@db/write", "see https://x.org/a@b", "0/16B3748"}) {
    EXPECT_EQ(redact_secrets(text), text);
  }
}

TEST(RedactSecrets, hides_passwords_in_key_value_dsns_quoted_or_not) {
  EXPECT_EQ(redact_secrets("host=db user=app password=s3cret dbname=w"),
            "host=db user=app password=*** dbname=w");
  EXPECT_EQ(redact_secrets("host=db password='p w\\'x' dbname=w"), "host=db password='***' dbname=w");
  EXPECT_EQ(redact_secrets("host=db password = s3cret"), "host=db password = ***");
}

TEST(RedactSecrets, hides_json_like_secret_values) {
  EXPECT_EQ(redact_secrets(R"({"user": "app", "password": "s3cret"})"),
            R"({"user": "app", "password": "***"})");
  EXPECT_EQ(redact_secrets(R"({"api_key":"abc","n":1})"), R"({"api_key":"***","n":1})");
  EXPECT_EQ(redact_secrets(R"({'client_secret': 'abc'})"), R"({'client_secret': '***'})");
  EXPECT_EQ(redact_secrets(R"({"token": 12345})"), R"({"token": ***})");
  EXPECT_EQ(redact_secrets(R"(body {\"password\":\"s3cret\"})"), R"(body {\"password\":\"***\"})");
}

TEST(RedactSecrets, hides_key_equals_value_and_yaml_like_forms) {
  EXPECT_EQ(redact_secrets("sasl.password=abc linger.ms=5"), "sasl.password=*** linger.ms=5");
  EXPECT_EQ(redact_secrets("?access_token=abc&x=1"), "?access_token=***&x=1");
  EXPECT_EQ(redact_secrets("secret: abc"), "secret: ***");
  EXPECT_EQ(redact_secrets("API-KEY=abc, apiKey=def"), "API-KEY=***, apiKey=***");
}

TEST(RedactSecrets, keeps_the_authorization_scheme_but_hides_the_credentials) {
  EXPECT_EQ(redact_secrets("Authorization: Bearer eyJhbGci"), "Authorization: Bearer ***");
  EXPECT_EQ(redact_secrets("Authorization: ApiKey abc=="), "Authorization: ApiKey ***");
}

TEST(RedactSecrets, leaves_ordinary_text_unchanged) {
  const std::string text = "committed 0/16B3748 (12 events, 3 topics): lag=0, retry in 250ms; user=app";
  EXPECT_EQ(redact_secrets(text), text);
  EXPECT_EQ(redact_secrets(""), "");
}

std::string format_one(log::Format format, spdlog::level::level_enum level, const std::string& message) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(log::make_formatter(format));
  spdlog::logger logger("kafka", sink);
  logger.set_level(spdlog::level::trace);
  logger.log(level, message);
  return out.str();
}

TEST(LogFormat, json_lines_have_ts_level_logger_and_msg_in_that_order) {
  const auto line = format_one(log::Format::json, spdlog::level::warn, "broker down: \"b1\"\nretrying");
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one JSON object per line";
  const auto json = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (const auto& [key, _] : json.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"ts", "level", "logger", "msg"}));
  EXPECT_TRUE(std::regex_match(json["ts"].get<std::string>(),
                               std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)")))
      << json["ts"];
  EXPECT_EQ(json["level"], "warning");
  EXPECT_EQ(json["logger"], "kafka");
  EXPECT_EQ(json["msg"], "broker down: \"b1\"\nretrying");
}

TEST(LogFormat, json_lines_redact_the_message) {
  const auto line = format_one(log::Format::json, spdlog::level::info, "dsn postgresql://a:hunter2@db/x");
  EXPECT_THAT(line, Not(HasSubstr("hunter2")));
  EXPECT_EQ(nlohmann::json::parse(line)["msg"], "dsn postgresql://a:***@db/x");
}

TEST(LogFormat, json_lines_survive_invalid_utf8) {
  const auto line = format_one(log::Format::json, spdlog::level::info, "bad \xff byte");
  EXPECT_TRUE(nlohmann::json::accept(line)) << line;
}

TEST(LogFormat, text_lines_show_time_level_logger_and_redacted_message) {
  const auto line = format_one(log::Format::text, spdlog::level::err, "auth failed password=hunter2");
  EXPECT_TRUE(std::regex_match(
      line,
      std::regex(
          R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z error \[kafka\] auth failed password=\*\*\*\n)")))
      << line;
}

class LoggingInit : public ::testing::Test {
 protected:
  void TearDown() override { log::init({}); }
};

TEST_F(LoggingInit, every_logger_writes_redacted_json_lines_to_stderr_at_the_configured_level) {
  ::testing::internal::CaptureStderr();
  log::init({.level = "info", .format = log::Format::json});
  log::get("test-module")->debug("not shown");
  log::get("test-module")->info("token=abc");
  spdlog::info("via default logger postgresql://u:pw@h/db");
  const auto output = ::testing::internal::GetCapturedStderr();

  std::istringstream lines(output);
  std::string line;
  std::vector<nlohmann::json> records;
  while (std::getline(lines, line)) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 2U) << output;
  EXPECT_EQ(records[0]["logger"], "test-module");
  EXPECT_EQ(records[0]["msg"], "token=***");
  EXPECT_EQ(records[1]["msg"], "via default logger postgresql://u:***@h/db");
}

TEST_F(LoggingInit, get_returns_the_same_logger_for_the_same_module) {
  EXPECT_EQ(log::get("same"), log::get("same"));
  EXPECT_NE(log::get("same"), log::get("other"));
}

TEST_F(LoggingInit, an_unknown_level_is_rejected_instead_of_silencing_the_logs) {
  EXPECT_THROW(log::init({.level = "verbose", .format = log::Format::text}), std::invalid_argument);
}

}  // namespace
}  // namespace syncline
