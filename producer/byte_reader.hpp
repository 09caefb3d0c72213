// ByteReader: bounds-checked big-endian reads of replication protocol messages; DecodeError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace syncline::producer {

// A message that is truncated, garbled or of an unknown kind. The producer cannot skip a WAL message
// it does not understand without losing data, so this is fatal for the stream, and the text must be
// enough to find the culprit: what was expected, at which byte of which message.
class DecodeError : public std::runtime_error {
 public:
  DecodeError(const std::string& what, std::size_t offset) : std::runtime_error(what), offset_(offset) {}
  // Byte offset in the message at which decoding failed.
  std::size_t offset() const { return offset_; }

 private:
  std::size_t offset_;
};

// Reads fields front to back; every read checks the remaining length first, so no input makes it
// read outside the message. Network byte order, as PostgreSQL's pq_sendint* writes it.
class ByteReader {
 public:
  // `message_name` appears in errors ("pgoutput Insert message"); it must outlive the reader.
  ByteReader(std::string_view bytes, std::string_view message_name) : bytes_(bytes), name_(message_name) {}

  std::size_t offset() const { return offset_; }
  std::size_t remaining() const { return bytes_.size() - offset_; }
  void set_message_name(std::string_view message_name) { name_ = message_name; }

  std::uint8_t u8(std::string_view field) { return static_cast<std::uint8_t>(take(1, "Int8", field)[0]); }
  std::uint16_t u16(std::string_view field) {
    return static_cast<std::uint16_t>(big_endian(2, "Int16", field));
  }
  std::uint32_t u32(std::string_view field) {
    return static_cast<std::uint32_t>(big_endian(4, "Int32", field));
  }
  std::int32_t i32(std::string_view field) { return static_cast<std::int32_t>(u32(field)); }
  std::uint64_t u64(std::string_view field) { return big_endian(8, "Int64", field); }
  std::int64_t i64(std::string_view field) { return static_cast<std::int64_t>(u64(field)); }

  // `count` raw bytes, as a view into the message.
  std::string_view bytes(std::size_t count, std::string_view field) { return take(count, "bytes", field); }

  // A NUL-terminated string (PostgreSQL's "String" field), without its terminator.
  std::string_view c_string(std::string_view field) {
    const auto end = bytes_.find('\0', offset_);
    if (end == std::string_view::npos) {
      fail("a NUL-terminated String " + std::string(field) + ", but the message ends without a NUL");
    }
    const auto value = bytes_.substr(offset_, end - offset_);
    offset_ = end + 1;
    return value;
  }

  // A field must be consumed completely: trailing bytes mean we decoded it with the wrong layout.
  void expect_end() const {
    if (remaining() != 0) {
      fail("the end of the message, but " + std::to_string(remaining()) + " more bytes follow");
    }
  }

  [[noreturn]] void fail(const std::string& expected) const { fail_at(offset_, expected); }
  [[noreturn]] void fail_at(std::size_t offset, const std::string& expected) const {
    throw DecodeError(std::string(name_) + " at byte offset " + std::to_string(offset) + ": expected " +
                          expected + " (message is " + std::to_string(bytes_.size()) + " bytes)",
                      offset);
  }

 private:
  std::string_view take(std::size_t count, std::string_view type, std::string_view field) {
    if (count > remaining()) {
      fail(std::string(type) + " " + std::string(field) + " (" + std::to_string(count) +
           " bytes), but only " + std::to_string(remaining()) + " bytes remain");
    }
    const auto value = bytes_.substr(offset_, count);
    offset_ += count;
    return value;
  }

  std::uint64_t big_endian(std::size_t size, std::string_view type, std::string_view field) {
    std::uint64_t value = 0;
    for (const char byte : take(size, type, field)) {
      value = (value << 8U) | static_cast<std::uint8_t>(byte);
    }
    return value;
  }

  std::string_view bytes_;
  std::string_view name_;
  std::size_t offset_ = 0;
};

}  // namespace syncline::producer
