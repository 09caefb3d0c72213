// Envelope: the JSON value of every Kafka message Syncline produces (schemas/envelope.schema.json).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/lsn.hpp"

namespace syncline {

// Row-change operation, Debezium's letters: create, update, delete, read (snapshot), truncate.
enum class Op : char { create = 'c', update = 'u', remove = 'd', read = 'r', truncate = 't' };

std::optional<Op> op_from_code(char code);
constexpr char op_code(Op op) { return static_cast<char>(op); }

// Where in the write database an event came from.
struct EventSource {
  std::string db;
  std::string schema;
  std::string table;
  Lsn lsn;                // of the change itself
  Lsn commit_lsn;         // of its transaction: the position the producer stores and confirms
  std::uint64_t seq = 0;  // position of the change within its transaction
  std::uint64_t txid = 0;
  std::string commit_ts;                     // ISO-8601 UTC
  bool snapshot = false;                     // published by a snapshot, not read from the WAL
  std::vector<std::string> unchanged_toast;  // columns left out of `after`; sinks keep their value
  // The source epoch: 0 until an operator accepts a new source (syncline-ctl resync source
  // --new-source); every event of a newer epoch outranks every event of an older one.
  std::uint32_t epoch = 0;

  friend bool operator==(const EventSource&, const EventSource&) = default;
};

// A domain event (outbox row or logical message) has no `op`; a row change has `op` and before/after.
struct Envelope {
  std::string id;
  std::string type;
  std::string aggregate_type;
  std::string aggregate_id;
  std::string occurred_at;  // ISO-8601 UTC
  nlohmann::json payload;
  std::optional<Op> op;
  std::optional<nlohmann::json> before;
  std::optional<nlohmann::json> after;
  EventSource source;
  std::optional<nlohmann::json> headers;

  bool is_row_change() const { return op.has_value(); }

  friend bool operator==(const Envelope&, const Envelope&) = default;
};

// Decoding failures name the offending field: "envelope field 'source.lsn': ...".
class EnvelopeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An envelope whose JSON values are already compact JSON text, exactly as nlohmann::json::dump()
// writes them (json_text::append_canonical or append_dump): what the producer has for an outbox row,
// so no JSON tree is built per event. Views only: it must not outlive what they point into.
struct EnvelopeText {
  std::string_view id;
  std::string_view type;
  std::string_view aggregate_type;
  std::string_view aggregate_id;
  std::string_view occurred_at;
  std::string_view payload;  // JSON text
  std::optional<Op> op;
  std::optional<std::string_view> before;  // JSON text; nullopt writes null
  std::optional<std::string_view> after;   // JSON text; nullopt writes null
  const EventSource& source;
  std::optional<std::string_view> headers;  // JSON text; nullopt leaves the field out
};

// Field order as in DESIGN.md, so a message read by a person looks like the documentation.
nlohmann::ordered_json envelope_to_json(const Envelope& envelope);
// Compact UTF-8 JSON, the bytes of envelope_to_json(envelope).dump(); throws EnvelopeError if a
// string in it is not valid UTF-8.
std::string encode_envelope(const Envelope& envelope);
// The same bytes as encode_envelope() of the Envelope `envelope` stands for; the JSON texts are
// written as they are, so only its strings are checked.
std::string encode_envelope(const EnvelopeText& envelope);

// Unknown fields are ignored, so consumers keep working when producers add fields.
Envelope envelope_from_json(const nlohmann::json& json);
Envelope decode_envelope(std::string_view text);

// Kafka headers, so a consumer can route or skip a message without parsing its value.
namespace kafka_header {
inline constexpr std::string_view event_id = "syncline-event-id";
inline constexpr std::string_view event_type = "syncline-event-type";
inline constexpr std::string_view commit_lsn = "syncline-commit-lsn";
}  // namespace kafka_header

std::array<std::pair<std::string_view, std::string>, 3> kafka_headers(const Envelope& envelope);
std::array<std::pair<std::string_view, std::string>, 3> kafka_headers(const EnvelopeText& envelope);

// The order in which sinks keep changes of one key: (epoch << 56) | commit LSN, so that a new
// source epoch (whose LSNs may start below the old source's) still outranks everything before it.
// Sinks compare (source_version, seq); the search engine's external versions are this number.
inline constexpr std::uint32_t kMaxSourceEpoch = 127;
inline constexpr std::uint64_t kSourceVersionLsnBits = 56;
// Throws EnvelopeError for an epoch above kMaxSourceEpoch or an LSN of 2^56 or more (64 PiB of WAL).
std::uint64_t source_version(std::uint32_t epoch, Lsn commit_lsn);
// The same for an envelope's JSON: source.epoch (absent: 0) and source.commit_lsn. Throws
// EnvelopeError naming the field that is missing or malformed.
std::uint64_t source_version_of(const nlohmann::json& envelope);

// A truncate is published once per partition of its table's topic. Version-floored mirrors apply
// every copy; consumers that are not (SQL projections, search mappings) apply only partition 0's:
// true for the copies they skip.
bool is_extra_truncate_copy(const nlohmann::json& envelope, std::int32_t partition);

// Sorted keys, no whitespace, UTF-8 unescaped: equal values always give equal bytes.
std::string canonical_json(const nlohmann::json& value);

// The Kafka message key: the aggregate id of a domain event; for a row change the canonical JSON of
// its primary-key columns (taken from `after`, or `before` for a delete). An empty `primary_key`
// means the table's replica identity is the whole row. A truncate concerns every row: key "{}".
std::string message_key(const Envelope& envelope, std::span<const std::string> primary_key);

}  // namespace syncline
