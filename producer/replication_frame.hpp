// The CopyData frames of a streaming replication connection: XLogData and keepalive in, status out.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/lsn.hpp"
#include "producer/byte_reader.hpp"
#include "producer/pg_timestamp.hpp"

namespace syncline::producer {

// 'w': a chunk of WAL data; for logical replication, exactly one pgoutput message.
struct XLogData {
  Lsn wal_start;
  Lsn wal_end;  // the server's current end of WAL
  PgTimestamp send_time;
  std::string_view payload;  // points into the frame passed to decode_replication_frame
  friend bool operator==(const XLogData&, const XLogData&) = default;
};

// 'k': the server is alive; with reply_requested it disconnects us unless we answer soon.
struct PrimaryKeepalive {
  Lsn wal_end;
  PgTimestamp send_time;
  bool reply_requested = false;
  friend bool operator==(const PrimaryKeepalive&, const PrimaryKeepalive&) = default;
};

using ReplicationFrame = std::variant<XLogData, PrimaryKeepalive>;

// Throws DecodeError for an unknown, truncated or overlong frame.
ReplicationFrame decode_replication_frame(std::string_view copy_data);

// 'r': what we have written, flushed and applied. Only `flushed` moves the slot's
// confirmed_flush_lsn, so it must never exceed what is durable downstream.
struct StandbyStatusUpdate {
  Lsn written;
  Lsn flushed;
  Lsn applied;
  PgTimestamp client_time;
  bool reply_requested = false;
  friend bool operator==(const StandbyStatusUpdate&, const StandbyStatusUpdate&) = default;
};

// The 34-byte CopyData payload to send.
std::string encode_standby_status_update(const StandbyStatusUpdate& update);

}  // namespace syncline::producer
