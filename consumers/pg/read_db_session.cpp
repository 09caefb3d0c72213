// ReadDbSession (see read_db_session.hpp).
#include "consumers/pg/read_db_session.hpp"

#include <stdexcept>

namespace syncline::pg_projector {

void ReadDbSession::connect() {
  disconnect();
  connection_ = std::make_unique<pg::PgConnection>(dsn_);
  // A projection statement waiting on a lock held by a stuck session must not block forever
  // without a trace; a minute is far beyond any batch.
  connection_->exec("SET statement_timeout = '60s'");
  connection_->exec("SET application_name = 'syncline-pg-projector'");
}

void ReadDbSession::disconnect() noexcept {
  prepared_.clear();
  connection_.reset();
}

pg::PgConnection& ReadDbSession::connection() {
  if (!connection_) throw std::logic_error("the read database session is not connected");
  return *connection_;
}

const ReadDbSession::Prepared& ReadDbSession::prepared(const std::string& sql) {
  if (const auto it = prepared_.find(sql); it != prepared_.end()) return it->second;
  Prepared statement{"syncline_" + std::to_string(prepared_.size() + 1), {}};
  statement.types = connection().prepare(statement.name, sql);
  return prepared_.emplace(sql, std::move(statement)).first->second;
}

const std::vector<Oid>& ReadDbSession::parameter_types(const std::string& sql) { return prepared(sql).types; }

const std::string& ReadDbSession::statement_name(const std::string& sql) { return prepared(sql).name; }

}  // namespace syncline::pg_projector
