// PostgreSQL client wrapper over libpq (see pg.hpp).
#include "common/pg.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "common/logging.hpp"

namespace syncline::pg {

namespace {

constexpr std::string_view kConnectionFailure = "08006";
constexpr std::string_view kUnableToConnect = "08001";

std::string trimmed_message(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.pop_back();
  return redact_secrets(text);
}

bool starts_with_keyword(std::string_view sql, std::string_view keyword) {
  const auto first = sql.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || sql.size() - first < keyword.size()) return false;
  const std::string_view head = sql.substr(first, keyword.size());
  const bool same = std::equal(head.begin(), head.end(), keyword.begin(), [](char a, char b) {
    return std::toupper(static_cast<unsigned char>(a)) == b;
  });
  const std::string_view rest = sql.substr(first + keyword.size());
  return same && (rest.empty() || std::isalpha(static_cast<unsigned char>(rest.front())) == 0);
}

// COMMIT, COMMIT PREPARED and END all finish a transaction: losing the connection during one of
// them leaves the outcome unknown.
bool is_commit(std::string_view sql) {
  return starts_with_keyword(sql, "COMMIT") || starts_with_keyword(sql, "END");
}

void on_notice(void* /*arg*/, const char* message) {
  log::get("pg")->debug("server notice: {}", trimmed_message(message));
}

}  // namespace

std::string_view to_string(ErrorClass error_class) noexcept {
  switch (error_class) {
    case ErrorClass::retriable:
      return "retriable";
    case ErrorClass::permanent:
      return "permanent";
    case ErrorClass::in_doubt:
      return "in_doubt";
  }
  return "unknown";
}

ErrorClass classify(std::string_view sqlstate, bool during_commit) noexcept {
  const bool connection_lost = sqlstate.empty() || sqlstate.starts_with("08");
  // An administrator shutdown ends the session: like a lost connection, the server may or may
  // not have committed before it went away.
  const bool session_ended = sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
  if (during_commit && (connection_lost || session_ended)) return ErrorClass::in_doubt;
  if (connection_lost || session_ended) return ErrorClass::retriable;
  // Serialization failure and deadlock: the server rolled the transaction back; run it again.
  if (sqlstate == "40001" || sqlstate == "40P01") return ErrorClass::retriable;
  // A statement timeout or lock timeout (contention), and a server short of resources (disk
  // full, too many connections): the same statement can succeed later.
  if (sqlstate == "57014" || sqlstate == "55P03" || sqlstate.starts_with("53")) return ErrorClass::retriable;
  // Integrity constraint violations (23xxx) and everything else: the statement is at fault.
  return ErrorClass::permanent;
}

PgError::PgError(std::string sqlstate, const std::string& message, bool during_commit)
    : std::runtime_error(message + (sqlstate.empty() ? "" : " [SQLSTATE " + sqlstate + "]")),
      sqlstate_(std::move(sqlstate)),
      error_class_(classify(sqlstate_, during_commit)) {}

// ---------------------------------------------------------------------------------------------
// Result

int Result::rows() const noexcept { return PQntuples(result_.get()); }

int Result::columns() const noexcept { return PQnfields(result_.get()); }

std::string Result::column_name(int column) const {
  const char* name = PQfname(result_.get(), column);
  if (name == nullptr) throw std::out_of_range("no column " + std::to_string(column));
  return name;
}

int Result::column_index(std::string_view name) const {
  const int index = PQfnumber(result_.get(), std::string(name).c_str());
  if (index < 0) throw std::out_of_range("no column named " + std::string(name));
  return index;
}

bool Result::is_null(int row, int column) const noexcept {
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string_view Result::value(int row, int column) const {
  if (row < 0 || row >= rows() || column < 0 || column >= columns()) {
    throw std::out_of_range("no cell (" + std::to_string(row) + ", " + std::to_string(column) + ")");
  }
  return {PQgetvalue(result_.get(), row, column),
          static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
}

std::optional<std::string> Result::get(int row, int column) const {
  const std::string_view text = value(row, column);
  if (is_null(row, column)) return std::nullopt;
  return std::string(text);
}

std::optional<std::string> Result::get(int row, std::string_view column) const {
  return get(row, column_index(column));
}

long long Result::affected_rows() const {
  const std::string_view tuples = PQcmdTuples(result_.get());
  return tuples.empty() ? 0 : std::stoll(std::string(tuples));
}

std::string Result::command_status() const { return PQcmdStatus(result_.get()); }

// ---------------------------------------------------------------------------------------------
// PgConnection

PgConnection::PgConnection(const std::string& dsn, std::chrono::seconds connect_timeout) {
  // The DSN goes in as dbname with expand_dbname, so both URIs and key=value strings work;
  // connect_timeout comes later and therefore wins over one in the DSN.
  const std::string timeout = std::to_string(std::max<long long>(connect_timeout.count(), 1));
  const std::array<const char*, 3> keywords{"dbname", "connect_timeout", nullptr};
  const std::array<const char*, 3> values{dsn.c_str(), timeout.c_str(), nullptr};
  conn_.reset(PQconnectdbParams(keywords.data(), values.data(), 1));
  if (!conn_) throw PgError(std::string(kUnableToConnect), "cannot allocate a PostgreSQL connection");
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    throw PgError(std::string(kUnableToConnect),
                  "cannot connect to PostgreSQL: " + trimmed_message(PQerrorMessage(conn_.get())));
  }
  PQsetNoticeProcessor(conn_.get(), on_notice, nullptr);
}

Result PgConnection::exec(std::string_view sql, const std::vector<Param>& params) {
  const std::string statement(sql);
  PGresult* raw_result = nullptr;
  if (params.empty()) {
    // The simple protocol: the only one a replication connection accepts.
    raw_result = PQexec(conn_.get(), statement.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
    raw_result = PQexecParams(conn_.get(), statement.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0);
  }
  std::unique_ptr<PGresult, ResultDeleter> result(raw_result);
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  switch (status) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      return Result(std::move(result));
    default:
      throw_last_error(result.get(), is_commit(sql));
  }
}

std::vector<Oid> PgConnection::prepare(const std::string& name, std::string_view sql) {
  const std::string statement(sql);
  const std::unique_ptr<PGresult, ResultDeleter> prepared(
      PQprepare(conn_.get(), name.c_str(), statement.c_str(), 0, nullptr));
  if (!prepared || PQresultStatus(prepared.get()) != PGRES_COMMAND_OK) throw_last_error(prepared.get(), false);
  const std::unique_ptr<PGresult, ResultDeleter> described(PQdescribePrepared(conn_.get(), name.c_str()));
  if (!described || PQresultStatus(described.get()) != PGRES_COMMAND_OK) {
    throw_last_error(described.get(), false);
  }
  std::vector<Oid> types(static_cast<std::size_t>(PQnparams(described.get())));
  for (std::size_t i = 0; i < types.size(); ++i) types[i] = PQparamtype(described.get(), static_cast<int>(i));
  return types;
}

void PgConnection::throw_last_error(const PGresult* result, bool during_commit) const {
  throw error_of(result, during_commit);
}

PgError PgConnection::error_of(const PGresult* result, bool during_commit) const {
  const char* sqlstate = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message =
      trimmed_message(result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_.get()));
  if (message.empty()) message = trimmed_message(PQerrorMessage(conn_.get()));
  // No SQLSTATE means the server never answered; a dead connection says which kind of failure.
  std::string code = sqlstate != nullptr ? sqlstate : "";
  if (code.empty() && PQstatus(conn_.get()) == CONNECTION_BAD) code = kConnectionFailure;
  return PgError(code, message, during_commit);
}

bool PgConnection::is_open() const noexcept { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }

int PgConnection::server_version() const noexcept { return PQserverVersion(conn_.get()); }

// ---------------------------------------------------------------------------------------------
// Pipeline

namespace {
std::vector<const char*> param_values(const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
  return values;
}
}  // namespace

Pipeline::Pipeline(PgConnection& connection) : connection_(connection) {
  if (PQenterPipelineMode(connection_.raw()) != 1) connection_.throw_last_error(nullptr, false);
}

Pipeline::~Pipeline() {
  try {
    if (sent_ > synced_) sync();
  } catch (const std::exception& e) {
    log::get("pg")->debug("pipeline: pending results lost: {}", e.what());
  }
  PQexitPipelineMode(connection_.raw());
}

void Pipeline::send_prepared(const std::string& name, const std::vector<Param>& params) {
  const auto values = param_values(params);
  if (PQsendQueryPrepared(connection_.raw(), name.c_str(), static_cast<int>(values.size()), values.data(),
                          nullptr, nullptr, 0) != 1) {
    connection_.throw_last_error(nullptr, false);
  }
  commits_.push_back(false);
  ++sent_;
}

void Pipeline::send(const std::string& sql, const std::vector<Param>& params) {
  const auto values = param_values(params);
  if (PQsendQueryParams(connection_.raw(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                        values.data(), nullptr, nullptr, 0) != 1) {
    connection_.throw_last_error(nullptr, is_commit(sql));
  }
  commits_.push_back(is_commit(sql));
  ++sent_;
}

std::optional<Pipeline::Failure> Pipeline::sync() {
  PGconn* conn = connection_.raw();
  const bool commit_pending = std::find(commits_.begin(), commits_.end(), true) != commits_.end();
  if (PQpipelineSync(conn) != 1) connection_.throw_last_error(nullptr, commit_pending);
  std::optional<Failure> failure;
  for (std::size_t i = 0; i < commits_.size(); ++i) {
    // Each statement's results end with a null pointer; a dead connection gives no more results.
    bool any = false;
    while (const std::unique_ptr<PGresult, ResultDeleter> result{PQgetResult(conn)}) {
      any = true;
      if (PQresultStatus(result.get()) == PGRES_FATAL_ERROR && !failure) {
        failure.emplace(Failure{synced_ + i, connection_.error_of(result.get(), commits_[i])});
      }
    }
    if (!any || PQstatus(conn) == CONNECTION_BAD) {
      synced_ = sent_;
      commits_.clear();
      // A failure seen before the connection died is the real answer; otherwise the outcome of a
      // COMMIT among what was sent is unknown.
      if (failure && failure->error.error_class() != ErrorClass::retriable) return failure;
      connection_.throw_last_error(nullptr, commit_pending);
    }
  }
  const std::unique_ptr<PGresult, ResultDeleter> sync_result{PQgetResult(conn)};
  synced_ = sent_;
  commits_.clear();
  if (!sync_result || PQresultStatus(sync_result.get()) != PGRES_PIPELINE_SYNC) {
    connection_.throw_last_error(sync_result.get(), commit_pending);
  }
  return failure;
}

// ---------------------------------------------------------------------------------------------
// Transaction

Transaction::Transaction(PgConnection& connection, std::string_view begin_sql) : connection_(connection) {
  connection_.exec(begin_sql);
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    rollback();
  } catch (const std::exception& e) {
    // The server rolls back on its own when the connection is gone.
    log::get("pg")->warn("rollback failed: {}", e.what());
  }
}

void Transaction::commit() {
  open_ = false;
  const Result result = connection_.exec("COMMIT");
  // COMMIT of a transaction that already failed succeeds but reports ROLLBACK.
  if (result.command_status() == "ROLLBACK") {
    throw PgError("25P02", "the transaction had failed and was rolled back instead of committed");
  }
}

void Transaction::rollback() {
  open_ = false;
  connection_.exec("ROLLBACK");
}

}  // namespace syncline::pg
