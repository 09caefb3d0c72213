// Integration tests against the real write and read PostgreSQL clusters.
#include <gtest/gtest.h>

#include "common/pg.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::pg {
namespace {

using test::stack_env;
using test::unique_name;

// Creates, writes, reads and drops a table through parameterised queries.
void write_and_read_back(PgConnection& connection) {
  const std::string table = unique_name("syncline_test_pg");
  connection.exec("CREATE TABLE " + table + " (id bigint PRIMARY KEY, name text, payload jsonb)");
  connection.exec("INSERT INTO " + table + " VALUES ($1, $2, $3::jsonb)",
                  {"1", "it's \"quoted\"", R"({"a": 1})"});
  const Result inserted =
      connection.exec("INSERT INTO " + table + " VALUES ($1, $2, $3)", {"2", std::nullopt, std::nullopt});
  EXPECT_EQ(inserted.affected_rows(), 1);

  const Result rows = connection.exec("SELECT id, name, payload->>'a' AS a FROM " + table + " ORDER BY id");
  ASSERT_EQ(rows.rows(), 2);
  EXPECT_EQ(rows.column_name(1), "name");
  EXPECT_EQ(rows.get(0, "name"), "it's \"quoted\"");
  EXPECT_EQ(rows.get(0, "a"), "1");
  EXPECT_EQ(rows.value(1, 0), "2");
  EXPECT_TRUE(rows.is_null(1, 1));
  EXPECT_EQ(rows.get(1, "name"), std::nullopt);

  try {
    connection.exec("INSERT INTO " + table + " VALUES ($1)", {"1"});
    ADD_FAILURE() << "expected a unique violation";
  } catch (const PgError& e) {
    EXPECT_EQ(e.sqlstate(), "23505");
    EXPECT_EQ(e.error_class(), ErrorClass::permanent);
  }
  connection.exec("DROP TABLE " + table);
}

TEST(PostgresIntegration, WriteDatabaseWritesAndReads) {
  ASSERT_TRUE(test::require_write_pg());
  PgConnection connection(stack_env().write_pg_dsn);
  EXPECT_TRUE(connection.is_open());
  EXPECT_GE(connection.server_version(), 150000);
  write_and_read_back(connection);
}

TEST(PostgresIntegration, ReadDatabaseWritesAndReads) {
  ASSERT_TRUE(test::require_read_pg());
  PgConnection connection(stack_env().read_pg_dsn);
  write_and_read_back(connection);
}

TEST(PostgresIntegration, WriteDatabaseHasLogicalWal) {
  ASSERT_TRUE(test::require_write_pg());
  PgConnection connection(stack_env().write_pg_dsn);
  EXPECT_EQ(connection.exec("SHOW wal_level").value(0, 0), "logical");
}

TEST(PostgresIntegration, TransactionRollsBackUnlessCommitted) {
  ASSERT_TRUE(test::require_read_pg());
  PgConnection connection(stack_env().read_pg_dsn);
  const std::string table = unique_name("syncline_test_txn");
  connection.exec("CREATE TABLE " + table + " (id int)");
  {
    Transaction transaction(connection);
    transaction.exec("INSERT INTO " + table + " VALUES ($1)", {"1"});
  }
  {
    Transaction transaction(connection);
    transaction.exec("INSERT INTO " + table + " VALUES ($1)", {"2"});
    transaction.commit();
  }
  EXPECT_EQ(connection.exec("SELECT string_agg(id::text, ',') FROM " + table).value(0, 0), "2");
  connection.exec("DROP TABLE " + table);
}

TEST(PostgresIntegration, PreparedStatementsReportTheParameterTypesTheServerInferred) {
  ASSERT_TRUE(test::require_read_pg());
  PgConnection connection(stack_env().read_pg_dsn);
  const auto types = connection.prepare("typed", "SELECT $1::bigint + 1, $2::jsonb, $3");
  EXPECT_EQ(types, (std::vector<Oid>{20, 3802, 25}));
  try {
    connection.prepare("broken", "SELEC 1");
    ADD_FAILURE() << "expected a syntax error";
  } catch (const PgError& e) {
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_EQ(e.error_class(), ErrorClass::permanent);
  }
}

TEST(PostgresIntegration, PipelineRunsATransactionInOneRoundTripAndReportsTheFirstFailedStatement) {
  ASSERT_TRUE(test::require_read_pg());
  PgConnection connection(stack_env().read_pg_dsn);
  const std::string table = unique_name("syncline_test_pipeline");
  connection.exec("CREATE TABLE " + table + " (id int PRIMARY KEY)");
  connection.prepare("insert_row", "INSERT INTO " + table + " VALUES ($1)");
  {
    Pipeline pipeline(connection);
    pipeline.send("BEGIN");
    for (int i = 1; i <= 3; ++i) pipeline.send_prepared("insert_row", {std::to_string(i)});
    pipeline.send("COMMIT");
    EXPECT_EQ(pipeline.sync(), std::nullopt);
    EXPECT_EQ(pipeline.sent(), 5u);
  }
  {
    Pipeline pipeline(connection);
    pipeline.send("BEGIN");
    pipeline.send_prepared("insert_row", {"4"});
    pipeline.send_prepared("insert_row", {"2"});  // a duplicate: index 2 fails, the rest is skipped
    pipeline.send_prepared("insert_row", {"5"});
    pipeline.send("COMMIT");
    const auto failure = pipeline.sync();
    ASSERT_TRUE(failure.has_value());
    EXPECT_EQ(failure->index, 2u);
    EXPECT_EQ(failure->error.sqlstate(), "23505");
  }
  // The failed transaction is still open (aborted): the caller rolls it back.
  EXPECT_EQ(PQtransactionStatus(connection.raw()), PQTRANS_INERROR);
  connection.exec("ROLLBACK");
  EXPECT_EQ(connection.exec("SELECT string_agg(id::text, ',' ORDER BY id) FROM " + table).value(0, 0), "1,2,3");
  connection.exec("DROP TABLE " + table);
}

TEST(PostgresIntegration, CommitOfAFailedTransactionThrowsInsteadOfReportingSuccess) {
  ASSERT_TRUE(test::require_read_pg());
  PgConnection connection(stack_env().read_pg_dsn);
  Transaction transaction(connection);
  EXPECT_THROW(transaction.exec("SELECT 1/0"), PgError);
  try {
    transaction.commit();
    FAIL() << "expected the commit to fail";
  } catch (const PgError& e) {
    EXPECT_EQ(e.sqlstate(), "25P02");
  }
}

TEST(PostgresIntegration, TerminatedSessionIsRetriable) {
  ASSERT_TRUE(test::require_read_pg());
  PgConnection victim(stack_env().read_pg_dsn);
  PgConnection killer(stack_env().read_pg_dsn);
  const std::string pid = victim.exec("SELECT pg_backend_pid()").value(0, 0).data();
  killer.exec("SELECT pg_terminate_backend($1::int)", {pid});
  try {
    victim.exec("SELECT 1");
    FAIL() << "expected the terminated session to fail";
  } catch (const PgError& e) {
    EXPECT_TRUE(e.retriable()) << e.what();
  }
  EXPECT_FALSE(victim.is_open());
}

TEST(PostgresIntegration, ReplicationConnectionRunsReplicationCommands) {
  ASSERT_TRUE(test::require_write_pg());
  const std::string& dsn = stack_env().write_pg_dsn;
  PgConnection connection(dsn + (dsn.find('?') == std::string::npos ? "?" : "&") + "replication=database");
  const Result system = connection.exec("IDENTIFY_SYSTEM");
  ASSERT_EQ(system.rows(), 1);
  EXPECT_EQ(system.get(0, "dbname"), connection.exec("SELECT current_database()").get(0, 0));
}

}  // namespace
}  // namespace syncline::pg
