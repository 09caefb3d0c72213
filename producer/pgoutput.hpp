// Decoder of pgoutput logical replication messages, protocol versions 1 and 2 (PostgreSQL 15).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/lsn.hpp"
#include "producer/byte_reader.hpp"
#include "producer/pg_timestamp.hpp"

namespace syncline::producer {

using Oid = std::uint32_t;
using Xid = std::uint32_t;

// The message layouts follow PostgreSQL's "Logical Replication Message Formats" and
// src/backend/replication/logical/proto.c. `xid` on a change is set only inside a v2 stream block,
// where PostgreSQL prefixes every change with the xid of the (sub)transaction being streamed.

struct BeginMessage {
  Lsn final_lsn;  // of the commit record: the transaction's position
  PgTimestamp commit_time;
  Xid xid = 0;
  friend bool operator==(const BeginMessage&, const BeginMessage&) = default;
};

struct CommitMessage {
  std::uint8_t flags = 0;  // unused by PostgreSQL 15
  Lsn commit_lsn;
  Lsn end_lsn;  // just past the commit record: what to confirm once published
  PgTimestamp commit_time;
  friend bool operator==(const CommitMessage&, const CommitMessage&) = default;
};

// The transaction was replayed from another node (replication origin).
struct OriginMessage {
  Lsn commit_lsn;  // on the origin node
  std::string name;
  friend bool operator==(const OriginMessage&, const OriginMessage&) = default;
};

enum class ReplicaIdentity : char { default_identity = 'd', nothing = 'n', full = 'f', index = 'i' };

struct RelationColumn {
  bool is_key = false;  // part of the replica identity (primary key, identity index, or FULL)
  std::string name;
  Oid type_oid = 0;
  std::int32_t type_modifier = -1;
  friend bool operator==(const RelationColumn&, const RelationColumn&) = default;
};

struct RelationMessage {
  std::optional<Xid> xid;
  Oid relation_id = 0;
  std::string schema;
  std::string table;
  ReplicaIdentity replica_identity = ReplicaIdentity::default_identity;
  std::vector<RelationColumn> columns;
  friend bool operator==(const RelationMessage&, const RelationMessage&) = default;
};

// Sent for user-defined types (enums, domains, ...) before a Relation that uses them.
struct TypeMessage {
  std::optional<Xid> xid;
  Oid type_oid = 0;
  std::string schema;
  std::string name;
  friend bool operator==(const TypeMessage&, const TypeMessage&) = default;
};

enum class ColumnKind : char { null = 'n', unchanged_toast = 'u', text = 't', binary = 'b' };

struct TupleColumn {
  ColumnKind kind = ColumnKind::null;
  std::string value;  // the text (or binary) form; empty for null and unchanged TOAST
  friend bool operator==(const TupleColumn&, const TupleColumn&) = default;
};

using TupleData = std::vector<TupleColumn>;

// 'K': only the replica identity columns (others null); 'O': the whole old row (REPLICA IDENTITY FULL).
enum class OldTupleKind : char { key = 'K', full = 'O' };

struct OldTuple {
  OldTupleKind kind = OldTupleKind::key;
  TupleData columns;
  friend bool operator==(const OldTuple&, const OldTuple&) = default;
};

struct InsertMessage {
  std::optional<Xid> xid;
  Oid relation_id = 0;
  TupleData new_tuple;
  friend bool operator==(const InsertMessage&, const InsertMessage&) = default;
};

struct UpdateMessage {
  std::optional<Xid> xid;
  Oid relation_id = 0;
  // Absent when the identity did not change (default identity) — PostgreSQL then sends no old row.
  std::optional<OldTuple> old_tuple;
  TupleData new_tuple;
  friend bool operator==(const UpdateMessage&, const UpdateMessage&) = default;
};

struct DeleteMessage {
  std::optional<Xid> xid;
  Oid relation_id = 0;
  OldTuple old_tuple;
  friend bool operator==(const DeleteMessage&, const DeleteMessage&) = default;
};

struct TruncateMessage {
  std::optional<Xid> xid;
  bool cascade = false;
  bool restart_identity = false;
  std::vector<Oid> relation_ids;
  friend bool operator==(const TruncateMessage&, const TruncateMessage&) = default;
};

// pg_logical_emit_message(transactional, prefix, content).
struct LogicalDecodingMessage {
  std::optional<Xid> xid;
  bool transactional = false;
  Lsn lsn;
  std::string prefix;
  std::string content;
  friend bool operator==(const LogicalDecodingMessage&, const LogicalDecodingMessage&) = default;
};

// Protocol v2: a large in-progress transaction is sent in blocks between Stream Start and Stop.
struct StreamStartMessage {
  Xid xid = 0;
  bool first_segment = false;
  friend bool operator==(const StreamStartMessage&, const StreamStartMessage&) = default;
};

struct StreamStopMessage {
  friend bool operator==(const StreamStopMessage&, const StreamStopMessage&) = default;
};

struct StreamCommitMessage {
  Xid xid = 0;
  std::uint8_t flags = 0;
  Lsn commit_lsn;
  Lsn end_lsn;
  PgTimestamp commit_time;
  friend bool operator==(const StreamCommitMessage&, const StreamCommitMessage&) = default;
};

// Discards what was streamed for `subxid` (equal to `xid` when the whole transaction aborted).
struct StreamAbortMessage {
  Xid xid = 0;
  Xid subxid = 0;
  friend bool operator==(const StreamAbortMessage&, const StreamAbortMessage&) = default;
};

using PgoutputMessage =
    std::variant<BeginMessage, CommitMessage, OriginMessage, RelationMessage, TypeMessage, InsertMessage,
                 UpdateMessage, DeleteMessage, TruncateMessage, LogicalDecodingMessage, StreamStartMessage,
                 StreamStopMessage, StreamCommitMessage, StreamAbortMessage>;

// Decodes one message at a time, in stream order. Owned by the replication stream reader, used on
// its thread. It is stateful only because v2 changes carry an xid exactly when they are inside a
// Stream Start/Stop block; a message that fails to decode leaves that state unchanged.
class PgoutputDecoder {
 public:
  // Throws std::invalid_argument for a version other than 1 or 2.
  explicit PgoutputDecoder(int protocol_version = 1);

  // Throws DecodeError for a truncated, garbled or unknown message, or one out of place (a stream
  // message under protocol 1, Stream Stop outside a stream block).
  PgoutputMessage decode(std::string_view message);

  int protocol_version() const { return protocol_version_; }
  bool in_stream() const { return in_stream_; }

 private:
  int protocol_version_;
  bool in_stream_ = false;
};

// The message's name for logs and errors: "Insert", "Stream Commit".
std::string_view message_name(const PgoutputMessage& message);

}  // namespace syncline::producer
