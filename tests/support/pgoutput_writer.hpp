// PgoutputWriter: builds pgoutput message bytes by hand, for tests and benchmarks that feed the
// decoder without a server (the inverse of producer/pgoutput.cpp for the messages they need).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/lsn.hpp"
#include "producer/relation_cache.hpp"

namespace syncline::test {

class PgoutputWriter {
 public:
  explicit PgoutputWriter(char type) { bytes_ += type; }
  PgoutputWriter& u8(std::uint8_t value) { return big_endian(value, 1); }
  PgoutputWriter& u16(std::uint16_t value) { return big_endian(value, 2); }
  PgoutputWriter& u32(std::uint32_t value) { return big_endian(value, 4); }
  PgoutputWriter& u64(std::uint64_t value) { return big_endian(value, 8); }
  PgoutputWriter& lsn(Lsn value) { return u64(value.value()); }
  PgoutputWriter& c_string(std::string_view text) {
    bytes_ += text;
    bytes_ += '\0';
    return *this;
  }
  PgoutputWriter& counted(std::string_view data) {
    u32(static_cast<std::uint32_t>(data.size()));
    bytes_ += data;
    return *this;
  }
  // TupleData of text values; nullopt is SQL NULL.
  PgoutputWriter& tuple(const std::vector<std::optional<std::string>>& values) {
    u16(static_cast<std::uint16_t>(values.size()));
    for (const auto& value : values) {
      if (value) {
        u8('t').counted(*value);
      } else {
        u8('n');
      }
    }
    return *this;
  }
  std::string bytes() const { return bytes_; }

 private:
  PgoutputWriter& big_endian(std::uint64_t value, int size) {
    for (int i = size - 1; i >= 0; --i) bytes_ += static_cast<char>((value >> (i * 8)) & 0xffU);
    return *this;
  }
  std::string bytes_;
};

// The Relation message that describes `relation`.
inline std::string relation_message(const producer::RelationInfo& relation) {
  PgoutputWriter writer('R');
  writer.u32(relation.relation_id).c_string(relation.schema).c_string(relation.table);
  writer.u8(static_cast<std::uint8_t>(relation.replica_identity));
  writer.u16(static_cast<std::uint16_t>(relation.columns.size()));
  for (const auto& column : relation.columns) {
    writer.u8(column.is_key ? 1 : 0).c_string(column.name).u32(column.type_oid);
    writer.u32(static_cast<std::uint32_t>(column.type_modifier));
  }
  return writer.bytes();
}

}  // namespace syncline::test
