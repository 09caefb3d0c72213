// Test support: the local stack's addresses (environment, else scripts/stack.env), checks that a
// service is reachable, and polling with a deadline instead of sleeping.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace syncline::test {

struct StackEnv {
  std::string write_pg_dsn;     // SYNCLINE_WRITE_PG_DSN
  std::string read_pg_dsn;      // SYNCLINE_READ_PG_DSN
  std::string kafka_bootstrap;  // SYNCLINE_KAFKA_BOOTSTRAP
  std::string search_url;       // SYNCLINE_SEARCH_URL
};

// Read once: each variable from the environment, else from scripts/stack.env. Throws
// std::runtime_error naming a variable found in neither.
const StackEnv& stack_env();

// One variable, same lookup order; std::nullopt-like empty string is never returned: throws.
std::string stack_value(std::string_view key);

// Whether a service answers, within `deadline`. The failure message names the service and its
// address (credentials redacted) and asks whether `scripts/stack up` is running. Use as
// ASSERT_TRUE(require_kafka()); a test never skips for a missing service.
::testing::AssertionResult require_write_pg(std::chrono::milliseconds deadline = std::chrono::seconds(3));
::testing::AssertionResult require_read_pg(std::chrono::milliseconds deadline = std::chrono::seconds(3));
::testing::AssertionResult require_kafka(std::chrono::milliseconds deadline = std::chrono::seconds(3));
::testing::AssertionResult require_search(std::chrono::milliseconds deadline = std::chrono::seconds(3));
// All four services; the failure names the first that does not answer.
::testing::AssertionResult require_stack();

// Calls `predicate` until it returns true or `deadline` passes (waiting a little in between);
// the failure says what was awaited: ASSERT_TRUE(poll_until(..., 10s, "3 committed messages")).
::testing::AssertionResult poll_until(const std::function<bool()>& predicate,
                                      std::chrono::milliseconds deadline, std::string_view what);

// A name no other run (or test) uses: "<prefix>_<pid>_<time>_<n>", lower case, [a-z0-9_].
std::string unique_name(std::string_view prefix);

}  // namespace syncline::test
