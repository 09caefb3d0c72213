// Reconnecting: a test's connection to a PostgreSQL that the test itself kills or restarts.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "common/pg.hpp"

namespace syncline::test {

// Opened again, on first use after its server was killed or restarted.
class Reconnecting {
 public:
  explicit Reconnecting(std::string dsn) : dsn_(std::move(dsn)) {}
  pg::PgConnection& get() {
    if (!db_ || !db_->is_open()) {
      db_.reset();
      db_ = std::make_unique<pg::PgConnection>(dsn_, std::chrono::seconds(5));
      db_->exec("SET TimeZone = 'UTC'");  // timestamps are compared as text
    }
    return *db_;
  }
  pg::Result exec(const std::string& sql) {
    try {
      return get().exec(sql);
    } catch (...) {
      db_.reset();  // the next call connects again
      throw;
    }
  }
  void reset() { db_.reset(); }

 private:
  std::string dsn_;
  std::unique_ptr<pg::PgConnection> db_;
};

}  // namespace syncline::test
