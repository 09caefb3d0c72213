// Decoder of pgoutput logical replication messages.
#include "producer/pgoutput.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace syncline::producer {
namespace {

constexpr std::uint8_t kMessageTransactional = 1;
constexpr std::uint8_t kTruncateCascade = 1;
constexpr std::uint8_t kTruncateRestartIdentity = 2;
constexpr std::uint8_t kColumnIsKey = 1;

// Garbled counts must not make us allocate gigabytes before the bounds check notices: every element
// takes at least `min_element_size` bytes, so the remaining length bounds the real count.
std::size_t plausible_capacity(std::size_t count, const ByteReader& reader, std::size_t min_element_size) {
  return std::min(count, reader.remaining() / min_element_size);
}

std::string describe_byte(std::uint8_t byte) {
  if (byte >= 0x20 && byte < 0x7f) return fmt::format("'{}' (0x{:02x})", static_cast<char>(byte), byte);
  return fmt::format("0x{:02x}", byte);
}

Lsn read_lsn(ByteReader& reader, std::string_view field) { return Lsn{reader.u64(field)}; }
PgTimestamp read_timestamp(ByteReader& reader, std::string_view field) {
  return PgTimestamp{reader.i64(field)};
}

TupleData read_tuple(ByteReader& reader) {
  const std::size_t count = reader.u16("number of tuple columns");
  TupleData columns;
  columns.reserve(plausible_capacity(count, reader, 1));
  for (std::size_t i = 0; i < count; ++i) {
    const auto kind_offset = reader.offset();
    const auto kind = reader.u8("tuple column kind");
    switch (kind) {
      case 'n':
        columns.push_back({ColumnKind::null, {}});
        break;
      case 'u':
        columns.push_back({ColumnKind::unchanged_toast, {}});
        break;
      case 't':
      case 'b': {
        const auto length_offset = reader.offset();
        const auto length = reader.i32("tuple column length");
        if (length < 0) {
          reader.fail_at(length_offset, fmt::format("a non-negative length of column {}, got {}", i, length));
        }
        columns.push_back(
            {static_cast<ColumnKind>(kind),
             std::string(reader.bytes(static_cast<std::size_t>(length), "tuple column value"))});
        break;
      }
      default:
        reader.fail_at(kind_offset, fmt::format("the kind of column {} ('n', 'u', 't' or 'b'), got {}", i,
                                                describe_byte(kind)));
    }
  }
  return columns;
}

OldTuple read_old_tuple(ByteReader& reader, std::uint8_t marker) {
  return OldTuple{marker == 'K' ? OldTupleKind::key : OldTupleKind::full, read_tuple(reader)};
}

BeginMessage read_begin(ByteReader& reader) {
  BeginMessage message;
  message.final_lsn = read_lsn(reader, "final LSN");
  message.commit_time = read_timestamp(reader, "commit timestamp");
  message.xid = reader.u32("xid");
  return message;
}

CommitMessage read_commit(ByteReader& reader) {
  CommitMessage message;
  message.flags = reader.u8("flags");
  message.commit_lsn = read_lsn(reader, "commit LSN");
  message.end_lsn = read_lsn(reader, "end LSN");
  message.commit_time = read_timestamp(reader, "commit timestamp");
  return message;
}

OriginMessage read_origin(ByteReader& reader) {
  OriginMessage message;
  message.commit_lsn = read_lsn(reader, "origin commit LSN");
  message.name = reader.c_string("origin name");
  return message;
}

RelationMessage read_relation(ByteReader& reader, std::optional<Xid> xid) {
  RelationMessage message;
  message.xid = xid;
  message.relation_id = reader.u32("relation id");
  message.schema = reader.c_string("namespace");
  message.table = reader.c_string("relation name");
  const auto identity_offset = reader.offset();
  const auto identity = reader.u8("replica identity");
  if (identity != 'd' && identity != 'n' && identity != 'f' && identity != 'i') {
    reader.fail_at(identity_offset, "replica identity 'd', 'n', 'f' or 'i', got " + describe_byte(identity));
  }
  message.replica_identity = static_cast<ReplicaIdentity>(identity);
  const std::size_t count = reader.u16("number of columns");
  // flags, empty name's NUL, type oid, typmod
  message.columns.reserve(plausible_capacity(count, reader, 10));
  for (std::size_t i = 0; i < count; ++i) {
    RelationColumn column;
    column.is_key = (reader.u8("column flags") & kColumnIsKey) != 0;
    column.name = reader.c_string("column name");
    column.type_oid = reader.u32("column type oid");
    column.type_modifier = reader.i32("column type modifier");
    message.columns.push_back(std::move(column));
  }
  return message;
}

TypeMessage read_type(ByteReader& reader, std::optional<Xid> xid) {
  TypeMessage message;
  message.xid = xid;
  message.type_oid = reader.u32("type oid");
  message.schema = reader.c_string("namespace");
  message.name = reader.c_string("type name");
  return message;
}

// Reads the one-byte marker that introduces a tuple: 'N' (new), 'K' (old key) or 'O' (old row).
std::uint8_t read_tuple_marker(ByteReader& reader, std::string_view allowed) {
  const auto offset = reader.offset();
  const auto marker = reader.u8("tuple marker");
  if (allowed.find(static_cast<char>(marker)) == std::string_view::npos) {
    std::string expected;
    for (const char c : allowed) expected += fmt::format("{}'{}'", expected.empty() ? "" : " or ", c);
    reader.fail_at(offset, "tuple marker " + expected + ", got " + describe_byte(marker));
  }
  return marker;
}

InsertMessage read_insert(ByteReader& reader, std::optional<Xid> xid) {
  InsertMessage message;
  message.xid = xid;
  message.relation_id = reader.u32("relation id");
  read_tuple_marker(reader, "N");
  message.new_tuple = read_tuple(reader);
  return message;
}

UpdateMessage read_update(ByteReader& reader, std::optional<Xid> xid) {
  UpdateMessage message;
  message.xid = xid;
  message.relation_id = reader.u32("relation id");
  auto marker = read_tuple_marker(reader, "KON");
  if (marker != 'N') {
    message.old_tuple = read_old_tuple(reader, marker);
    read_tuple_marker(reader, "N");
  }
  message.new_tuple = read_tuple(reader);
  return message;
}

DeleteMessage read_delete(ByteReader& reader, std::optional<Xid> xid) {
  DeleteMessage message;
  message.xid = xid;
  message.relation_id = reader.u32("relation id");
  message.old_tuple = read_old_tuple(reader, read_tuple_marker(reader, "KO"));
  return message;
}

TruncateMessage read_truncate(ByteReader& reader, std::optional<Xid> xid) {
  TruncateMessage message;
  message.xid = xid;
  const std::size_t count = reader.u32("number of relations");
  const auto options = reader.u8("options");
  message.cascade = (options & kTruncateCascade) != 0;
  message.restart_identity = (options & kTruncateRestartIdentity) != 0;
  message.relation_ids.reserve(plausible_capacity(count, reader, 4));
  for (std::size_t i = 0; i < count; ++i) message.relation_ids.push_back(reader.u32("relation id"));
  return message;
}

LogicalDecodingMessage read_logical_message(ByteReader& reader, std::optional<Xid> xid) {
  LogicalDecodingMessage message;
  message.xid = xid;
  message.transactional = (reader.u8("flags") & kMessageTransactional) != 0;
  message.lsn = read_lsn(reader, "message LSN");
  message.prefix = reader.c_string("prefix");
  const auto length_offset = reader.offset();
  const auto length = reader.i32("content length");
  if (length < 0) reader.fail_at(length_offset, fmt::format("a non-negative content length, got {}", length));
  message.content = reader.bytes(static_cast<std::size_t>(length), "content");
  return message;
}

StreamStartMessage read_stream_start(ByteReader& reader) {
  StreamStartMessage message;
  message.xid = reader.u32("xid");
  message.first_segment = reader.u8("first segment flag") == 1;
  return message;
}

// A Commit message prefixed with the xid of the streamed transaction.
StreamCommitMessage read_stream_commit(ByteReader& reader) {
  const auto xid = reader.u32("xid");
  const auto commit = read_commit(reader);
  return {xid, commit.flags, commit.commit_lsn, commit.end_lsn, commit.commit_time};
}

StreamAbortMessage read_stream_abort(ByteReader& reader) {
  StreamAbortMessage message;
  message.xid = reader.u32("xid");
  message.subxid = reader.u32("subtransaction xid");
  return message;
}

// Where a message may appear relative to a v2 stream block.
enum class Placement { outside_stream, inside_stream, anywhere };

struct Kind {
  char tag;
  std::string_view name;   // as PostgreSQL's documentation names it
  bool streamable_change;  // carries an xid inside a stream block
  bool needs_v2;
  Placement placement;
};

// In the order of the PgoutputMessage alternatives, so that a message's index finds its kind.
constexpr std::array kKinds{
    Kind{'B', "Begin", false, false, Placement::outside_stream},
    Kind{'C', "Commit", false, false, Placement::outside_stream},
    Kind{'O', "Origin", false, false, Placement::anywhere},
    Kind{'R', "Relation", true, false, Placement::anywhere},
    Kind{'Y', "Type", true, false, Placement::anywhere},
    Kind{'I', "Insert", true, false, Placement::anywhere},
    Kind{'U', "Update", true, false, Placement::anywhere},
    Kind{'D', "Delete", true, false, Placement::anywhere},
    Kind{'T', "Truncate", true, false, Placement::anywhere},
    Kind{'M', "Message", true, false, Placement::anywhere},
    Kind{'S', "Stream Start", false, true, Placement::outside_stream},
    Kind{'E', "Stream Stop", false, true, Placement::inside_stream},
    Kind{'c', "Stream Commit", false, true, Placement::outside_stream},
    Kind{'A', "Stream Abort", false, true, Placement::outside_stream},
};
static_assert(kKinds.size() == std::variant_size_v<PgoutputMessage>);

}  // namespace

PgoutputDecoder::PgoutputDecoder(int protocol_version) : protocol_version_(protocol_version) {
  if (protocol_version != 1 && protocol_version != 2) {
    throw std::invalid_argument(
        fmt::format("pgoutput protocol version {} is not supported (1 or 2)", protocol_version));
  }
}

PgoutputMessage PgoutputDecoder::decode(std::string_view bytes) {
  ByteReader reader(bytes, "pgoutput message");
  const auto tag = static_cast<char>(reader.u8("message type"));
  const auto* kind =
      std::find_if(kKinds.begin(), kKinds.end(), [tag](const Kind& k) { return k.tag == tag; });
  if (kind == kKinds.end()) {
    reader.fail_at(0, "a message type (B C O R Y I U D T M S E c A), got " +
                          describe_byte(static_cast<std::uint8_t>(tag)));
  }
  const auto error_name = fmt::format("pgoutput {} message", kind->name);
  reader.set_message_name(error_name);
  if (kind->needs_v2 && protocol_version_ < 2) {
    reader.fail_at(0, "no stream message under protocol version 1");
  }
  if (kind->placement == Placement::outside_stream && in_stream_) {
    reader.fail_at(0, "Stream Stop before this message (it is inside a stream block)");
  }
  if (kind->placement == Placement::inside_stream && !in_stream_) {
    reader.fail_at(0, "Stream Start before this message (it is outside any stream block)");
  }
  std::optional<Xid> xid;
  if (kind->streamable_change && in_stream_) xid = reader.u32("streamed transaction xid");

  PgoutputMessage message;
  switch (tag) {
    case 'B':
      message = read_begin(reader);
      break;
    case 'C':
      message = read_commit(reader);
      break;
    case 'O':
      message = read_origin(reader);
      break;
    case 'R':
      message = read_relation(reader, xid);
      break;
    case 'Y':
      message = read_type(reader, xid);
      break;
    case 'I':
      message = read_insert(reader, xid);
      break;
    case 'U':
      message = read_update(reader, xid);
      break;
    case 'D':
      message = read_delete(reader, xid);
      break;
    case 'T':
      message = read_truncate(reader, xid);
      break;
    case 'M':
      message = read_logical_message(reader, xid);
      break;
    case 'S':
      message = read_stream_start(reader);
      break;
    case 'E':
      message = StreamStopMessage{};
      break;
    case 'c':
      message = read_stream_commit(reader);
      break;
    case 'A':
      message = read_stream_abort(reader);
      break;
    default:
      break;  // excluded by the kKinds lookup above
  }
  reader.expect_end();
  // Only now: a message that failed to decode must not open or close a stream block.
  if (tag == 'S') in_stream_ = true;
  if (tag == 'E') in_stream_ = false;
  return message;
}

std::string_view message_name(const PgoutputMessage& message) { return kKinds.at(message.index()).name; }

}  // namespace syncline::producer
