// Unit tests of the position types: Lsn parsing/printing/ordering and KafkaOffset.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "common/lsn.hpp"
#include "common/positions.hpp"

namespace syncline {
namespace {

// The point of the strong types: these mix-ups must not compile.
static_assert(!std::is_convertible_v<Lsn, KafkaOffset>);
static_assert(!std::is_convertible_v<KafkaOffset, Lsn>);
static_assert(!std::is_constructible_v<KafkaOffset, Lsn>);
static_assert(!std::is_constructible_v<Lsn, KafkaOffset>);
static_assert(!std::is_convertible_v<std::uint64_t, Lsn>);
static_assert(!std::is_convertible_v<std::int64_t, KafkaOffset>);

TEST(Lsn, parses_the_postgres_x_slash_y_hex_form) {
  EXPECT_EQ(Lsn::parse("0/16B3748"), Lsn{0x16B3748});
  EXPECT_EQ(Lsn::parse("16/B374D848"), Lsn{(std::uint64_t{0x16} << 32U) | 0xB374D848U});
  EXPECT_EQ(Lsn::parse("FFFFFFFF/FFFFFFFF"), Lsn{~std::uint64_t{0}});
}

TEST(Lsn, accepts_lower_case_and_leading_zeros_like_postgres) {
  EXPECT_EQ(Lsn::parse("0/16b3748"), Lsn{0x16B3748});
  EXPECT_EQ(Lsn::parse("00000000/016B3748"), Lsn{0x16B3748});
}

TEST(Lsn, prints_upper_case_without_leading_zeros_as_postgres_does) {
  EXPECT_EQ(Lsn{0x16B3748}.to_string(), "0/16B3748");
  EXPECT_EQ(Lsn{(std::uint64_t{0x16} << 32U) | 0xB374D848U}.to_string(), "16/B374D848");
  EXPECT_EQ(Lsn{}.to_string(), "0/0");
  EXPECT_EQ(fmt::format("at {}", Lsn{0x10}), "at 0/10");
  std::ostringstream out;
  out << Lsn{0x20};
  EXPECT_EQ(out.str(), "0/20");
}

TEST(Lsn, round_trips_through_its_text_form) {
  for (const std::uint64_t value : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0xFFFFFFFF},
                                    std::uint64_t{0x100000000}, ~std::uint64_t{0}}) {
    EXPECT_EQ(Lsn::from_string(Lsn{value}.to_string()).value(), value);
  }
}

TEST(Lsn, rejects_anything_postgres_would_reject) {
  for (const char* text : {"", "/", "0/", "/1", "016B3748", "0x1/2", "1/2/3", " 0/1", "0/1 ", "123456789/0",
                           "0/123456789", "G/0", "-1/0", "+1/0", "0 /1"}) {
    EXPECT_EQ(Lsn::parse(text), std::nullopt) << "input: '" << text << "'";
  }
}

TEST(Lsn, from_string_throws_an_error_that_quotes_the_input) {
  try {
    Lsn::from_string("nonsense");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'nonsense'"), std::string::npos) << e.what();
  }
}

TEST(Lsn, orders_positions_as_the_wal_does) {
  EXPECT_LT(Lsn::from_string("0/FFFFFFFF"), Lsn::from_string("1/0"));
  EXPECT_LT(Lsn::from_string("0/16B3748"), Lsn::from_string("0/16B3800"));
  EXPECT_EQ(Lsn::from_string("0/A"), Lsn::from_string("0/a"));
}

TEST(Lsn, default_value_is_postgres_invalid_position) {
  EXPECT_FALSE(Lsn{}.is_valid());
  EXPECT_TRUE(Lsn{1}.is_valid());
}

TEST(KafkaOffset, next_is_the_offset_to_commit_after_processing_a_message) {
  EXPECT_EQ(KafkaOffset{41}.next(), KafkaOffset{42});
  EXPECT_LT(KafkaOffset{1}, KafkaOffset{2});
  EXPECT_EQ(fmt::format("{}", KafkaOffset{7}), "7");
}

}  // namespace
}  // namespace syncline
