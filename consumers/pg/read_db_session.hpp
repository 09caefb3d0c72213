// ReadDbSession: the projector's one connection to the read database, with the prepared
// statements of the projections (prepared once per connection, by SQL text).
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/pg.hpp"
#include "consumers/pg/projection.hpp"

namespace syncline::pg_projector {

// Owned by the service's consumer thread.
class ReadDbSession : public Session {
 public:
  explicit ReadDbSession(std::string dsn) : dsn_(std::move(dsn)) {}

  bool connected() const noexcept { return connection_ && connection_->is_open(); }
  // Opens a new connection (dropping the old one and its prepared statements). Throws PgError.
  void connect();
  void disconnect() noexcept;

  // Throws std::logic_error when not connected.
  pg::PgConnection& connection() override;
  const std::vector<Oid>& parameter_types(const std::string& sql) override;
  // The name `sql` is prepared under on this connection (preparing it now if needed).
  const std::string& statement_name(const std::string& sql);

 private:
  struct Prepared {
    std::string name;
    std::vector<Oid> types;
  };
  const Prepared& prepared(const std::string& sql);

  std::string dsn_;
  std::unique_ptr<pg::PgConnection> connection_;
  std::unordered_map<std::string, Prepared> prepared_;  // by SQL text; belongs to connection_
};

}  // namespace syncline::pg_projector
