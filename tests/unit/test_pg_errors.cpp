// Unit tests for PostgreSQL error classification by SQLSTATE (no server needed).
#include <gtest/gtest.h>

#include "common/pg.hpp"

namespace syncline::pg {
namespace {

TEST(PgErrorClassification, ConnectionExceptionsAreRetriable) {
  for (const char* state : {"08000", "08001", "08003", "08004", "08006", "08P01"}) {
    EXPECT_EQ(classify(state), ErrorClass::retriable) << state;
  }
}

TEST(PgErrorClassification, MissingSqlstateMeansTheConnectionWasLost) {
  EXPECT_EQ(classify(""), ErrorClass::retriable);
}

TEST(PgErrorClassification, SerializationFailureAndDeadlockAreRetriable) {
  EXPECT_EQ(classify("40001"), ErrorClass::retriable);
  EXPECT_EQ(classify("40P01"), ErrorClass::retriable);
}

TEST(PgErrorClassification, AdminShutdownAndCrashAreRetriable) {
  for (const char* state : {"57P01", "57P02", "57P03"})
    EXPECT_EQ(classify(state), ErrorClass::retriable) << state;
}

TEST(PgErrorClassification, TimeoutsLockWaitsAndExhaustedResourcesAreRetriable) {
  // statement timeout / cancel, lock not available, disk full, too many connections
  for (const char* state : {"57014", "55P03", "53100", "53300"})
    EXPECT_EQ(classify(state), ErrorClass::retriable) << state;
}

TEST(PgErrorClassification, ConstraintViolationsArePermanent) {
  for (const char* state : {"23000", "23502", "23503", "23505", "23514", "23P01"}) {
    EXPECT_EQ(classify(state), ErrorClass::permanent) << state;
  }
}

TEST(PgErrorClassification, OtherErrorsArePermanent) {
  // syntax error, undefined table, invalid text representation, other rollback, internal error
  for (const char* state : {"42601", "42P01", "22P02", "40000", "XX000"}) {
    EXPECT_EQ(classify(state), ErrorClass::permanent) << state;
  }
}

TEST(PgErrorClassification, LostConnectionDuringCommitIsInDoubt) {
  EXPECT_EQ(classify("", true), ErrorClass::in_doubt);
  EXPECT_EQ(classify("08006", true), ErrorClass::in_doubt);
  EXPECT_EQ(classify("57P01", true), ErrorClass::in_doubt);
}

TEST(PgErrorClassification, ServerAnswerDuringCommitIsNotInDoubt) {
  // The server reported the outcome: the transaction was rolled back.
  EXPECT_EQ(classify("40001", true), ErrorClass::retriable);
  EXPECT_EQ(classify("23505", true), ErrorClass::permanent);
}

TEST(PgError, CarriesSqlstateClassAndMessage) {
  const PgError error("23505", "duplicate key value violates unique constraint");
  EXPECT_EQ(error.sqlstate(), "23505");
  EXPECT_EQ(error.error_class(), ErrorClass::permanent);
  EXPECT_FALSE(error.retriable());
  EXPECT_NE(std::string(error.what()).find("SQLSTATE 23505"), std::string::npos);
}

TEST(PgError, InDoubtCommitIsNeitherRetriableNorPermanent) {
  const PgError error("08006", "server closed the connection unexpectedly", true);
  EXPECT_TRUE(error.in_doubt());
  EXPECT_FALSE(error.retriable());
}

TEST(PgConnection, ConnectFailureDoesNotRevealThePassword) {
  try {
    PgConnection connection("postgresql://someone:s3cret-pw@127.0.0.1:1/db", std::chrono::seconds(2));
    FAIL() << "expected PgError";
  } catch (const PgError& e) {
    EXPECT_EQ(e.sqlstate(), "08001");
    EXPECT_TRUE(e.retriable());
    EXPECT_EQ(std::string(e.what()).find("s3cret-pw"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace syncline::pg
