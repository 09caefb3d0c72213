// ReplicationConnection: walsender commands and the CopyBoth stream (see replication_connection.hpp).
#include "producer/replication_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/logging.hpp"
#include "producer/pg_timestamp.hpp"
#include "producer/replication_frame.hpp"
#include "producer/slot_manager.hpp"

namespace syncline::producer {
namespace {

constexpr std::string_view kConnectionFailure = "08006";
constexpr std::string_view kUnableToConnect = "08001";
constexpr std::string_view kProtocolViolation = "08P01";
constexpr std::string_view kInvalidName = "42602";
constexpr std::string_view kInvalidParameter = "22023";

// The text output settings the value mapper expects (see the class comment).
constexpr const char* kSessionOptions = "-c datestyle=ISO -c timezone=UTC -c extra_float_digits=3";

struct CopyBufferDeleter {
  void operator()(char* buffer) const noexcept { PQfreemem(buffer); }
};
using CopyBuffer = std::unique_ptr<char, CopyBufferDeleter>;

std::string server_message(const char* message) {
  std::string text = message != nullptr ? message : "";
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.pop_back();
  return redact_secrets(text);
}

// PostgreSQL's ReplicationSlotValidateName rules, checked here so the name can go into a command.
void check_slot_name(std::string_view name) {
  const bool valid = !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!valid) {
    throw pg::PgError(std::string(kInvalidName),
                      "invalid replication slot name '" + std::string(name) +
                          "': use 1-63 characters of lower-case letters, digits and underscores");
  }
}

// pgoutput splits publication_names like a list of SQL identifiers.
std::string publication_list(const std::vector<std::string>& publications) {
  std::string list;
  for (const auto& name : publications) {
    if (!list.empty()) list += ',';
    list += quote_identifier(name);
  }
  return list;
}

Lsn parse_lsn(const pg::Result& result, std::string_view column) {
  const auto text = result.get(0, column);
  if (!text) return Lsn{};
  const auto lsn = Lsn::parse(*text);
  if (!lsn) {
    throw pg::PgError(std::string(kProtocolViolation),
                      "the server sent an unreadable " + std::string(column) + " '" + *text + "'");
  }
  return *lsn;
}

}  // namespace

ReplicationConnection::ReplicationConnection(const std::string& dsn, std::chrono::seconds connect_timeout) {
  // As in PgConnection: the DSN expands in place of dbname, and the keywords after it win over the
  // same keywords inside it, so no DSN can turn off replication mode or the text settings.
  const std::string timeout = std::to_string(std::max<long long>(connect_timeout.count(), 1));
  const std::array<const char*, 5> keywords{"dbname", "replication", "options", "connect_timeout", nullptr};
  const std::array<const char*, 5> values{dsn.c_str(), "database", kSessionOptions, timeout.c_str(), nullptr};
  conn_.reset(PQconnectdbParams(keywords.data(), values.data(), 1));
  if (!conn_) throw pg::PgError(std::string(kUnableToConnect), "cannot allocate a PostgreSQL connection");
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    throw pg::PgError(std::string(kUnableToConnect), "cannot open a replication connection to PostgreSQL: " +
                                                         server_message(PQerrorMessage(conn_.get())));
  }
}

ReplicationConnection::~ReplicationConnection() {
  if (!streaming_ || !is_open()) return;
  try {
    stop_replication(std::chrono::seconds(1));
  } catch (const std::exception& e) {
    // Closing the socket ends the walsender anyway; the slot keeps its confirmed position.
    log::get("replication")->debug("replication stream did not end cleanly: {}", e.what());
  }
}

bool ReplicationConnection::is_open() const noexcept {
  return conn_ && PQstatus(conn_.get()) == CONNECTION_OK;
}

int ReplicationConnection::backend_pid() const noexcept { return PQbackendPID(conn_.get()); }

pg::Result ReplicationConnection::run(const std::string& command, ExecStatusType expected) {
  if (streaming_) {
    throw pg::PgError(std::string(kProtocolViolation),
                      "a replication command cannot run while streaming; call stop_replication() first");
  }
  // Replication commands accept only the simple query protocol: PQexec.
  std::unique_ptr<PGresult, pg::ResultDeleter> result(PQexec(conn_.get(), command.c_str()));
  if (result && PQresultStatus(result.get()) == expected) return pg::Result(std::move(result));
  if (!result) throw_connection_error("replication command failed");
  const char* sqlstate = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
  std::string code = sqlstate != nullptr ? sqlstate : "";
  if (code.empty() && PQstatus(conn_.get()) == CONNECTION_BAD) code = kConnectionFailure;
  std::string message = server_message(PQresultErrorMessage(result.get()));
  if (message.empty()) {
    message = std::string("unexpected result ") + PQresStatus(PQresultStatus(result.get()));
    if (code.empty()) code = kProtocolViolation;
  }
  throw pg::PgError(code, message);
}

void ReplicationConnection::throw_connection_error(std::string_view context) const {
  // Whatever the reason, a connection libpq gave up on is a lost connection: reconnect and resume.
  throw pg::PgError(std::string(kConnectionFailure),
                    std::string(context) + ": " + server_message(PQerrorMessage(conn_.get())));
}

SystemIdentity ReplicationConnection::identify_system() {
  const pg::Result result = run("IDENTIFY_SYSTEM", PGRES_TUPLES_OK);
  if (result.rows() != 1) {
    throw pg::PgError(std::string(kProtocolViolation), "IDENTIFY_SYSTEM returned no row");
  }
  SystemIdentity identity;
  identity.system_id = result.get(0, "systemid").value_or("");
  identity.timeline = std::stoi(result.get(0, "timeline").value_or("0"));
  identity.wal_flush = parse_lsn(result, "xlogpos");
  identity.database = result.get(0, "dbname").value_or("");
  return identity;
}

std::string ReplicationConnection::timeline_history(int timeline) {
  const pg::Result result = run("TIMELINE_HISTORY " + std::to_string(timeline), PGRES_TUPLES_OK);
  if (result.rows() != 1) {
    throw pg::PgError(std::string(kProtocolViolation), "TIMELINE_HISTORY returned no row");
  }
  return std::string(result.value(0, 1));
}

CreatedSlot ReplicationConnection::create_slot(std::string_view slot_name, bool export_snapshot) {
  check_slot_name(slot_name);
  // PostgreSQL 15 syntax. 'nothing' avoids building a snapshot nobody imports.
  return create("CREATE_REPLICATION_SLOT " + quote_identifier(slot_name) + " LOGICAL pgoutput (SNAPSHOT " +
                (export_snapshot ? "'export'" : "'nothing'") + ")");
}

CreatedSlot ReplicationConnection::create_temporary_slot(std::string_view slot_name) {
  check_slot_name(slot_name);
  return create("CREATE_REPLICATION_SLOT " + quote_identifier(slot_name) +
                " TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')");
}

CreatedSlot ReplicationConnection::create(const std::string& command) {
  const pg::Result result = run(command, PGRES_TUPLES_OK);
  if (result.rows() != 1) {
    throw pg::PgError(std::string(kProtocolViolation), "CREATE_REPLICATION_SLOT returned no row");
  }
  CreatedSlot slot;
  slot.slot_name = result.get(0, "slot_name").value_or("");
  slot.consistent_point = parse_lsn(result, "consistent_point");
  slot.snapshot_name = result.get(0, "snapshot_name");
  slot.output_plugin = result.get(0, "output_plugin").value_or("");
  log::get("replication")
      ->info("created replication slot {} at {}{}", slot.slot_name, slot.consistent_point,
             slot.snapshot_name ? " with exported snapshot " + *slot.snapshot_name : "");
  return slot;
}

void ReplicationConnection::start_replication(std::string_view slot_name, Lsn start,
                                              const StreamOptions& options) {
  check_slot_name(slot_name);
  if (options.proto_version != 1 && options.proto_version != 2) {
    throw pg::PgError(std::string(kInvalidParameter), "pgoutput protocol version " +
                                                          std::to_string(options.proto_version) +
                                                          " is not supported (use 1 or 2)");
  }
  if (options.publications.empty()) {
    throw pg::PgError(std::string(kInvalidParameter), "start_replication needs at least one publication");
  }
  const std::string command = "START_REPLICATION SLOT " + quote_identifier(slot_name) + " LOGICAL " +
                              start.to_string() + " (proto_version " +
                              quote_literal(std::to_string(options.proto_version)) + ", publication_names " +
                              quote_literal(publication_list(options.publications)) + ", messages " +
                              quote_literal(options.messages ? "true" : "false") + ")";
  run(command, PGRES_COPY_BOTH);
  streaming_ = true;
  log::get("replication")->info("streaming slot {} from {}", slot_name, start);
}

bool ReplicationConnection::wait_readable(std::chrono::steady_clock::time_point deadline) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  while (true) {
    // Polls at least once, so that a zero timeout still picks up what already reached the socket.
    const auto left =
        std::max(duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()), milliseconds(0));
    pollfd descriptor{PQsocket(conn_.get()), POLLIN, 0};
    const int ready = ::poll(&descriptor, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
    if (ready > 0) return true;
    if (ready == 0 && left.count() == 0) return false;
    if (ready < 0 && errno != EINTR) {
      throw pg::PgError(std::string(kConnectionFailure),
                        std::string("waiting for the replication stream failed: ") + std::strerror(errno));
    }
  }
}

std::optional<std::string> ReplicationConnection::read_frame(std::chrono::milliseconds timeout) {
  if (!streaming_) {
    throw pg::PgError(std::string(kProtocolViolation), "read_frame() needs start_replication() first");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool connection_lost = false;
  while (true) {
    char* raw = nullptr;
    // Async: returns 0 instead of blocking when no whole frame is buffered yet.
    const int length = PQgetCopyData(conn_.get(), &raw, 1);
    const CopyBuffer buffer(raw);
    if (length > 0) return std::string(buffer.get(), static_cast<std::size_t>(length));
    if (length == -1) throw_stream_end("the server ended the replication stream");
    if (length < -1) throw_stream_end("reading the replication stream failed");
    if (connection_lost) throw_stream_end("the replication connection was lost");
    if (!wait_readable(deadline)) return std::nullopt;
    // The socket is readable: pull it into libpq's buffer. When the server closed the connection,
    // it may have sent its reason first ("terminating connection due to administrator command"):
    // one more PQgetCopyData turns that into the error with its SQLSTATE.
    connection_lost = PQconsumeInput(conn_.get()) == 0;
  }
}

void ReplicationConnection::throw_stream_end(std::string_view context) {
  streaming_ = false;
  std::string code;
  std::string message;
  // Collect the final results; PGRES_COPY_IN means the server sent CopyDone but we have not, so
  // answer it once to let the command finish. The bound guards against a misbehaving server.
  bool sent_copy_end = false;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::unique_ptr<PGresult, pg::ResultDeleter> result(PQgetResult(conn_.get()));
    if (!result) break;
    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_COPY_IN || status == PGRES_COPY_BOTH) {
      if (sent_copy_end || PQputCopyEnd(conn_.get(), nullptr) != 1) break;
      sent_copy_end = true;
      continue;
    }
    if ((status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR) && message.empty()) {
      const char* sqlstate = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
      code = sqlstate != nullptr ? sqlstate : "";
      message = server_message(PQresultErrorMessage(result.get()));
    }
  }
  if (message.empty()) message = server_message(PQerrorMessage(conn_.get()));
  if (code.empty()) code = kConnectionFailure;  // no server verdict: treat as a lost connection
  throw pg::PgError(code, std::string(context) + (message.empty() ? "" : ": " + message));
}

void ReplicationConnection::send_status(Lsn written, Lsn flushed, Lsn applied, bool reply_requested) {
  if (!streaming_) {
    throw pg::PgError(std::string(kProtocolViolation), "send_status() needs start_replication() first");
  }
  const auto now = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
  const std::string frame = encode_standby_status_update(
      StandbyStatusUpdate{written, flushed, applied, PgTimestamp::from_sys_time(now), reply_requested});
  if (PQputCopyData(conn_.get(), frame.data(), static_cast<int>(frame.size())) != 1 ||
      PQflush(conn_.get()) != 0) {
    throw_connection_error("sending a standby status update failed");
  }
}

void ReplicationConnection::stop_replication(std::chrono::milliseconds timeout) {
  if (!streaming_) return;
  if (PQputCopyEnd(conn_.get(), nullptr) != 1 || PQflush(conn_.get()) != 0) {
    streaming_ = false;
    throw_connection_error("ending the replication stream failed");
  }
  // The server may still send frames that were in flight before it saw our CopyDone.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    char* raw = nullptr;
    const int length = PQgetCopyData(conn_.get(), &raw, 1);
    const CopyBuffer buffer(raw);
    if (length > 0) continue;
    if (length < 0) break;
    if (!wait_readable(deadline) || PQconsumeInput(conn_.get()) == 0) {
      streaming_ = false;
      throw_connection_error("the server did not end the replication stream in time");
    }
  }
  streaming_ = false;
  // CommandComplete, then ReadyForQuery: a failed command here means the stream ended in error.
  while (true) {
    std::unique_ptr<PGresult, pg::ResultDeleter> result(PQgetResult(conn_.get()));
    if (!result) break;
    if (PQresultStatus(result.get()) == PGRES_FATAL_ERROR) {
      const char* sqlstate = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
      throw pg::PgError(sqlstate != nullptr ? sqlstate : std::string(kConnectionFailure),
                        "the replication stream ended with an error: " +
                            server_message(PQresultErrorMessage(result.get())));
    }
  }
}

}  // namespace syncline::producer
