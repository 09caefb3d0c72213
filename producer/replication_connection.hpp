// ReplicationConnection: a walsender connection to the write database that creates slots and streams
// pgoutput CopyData frames.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/lsn.hpp"
#include "common/pg.hpp"

namespace syncline::producer {

// The answer to IDENTIFY_SYSTEM.
struct SystemIdentity {
  std::string system_id;  // a 64-bit number as text: identifies the cluster, survives restarts
  int timeline = 0;
  Lsn wal_flush;  // the server's current WAL flush position
  std::string database;
};

// The answer to CREATE_REPLICATION_SLOT.
struct CreatedSlot {
  std::string slot_name;
  // Changes committed after this position are streamed; everything before it is in the snapshot.
  Lsn consistent_point;
  // Set when the slot exported its snapshot. Valid only until this connection runs its next command
  // (or closes): SnapshotReader must import it before start_replication() is called.
  std::optional<std::string> snapshot_name;
  std::string output_plugin;
};

// What START_REPLICATION asks pgoutput for.
struct StreamOptions {
  std::vector<std::string> publications;
  int proto_version = 1;
  bool messages = true;  // pg_logical_emit_message() content, the outbox-free event source
};

// Owns one walsender connection (`replication=database`). Owned by the WAL reader and used on its
// thread only. The session runs with DateStyle ISO, TimeZone UTC and extra_float_digits 3, so every
// text value pgoutput sends is ISO-8601 in UTC and floats round-trip: the value mapper relies on it.
//
// Every failure is a pg::PgError: retriable when the connection was lost or the walsender was
// terminated (reconnect and resume from the slot), permanent otherwise (a wrong slot, a bad option).
// Messages never contain the DSN.
class ReplicationConnection {
 public:
  // Throws PgError (SQLSTATE 08001) when no walsender answers within `connect_timeout`.
  explicit ReplicationConnection(const std::string& dsn,
                                 std::chrono::seconds connect_timeout = std::chrono::seconds(10));
  // Ends a running stream politely when the connection is still healthy, then closes it.
  ~ReplicationConnection();
  ReplicationConnection(const ReplicationConnection&) = delete;
  ReplicationConnection& operator=(const ReplicationConnection&) = delete;

  SystemIdentity identify_system();
  // The content of timeline `timeline`'s history file: how it branched off its ancestors (one line per
  // switch, "parent<TAB>switchpoint<TAB>reason"). Timeline 1 has none (the server refuses it).
  std::string timeline_history(int timeline);

  // A permanent logical slot with the pgoutput plugin. Slot names are what PostgreSQL accepts:
  // 1-63 characters of [a-z0-9_]; anything else throws PgError (42602) before contacting the server.
  CreatedSlot create_slot(std::string_view slot_name, bool export_snapshot);
  // A temporary logical slot with the pgoutput plugin that exports its snapshot: PostgreSQL drops it
  // when this connection closes. For one consistent read of the database with the exact WAL position
  // that separates what the snapshot contains from what it does not (syncline-ctl resync snapshot);
  // closing the connection once the snapshot is imported releases the WAL it pinned.
  CreatedSlot create_temporary_slot(std::string_view slot_name);

  // Switches the connection into CopyBoth mode, streaming changes committed after `start`
  // (0/0: from the slot's confirmed_flush_lsn).
  void start_replication(std::string_view slot_name, Lsn start, const StreamOptions& options);

  // The next CopyData frame ('w' XLogData or 'k' keepalive, see replication_frame.hpp), or nullopt
  // when none arrived within `timeout` (zero: never waits, only takes what has arrived). Throws PgError when
  // the stream ends or the connection fails.
  std::optional<std::string> read_frame(std::chrono::milliseconds timeout);

  // Sends a standby status update. `flushed` becomes the slot's confirmed_flush_lsn: only pass a
  // position that is durable downstream.
  void send_status(Lsn written, Lsn flushed, Lsn applied, bool reply_requested = false);

  // Ends the stream (CopyDone) and waits, up to `timeout`, for the server to finish it; afterwards
  // the connection accepts replication commands again. A no-op when not streaming.
  void stop_replication(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  bool is_streaming() const noexcept { return streaming_; }
  bool is_open() const noexcept;
  // The walsender's process id, as pg_stat_replication and pg_replication_slots.active_pid show it.
  int backend_pid() const noexcept;

 private:
  pg::Result run(const std::string& command, ExecStatusType expected);
  // Runs a CREATE_REPLICATION_SLOT command and reads its answer.
  CreatedSlot create(const std::string& command);
  // Reads what the server said after the copy ended and throws it, classified.
  [[noreturn]] void throw_stream_end(std::string_view context);
  [[noreturn]] void throw_connection_error(std::string_view context) const;
  bool wait_readable(std::chrono::steady_clock::time_point deadline);

  std::unique_ptr<PGconn, pg::ConnDeleter> conn_;
  bool streaming_ = false;
};

}  // namespace syncline::producer
