// Integration tests of read_primary_keys against the write PostgreSQL: which columns are each
// captured table's primary key, in key order, whatever its replica identity.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/pg.hpp"
#include "producer/table_keys.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::producer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TableKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::require_write_pg());
    connection_ = std::make_unique<pg::PgConnection>(test::stack_env().write_pg_dsn);
    schema_ = test::unique_name("syncline_tk");
    connection_->exec("CREATE SCHEMA " + schema_);
  }

  void TearDown() override {
    if (connection_) connection_->exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
  }

  void create(const std::string& table, const std::string& definition) {
    connection_->exec("CREATE TABLE " + schema_ + "." + table + " " + definition);
  }

  PrimaryKeys keys_of(const std::vector<std::string>& tables) {
    std::vector<QualifiedTable> qualified;
    for (const auto& table : tables) qualified.emplace_back(schema_, table);
    return read_primary_keys(*connection_, qualified);
  }

  std::unique_ptr<pg::PgConnection> connection_;
  std::string schema_;
};

TEST_F(TableKeysTest, a_table_with_a_primary_key_gives_its_column) {
  create("orders", "(id int PRIMARY KEY, status text)");
  const auto keys = keys_of({"orders"});
  EXPECT_THAT(keys.at({schema_, "orders"}), ElementsAre("id"));
}

TEST_F(TableKeysTest, a_table_without_a_primary_key_gives_no_columns_even_with_a_unique_index) {
  create("audit_log", "(message text, code int UNIQUE NOT NULL)");
  const auto keys = keys_of({"audit_log"});
  ASSERT_EQ(keys.count({schema_, "audit_log"}), 1U);
  EXPECT_THAT(keys.at({schema_, "audit_log"}), IsEmpty());
}

TEST_F(TableKeysTest, a_composite_primary_key_is_given_in_key_order_not_column_order) {
  create("line_items", "(note text, item int, order_id int, PRIMARY KEY (order_id, item))");
  const auto keys = keys_of({"line_items"});
  EXPECT_THAT(keys.at({schema_, "line_items"}), ElementsAre("order_id", "item"));
}

TEST_F(TableKeysTest, replica_identity_full_does_not_change_the_primary_key) {
  create("orders_full", "(id int PRIMARY KEY, status text)");
  connection_->exec("ALTER TABLE " + schema_ + ".orders_full REPLICA IDENTITY FULL");
  create("events_full", "(kind text, n int)");
  connection_->exec("ALTER TABLE " + schema_ + ".events_full REPLICA IDENTITY FULL");
  const auto keys = keys_of({"orders_full", "events_full"});
  EXPECT_THAT(keys.at({schema_, "orders_full"}), ElementsAre("id"));
  EXPECT_THAT(keys.at({schema_, "events_full"}), IsEmpty());
}

TEST_F(TableKeysTest, names_that_need_quoting_are_matched_exactly) {
  create("\"Line Items\"", "(\"Order Id\" int PRIMARY KEY)");
  create("line_items", "(id int)");  // the unquoted look-alike must not be taken for it
  const auto keys = keys_of({"Line Items", "line_items"});
  EXPECT_THAT(keys.at({schema_, "Line Items"}), ElementsAre("Order Id"));
  EXPECT_THAT(keys.at({schema_, "line_items"}), IsEmpty());
}

TEST_F(TableKeysTest, a_dropped_column_before_the_key_does_not_shift_it) {
  create("moved", "(gone int, id int PRIMARY KEY)");
  connection_->exec("ALTER TABLE " + schema_ + ".moved DROP COLUMN gone");
  EXPECT_THAT(keys_of({"moved"}).at({schema_, "moved"}), ElementsAre("id"));
}

TEST_F(TableKeysTest, a_captured_table_that_does_not_exist_is_a_permanent_error_naming_it) {
  create("orders", "(id int PRIMARY KEY)");
  try {
    keys_of({"orders", "no_such_table"});
    FAIL() << "expected a PgError";
  } catch (const pg::PgError& error) {
    EXPECT_EQ(error.sqlstate(), "42P01");
    EXPECT_EQ(error.error_class(), pg::ErrorClass::permanent);
    EXPECT_THAT(error.what(), HasSubstr(schema_ + ".no_such_table"));
  }
}

TEST_F(TableKeysTest, a_view_is_not_a_table) {
  create("orders", "(id int PRIMARY KEY)");
  connection_->exec("CREATE VIEW " + schema_ + ".orders_view AS SELECT id FROM " + schema_ + ".orders");
  EXPECT_THROW(keys_of({"orders_view"}), pg::PgError);
}

}  // namespace
}  // namespace syncline::producer
