// The CopyData frames of a streaming replication connection.
#include "producer/replication_frame.hpp"

#include <cstdint>

namespace syncline::producer {
namespace {

void append_big_endian(std::string& out, std::uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xffU);
}

}  // namespace

ReplicationFrame decode_replication_frame(std::string_view copy_data) {
  ByteReader reader(copy_data, "replication CopyData frame");
  const auto tag = reader.u8("frame type");
  if (tag == 'w') {
    reader.set_message_name("XLogData frame");
    XLogData frame;
    frame.wal_start = Lsn{reader.u64("WAL start")};
    frame.wal_end = Lsn{reader.u64("WAL end")};
    frame.send_time = PgTimestamp{reader.i64("send time")};
    frame.payload = reader.bytes(reader.remaining(), "payload");
    return frame;
  }
  if (tag == 'k') {
    reader.set_message_name("Primary keepalive frame");
    PrimaryKeepalive frame;
    frame.wal_end = Lsn{reader.u64("WAL end")};
    frame.send_time = PgTimestamp{reader.i64("send time")};
    frame.reply_requested = reader.u8("reply requested flag") != 0;
    reader.expect_end();
    return frame;
  }
  reader.fail_at(0, "frame type 'w' (XLogData) or 'k' (keepalive), got byte " + std::to_string(tag));
}

std::string encode_standby_status_update(const StandbyStatusUpdate& update) {
  std::string out;
  out.reserve(34);
  out += 'r';
  append_big_endian(out, update.written.value());
  append_big_endian(out, update.flushed.value());
  append_big_endian(out, update.applied.value());
  append_big_endian(out, static_cast<std::uint64_t>(update.client_time.micros_since_2000));
  out += static_cast<char>(update.reply_requested ? 1 : 0);
  return out;
}

}  // namespace syncline::producer
