// PostgreSQL client wrapper: an RAII libpq connection, parameterised queries, and error
// classification by SQLSTATE.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace syncline::pg {

// retriable: try again (new connection / new transaction) with backoff.
// permanent: the statement or its data is at fault; retrying gives the same answer.
// in_doubt: the connection failed while COMMIT was in flight, so the transaction may or may not
// have been applied. Never retry blindly: check the effect (e.g. the stored offset) first.
enum class ErrorClass { retriable, permanent, in_doubt };

std::string_view to_string(ErrorClass error_class) noexcept;

// `sqlstate` is the five-character code; empty means the server never answered (the connection
// was lost), which counts as a connection error.
ErrorClass classify(std::string_view sqlstate, bool during_commit = false) noexcept;

class PgError : public std::runtime_error {
 public:
  PgError(std::string sqlstate, const std::string& message, bool during_commit = false);
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  ErrorClass error_class() const noexcept { return error_class_; }
  bool retriable() const noexcept { return error_class_ == ErrorClass::retriable; }
  bool in_doubt() const noexcept { return error_class_ == ErrorClass::in_doubt; }

 private:
  std::string sqlstate_;
  ErrorClass error_class_;
};

struct ResultDeleter {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
struct ConnDeleter {
  void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};

// A query result in text format. Row and column indexes are zero-based.
class Result {
 public:
  explicit Result(std::unique_ptr<PGresult, ResultDeleter> result) : result_(std::move(result)) {}

  int rows() const noexcept;
  int columns() const noexcept;
  std::string column_name(int column) const;
  int column_index(std::string_view name) const;  // throws std::out_of_range if absent
  bool is_null(int row, int column) const noexcept;
  std::string_view value(int row, int column) const;  // "" for NULL; see get()
  std::optional<std::string> get(int row, int column) const;
  std::optional<std::string> get(int row, std::string_view column) const;
  long long affected_rows() const;  // INSERT/UPDATE/DELETE/...; 0 otherwise
  std::string command_status() const;
  const PGresult* raw() const noexcept { return result_.get(); }

 private:
  std::unique_ptr<PGresult, ResultDeleter> result_;
};

using Param = std::optional<std::string>;  // nullopt is SQL NULL

// One libpq connection. Not thread-safe: owned by one thread at a time. A `replication=database`
// DSN option opens a walsender connection; exec() without parameters then sends replication
// commands through the simple query protocol.
class PgConnection {
 public:
  // Throws PgError (SQLSTATE 08001 when no server answered). Never puts the DSN in the message.
  explicit PgConnection(const std::string& dsn,
                        std::chrono::seconds connect_timeout = std::chrono::seconds(10));

  // Runs `sql` with $1..$n bound to `params` (text format). Throws PgError on failure.
  Result exec(std::string_view sql, const std::vector<Param>& params = {});

  // Prepares `sql` as the named statement `name`, letting the server infer parameter types, and
  // returns those types. Throws PgError (a syntax error or unknown table is permanent).
  std::vector<Oid> prepare(const std::string& name, std::string_view sql);

  bool is_open() const noexcept;
  int server_version() const noexcept;  // e.g. 150004
  PGconn* raw() const noexcept { return conn_.get(); }

 private:
  friend class Pipeline;
  [[noreturn]] void throw_last_error(const PGresult* result, bool during_commit) const;
  PgError error_of(const PGresult* result, bool during_commit) const;

  std::unique_ptr<PGconn, ConnDeleter> conn_;
};

// Many statements, one round trip per sync(): libpq's pipeline mode. While a Pipeline lives, its
// connection accepts nothing else. Owned by the connection's thread.
class Pipeline {
 public:
  explicit Pipeline(PgConnection& connection);  // throws PgError if pipeline mode cannot start
  ~Pipeline();                                  // reads what is pending and leaves pipeline mode
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Queues a statement prepared on this connection (PgConnection::prepare), or an unnamed one.
  void send_prepared(const std::string& name, const std::vector<Param>& params);
  void send(const std::string& sql, const std::vector<Param>& params = {});

  struct Failure {
    std::size_t index;  // of the failed statement, counting every statement sent since construction
    PgError error;
  };
  // Sends a sync point and reads every result queued since the last one. A failed statement
  // aborts the ones after it up to the sync; the first failure is returned, not thrown. Throws
  // PgError when the connection itself fails (in_doubt() when a COMMIT was among the statements).
  std::optional<Failure> sync();
  std::size_t sent() const noexcept { return sent_; }

 private:
  PgConnection& connection_;
  std::size_t sent_ = 0;
  std::size_t synced_ = 0;
  std::vector<bool> commits_;  // per statement since the last sync: is it a COMMIT?
};

// BEGIN ... COMMIT with an explicit commit(); rolls back on destruction if not committed.
class Transaction {
 public:
  explicit Transaction(PgConnection& connection, std::string_view begin_sql = "BEGIN");
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result exec(std::string_view sql, const std::vector<Param>& params = {}) {
    return connection_.exec(sql, params);
  }
  // Throws PgError; its in_doubt() is true when the connection failed during the COMMIT.
  void commit();
  void rollback();

 private:
  PgConnection& connection_;
  bool open_ = true;
};

}  // namespace syncline::pg
