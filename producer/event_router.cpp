// EventRouter: the routing rules of DESIGN.md "Events" and the dead-letter rule of "Guarantees".
#include "producer/event_router.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <stdexcept>

#include "common/envelope.hpp"
#include "common/json_text.hpp"
#include "common/logging.hpp"
#include "producer/topic_plan.hpp"
#include "producer/value_mapping.hpp"

namespace syncline::producer {

using nlohmann::json;

namespace {

// Where a change sits in the source. A non-transactional message belongs to no transaction.
struct Position {
  Lsn commit_lsn;
  std::string_view commit_ts;  // into the change's transaction: valid while it is routed
  std::uint64_t txid = 0;
  bool snapshot = false;
};

// What a dead letter says about the input it replaces.
struct DeadLetterOrigin {
  kafka::Header header;                   // syncline-dlq-table or syncline-dlq-message-prefix
  std::function<std::string()> original;  // the original bytes, built only for a dead letter
  std::optional<std::string> key;         // the input's key, once known
};

// Bad input, on its way to the dead-letter topic. Thrown only inside the router, caught in route().
class Rejected : public std::runtime_error {
 public:
  Rejected(DeadLetterReason reason, const std::string& what, std::optional<std::string> original = {})
      : std::runtime_error(what), reason_(reason), original_(std::move(original)) {}
  DeadLetterReason reason() const { return reason_; }
  // Replaces the origin's bytes: an oversized event is dead-lettered as the envelope it encoded to.
  const std::optional<std::string>& original() const { return original_; }

 private:
  DeadLetterReason reason_;
  std::optional<std::string> original_;
};

std::shared_ptr<spdlog::logger> logger() { return log::get("router"); }

// Inputs can be megabytes long; a reason quotes only their start.
std::string quote(std::string_view text) {
  constexpr std::size_t kMax = 60;
  if (text.size() <= kMax) return fmt::format("'{}'", text);
  return fmt::format("'{}...' ({} bytes)", text.substr(0, kMax), text.size());
}

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// 8-4-4-4-12 hex digits, as PostgreSQL's uuid type prints them.
bool is_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !is_hex(text[i])) return false;
  }
  return true;
}

// The envelope schema's timestamp: "2026-11-22T10:00:00.123Z", 1-9 fraction digits, always UTC.
bool is_iso_utc_timestamp(std::string_view text) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (text.size() < kShape.size() + 1) return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == 'd' ? !is_digit(text[i]) : text[i] != kShape[i]) return false;
  }
  auto rest = text.substr(kShape.size());
  if (rest.front() == '.') {
    const auto digits = std::find_if_not(rest.begin() + 1, rest.end(), is_digit) - (rest.begin() + 1);
    if (digits < 1 || digits > 9) return false;
    rest.remove_prefix(static_cast<std::size_t>(digits) + 1);
  }
  return rest == "Z";
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return text;
}

// A dead letter's bytes must be writable whatever the input held: invalid UTF-8 is replaced.
std::string dump_replacing_invalid_utf8(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A tuple as PostgreSQL sent it, column name -> text (or null), without mapping any value, so it can
// be built even when mapping fails. Unchanged TOAST columns were not sent and are left out; a binary
// value is base64 so the JSON stays valid; values beyond the relation's columns get positional names.
json raw_row_json(const RelationInfo& relation, const TupleData& tuple) {
  json row = json::object();
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    const auto name =
        i < relation.columns.size() ? relation.columns[i].name : fmt::format("column_{}", i + 1);
    switch (tuple[i].kind) {
      case ColumnKind::null:
        row[name] = nullptr;
        break;
      case ColumnKind::unchanged_toast:
        break;
      case ColumnKind::text:
        row[name] = tuple[i].value;
        break;
      case ColumnKind::binary:
        row[name] = base64_encode(tuple[i].value);
        break;
    }
  }
  return row;
}

kafka::Header table_header(const RelationInfo& relation) {
  return {std::string(dlq_header::table), fmt::format("{}.{}", relation.schema, relation.table)};
}

// The fields of a domain event, read from an outbox row or a logical message's JSON object;
// `what` ("outbox row", "logical message") names the input in every reason.
class DomainEventFields {
 public:
  DomainEventFields(const json& fields, std::string_view what) : fields_(fields), what_(what) {}

  std::string required_string(const char* name) const {
    const auto it = fields_.find(name);
    if (it == fields_.end() || it->is_null()) {
      throw Rejected(DeadLetterReason::missing_field,
                     fmt::format("{} field '{}' is missing or null", what_, name));
    }
    if (!it->is_string()) {
      throw Rejected(
          DeadLetterReason::invalid_field,
          fmt::format("{} field '{}' must be a string, got a JSON {}", what_, name, it->type_name()));
    }
    auto value = it->get<std::string>();
    if (value.empty()) {
      throw Rejected(DeadLetterReason::missing_field, fmt::format("{} field '{}' is empty", what_, name));
    }
    return value;
  }

  std::string id() const {
    const auto id = required_string("id");
    if (!is_uuid(id)) {
      throw Rejected(DeadLetterReason::invalid_field,
                     fmt::format("{} field 'id' must be a UUID, got {}", what_, quote(id)));
    }
    // PostgreSQL prints uuids in lower case; so do messages, so one event has one id.
    return lowercase(id);
  }

  // Any ISO-8601 timestamp with a zone ("…Z", "…+02:00", PostgreSQL's "… +00"), normalised to UTC.
  std::string occurred_at() const {
    auto value = required_string("occurred_at");
    if (is_iso_utc_timestamp(value)) return value;
    return normalised_occurred_at(value, what_);
  }

  // `value` (not already ISO-8601 UTC) in UTC, or Rejected naming `what`.
  static std::string normalised_occurred_at(std::string_view value, std::string_view what) {
    try {
      auto normalised = map_timestamptz(value);
      if (is_iso_utc_timestamp(normalised)) return normalised;
    } catch (const ValueMappingError&) {
      // Reported below.
    }
    throw Rejected(DeadLetterReason::invalid_field,
                   fmt::format("{} field 'occurred_at' must be an ISO-8601 timestamp with a zone, like "
                               "2026-11-22T10:00:00.123Z, got {}",
                               what, quote(value)));
  }

  json payload() const {
    const auto it = fields_.find("payload");
    if (it == fields_.end() || it->is_null()) {
      throw Rejected(DeadLetterReason::missing_field,
                     fmt::format("{} field 'payload' is missing or null", what_));
    }
    return *it;
  }

  std::optional<json> headers() const {
    const auto it = fields_.find("headers");
    if (it == fields_.end() || it->is_null()) return std::nullopt;
    if (!it->is_object()) {
      throw Rejected(DeadLetterReason::invalid_field,
                     fmt::format("{} field 'headers' must be a JSON object or null, got a JSON {}", what_,
                                 it->type_name()));
    }
    return *it;
  }

  // The aggregate id as written, for the dead letter's key, before anything is checked.
  std::optional<std::string> key_if_known() const {
    const auto it = fields_.find("aggregate_id");
    if (it == fields_.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
      return std::nullopt;
    return it->get<std::string>();
  }

 private:
  const json& fields_;
  std::string_view what_;
};

Envelope domain_event(const DomainEventFields& fields, EventSource source) {
  return Envelope{
      .id = fields.id(),
      .type = fields.required_string("event_type"),
      .aggregate_type = fields.required_string("aggregate_type"),
      .aggregate_id = fields.required_string("aggregate_id"),
      .occurred_at = fields.occurred_at(),
      .payload = fields.payload(),
      .op = std::nullopt,
      .before = std::nullopt,
      .after = std::nullopt,
      .source = std::move(source),
      .headers = fields.headers(),
  };
}

// An outbox row's fields as the envelope needs them, read in one pass over its columns without
// building JSON trees: the text columns as views into the tuple, payload and headers as their JSON
// in the envelope's form, occurred_at in UTC. The rules and every reason are those of
// DomainEventFields over the fields a logical message would carry. Other columns are ignored, so
// an application may add its own (a tenant, a sequence for partitioning).
class OutboxRow {
 public:
  // Throws Rejected for the first column, in table order, that is not text or does not parse.
  OutboxRow(const RelationInfo& relation, const TupleData& tuple) {
    if (tuple.size() != relation.columns.size()) {
      throw Rejected(DeadLetterReason::value_mapping,
                     fmt::format("outbox row has {} values but table {}.{} has {} columns", tuple.size(),
                                 relation.schema, relation.table, relation.columns.size()));
    }
    for (std::size_t i = 0; i < tuple.size(); ++i) read_column(relation.columns[i].name, tuple[i]);
  }

  std::string_view required_string(const char* name) const {
    const auto& field = field_named(name);
    if (!field.present || field.null) {
      throw Rejected(DeadLetterReason::missing_field,
                     fmt::format("outbox row field '{}' is missing or null", name));
    }
    if (field.text.empty()) {
      throw Rejected(DeadLetterReason::missing_field, fmt::format("outbox row field '{}' is empty", name));
    }
    return field.text;
  }

  std::string_view id() {
    const auto id = required_string("id");
    if (!is_uuid(id)) {
      throw Rejected(DeadLetterReason::invalid_field,
                     fmt::format("outbox row field 'id' must be a UUID, got {}", quote(id)));
    }
    // PostgreSQL prints uuids in lower case (a text column might not); so do messages, so one
    // event has one id.
    if (std::none_of(id.begin(), id.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) return id;
    lowercase_id_ = lowercase(std::string(id));
    return lowercase_id_;
  }

  std::string_view occurred_at() {
    const auto value = required_string("occurred_at");
    if (is_iso_utc_timestamp(value)) return value;
    occurred_at_ = DomainEventFields::normalised_occurred_at(value, "outbox row");
    return occurred_at_;
  }

  std::string_view payload() const {
    const auto& field = fields_[kPayload];
    if (!field.present || field.null) {
      throw Rejected(DeadLetterReason::missing_field, "outbox row field 'payload' is missing or null");
    }
    return field.text;
  }

  std::optional<std::string_view> headers() const {
    const auto& field = fields_[kHeaders];
    if (!field.present || field.null) return std::nullopt;
    if (field.text.front() != '{') {
      throw Rejected(DeadLetterReason::invalid_field,
                     fmt::format("outbox row field 'headers' must be a JSON object or null, got a JSON {}",
                                 json_type_name(field.text)));
    }
    return field.text;
  }

  // The aggregate id as written, for the dead letter's key, before anything is checked.
  std::optional<std::string> key_if_known() const {
    const auto& field = fields_[kAggregateId];
    if (!field.present || field.null || field.text.empty()) return std::nullopt;
    return std::string(field.text);
  }

 private:
  enum Index : std::size_t {
    kId,
    kAggregateType,
    kAggregateId,
    kEventType,
    kPayload,
    kOccurredAt,
    kHeaders,
    kCount
  };
  static constexpr std::array<std::string_view, kCount> kNames{
      "id", "aggregate_type", "aggregate_id", "event_type", "payload", "occurred_at", "headers"};

  struct Field {
    bool present = false;
    bool null = false;
    std::string_view text;  // into the tuple, or into one of the strings below
  };

  static std::optional<Index> index_of(std::string_view name) {
    for (std::size_t i = 0; i < kNames.size(); ++i) {
      if (kNames[i] == name) return static_cast<Index>(i);
    }
    return std::nullopt;
  }

  const Field& field_named(std::string_view name) const { return fields_[*index_of(name)]; }

  // The JSON type a value's dump() starts with: nlohmann's type_name().
  static std::string_view json_type_name(std::string_view json_text) {
    switch (json_text.front()) {
      case '{':
        return "object";
      case '[':
        return "array";
      case '"':
        return "string";
      case 't':
      case 'f':
        return "boolean";
      case 'n':
        return "null";
      default:
        return "number";
    }
  }

  void read_column(const std::string& name, const TupleColumn& column) {
    const auto index = index_of(name);
    if (!index) return;
    auto& field = fields_[*index];
    field = Field{.present = true, .null = false, .text = {}};
    if (column.kind == ColumnKind::null) {
      field.null = true;
    } else if (column.kind != ColumnKind::text) {
      // An insert sends every value; anything but text means the stream is not what we asked for.
      throw Rejected(DeadLetterReason::value_mapping,
                     fmt::format("outbox row field '{}' did not arrive as text (kind '{}')", name,
                                 static_cast<char>(column.kind)));
    } else if (*index == kPayload || *index == kHeaders) {
      // Parsed whatever the column's type (json, jsonb or text), so a text column holding JSON works.
      auto& json_text = *index == kPayload ? payload_ : headers_;
      json_text.clear();
      if (!json_text::append_canonical(json_text, column.value)) {
        try {
          json_text::append_dump(json_text, json::parse(column.value));
        } catch (const json::exception& error) {  // parse_error, or out_of_range for numbers like 1e400
          throw Rejected(DeadLetterReason::not_json,
                         fmt::format("outbox row field '{}' is not valid JSON: {}", name, error.what()));
        }
      }
      field.null = json_text == "null";
      field.text = json_text;
    } else if (*index == kOccurredAt) {
      try {
        occurred_at_ = map_timestamptz(column.value);
      } catch (const ValueMappingError& error) {
        throw Rejected(DeadLetterReason::value_mapping,
                       fmt::format("outbox row field 'occurred_at': {}", error.what()));
      }
      field.text = occurred_at_;
    } else {
      field.text = column.value;
    }
  }

  std::array<Field, kCount> fields_{};
  std::string payload_;
  std::string headers_;
  std::string occurred_at_;
  std::string lowercase_id_;
};

// Row changes have no event id in the source; the position of the change is unique and the same
// on every replay, so a consumer can deduplicate by it. PostgreSQL's LSN form keeps it readable.
std::string row_change_id(const Position& position, std::uint64_t seq) {
  return fmt::format("{}:{}", position.commit_lsn, seq);
}

// "<schema>.<table>.<op letter>", e.g. "public.orders.u": the op letter as in the envelope's `op`,
// so a consumer routing on the syncline-event-type header sees the same vocabulary as in the body.
std::string row_change_type(const RelationInfo& relation, Op op) {
  return fmt::format("{}.{}.{}", relation.schema, relation.table, op_code(op));
}

// The key a row had before an update, or nullopt when the old row PostgreSQL sent lacks a key column
// (a key-only tuple of an identity index that is not the key). Built as message_key builds a key.
std::optional<std::string> old_key_of(const json& before, const std::vector<std::string>& key_columns) {
  json key = json::object();
  for (const auto& column : key_columns) {
    const auto it = before.find(column);
    if (it == before.end()) return std::nullopt;
    key[column] = *it;
  }
  return canonical_json(key);
}

Position position_of(const SourceChange& change) {
  if (change.txn != nullptr) {
    return {change.txn->commit_lsn, change.txn->commit_ts, change.txn->xid, change.txn->snapshot};
  }
  // A non-transactional message is decoded on its own, outside any transaction: its own LSN is its
  // position; its time is set from the event's occurred_at once that is known (route_message).
  if (change.kind == ChangeKind::message && change.message && !change.message->transactional) {
    return {
        change.lsn.is_valid() ? change.lsn : change.message->lsn, {}, change.message->xid.value_or(0), false};
  }
  throw std::invalid_argument(
      fmt::format("change at {} (seq {}) has no transaction", change.lsn, change.seq));
}

EventSource source_of(const RouterOptions& options, const SourceChange& change, const Position& position,
                      std::string schema, std::string table) {
  return EventSource{
      .db = options.source_db,
      .schema = std::move(schema),
      .table = std::move(table),
      .lsn = change.lsn,
      .commit_lsn = position.commit_lsn,
      .seq = change.seq,
      .txid = position.txid,
      .commit_ts = std::string(position.commit_ts),
      .snapshot = position.snapshot,
      .unchanged_toast = {},
      .epoch = options.epoch,
  };
}

const RelationInfo& relation_of(const SourceChange& change) {
  if (change.relation == nullptr) {
    throw std::invalid_argument(
        fmt::format("row change at {} (seq {}) has no relation", change.lsn, change.seq));
  }
  return *change.relation;
}

// The published record of an Envelope or EnvelopeText, or throws Rejected (oversized, unencodable)
// for the caller to dead-letter.
template <typename DomainEvent>
OutgoingRecord event_record(const RouterOptions& options, const DomainEvent& envelope,
                            std::optional<std::string> key, const std::string& topic) {
  std::string value;
  try {
    value = encode_envelope(envelope);
  } catch (const EnvelopeError& error) {
    throw Rejected(DeadLetterReason::unencodable, error.what());
  }
  if (value.size() > options.max_message_bytes) {
    const auto reason = fmt::format("event {} encodes to {} bytes, more than max_message_bytes ({})",
                                    envelope.id, value.size(), options.max_message_bytes);
    throw Rejected(DeadLetterReason::oversized, reason, std::move(value));
  }
  std::vector<kafka::Header> headers;
  headers.reserve(3);
  for (auto& [name, header_value] : kafka_headers(envelope))
    headers.push_back({std::string(name), std::move(header_value)});
  return OutgoingRecord{
      .kind = RecordKind::event,
      .message = {.topic = topic,
                  .key = std::move(key),
                  .value = std::move(value),
                  .headers = std::move(headers)},
      .commit_lsn = envelope.source.commit_lsn,
      .seq = envelope.source.seq,
  };
}

OutgoingRecord dead_letter(const RouterOptions& options, RouterCounters& counters, const SourceChange& change,
                           const Position& position, const DeadLetterOrigin& origin,
                           const Rejected& rejected) {
  auto value = rejected.original() ? *rejected.original() : origin.original();
  const auto original_size = value.size();
  const bool truncated = original_size > options.dead_letter_value_limit;
  if (truncated) value.resize(options.dead_letter_value_limit);

  ++counters.dead_letters[static_cast<std::size_t>(rejected.reason())];
  logger()->warn("dead-lettered the change at {} (commit {}, seq {}, {} {}): {}", change.lsn,
                 position.commit_lsn, change.seq, origin.header.key, origin.header.value, rejected.what());

  std::vector<kafka::Header> headers{
      {std::string(dlq_header::reason), rejected.what()},
      {std::string(dlq_header::reason_class), std::string(to_string(rejected.reason()))},
      {std::string(dlq_header::source_lsn), change.lsn.to_string()},
      {std::string(dlq_header::commit_lsn), position.commit_lsn.to_string()},
      {std::string(dlq_header::seq), std::to_string(change.seq)},
      origin.header,
      {std::string(dlq_header::original_size), std::to_string(original_size)},
      {std::string(dlq_header::truncated), truncated ? "true" : "false"},
  };
  return OutgoingRecord{
      .kind = RecordKind::dead_letter,
      .message = {.topic = dead_letter_topic_name(options.topic_prefix),
                  .key = origin.key,
                  .value = std::move(value),
                  .headers = std::move(headers)},
      .commit_lsn = position.commit_lsn,
      .seq = change.seq,
  };
}

}  // namespace

std::string_view to_string(DeadLetterReason reason) {
  switch (reason) {
    case DeadLetterReason::not_json:
      return "not_json";
    case DeadLetterReason::missing_field:
      return "missing_field";
    case DeadLetterReason::invalid_field:
      return "invalid_field";
    case DeadLetterReason::value_mapping:
      return "value_mapping";
    case DeadLetterReason::oversized:
      return "oversized";
    case DeadLetterReason::unencodable:
      return "unencodable";
  }
  return "unknown";
}

std::uint64_t RouterCounters::dead_letters_total() const {
  return std::accumulate(dead_letters.begin(), dead_letters.end(), std::uint64_t{0});
}

EventRouter::EventRouter(RouterOptions options)
    : options_(std::move(options)),
      captured_(options_.captured_tables.begin(), options_.captured_tables.end()) {}

std::vector<std::string> EventRouter::take_new_aggregate_types() {
  return std::exchange(new_aggregate_types_, {});
}

bool EventRouter::is_outbox(const RelationInfo& relation) const {
  return relation.schema == options_.outbox_schema && relation.table == options_.outbox_table;
}

// The outbox is checked first: listed among the captured tables too, it still yields domain events only.
bool EventRouter::is_captured(const RelationInfo& relation) const {
  return captured_.contains({relation.schema, relation.table});
}

// With the default identity the key flags are the primary key as it is now, and with an identity
// index they are the only key columns a delete carries, so both key by the flags. FULL flags every
// column, and a whole-row key changes with every update (no per-row order, nothing to compact);
// NOTHING flags none: both key by the primary key read at start-up. A table left without key
// columns is keyless: Kafka spreads its records over the partitions and no per-row order exists.
// PostgreSQL refuses its updates and deletes (unless FULL) when the publication includes them, so
// in practice such tables are append-only logs.
std::vector<std::string> EventRouter::key_columns_of(const RelationInfo& relation) const {
  if (relation.replica_identity == ReplicaIdentity::default_identity ||
      relation.replica_identity == ReplicaIdentity::index) {
    return relation.key_columns();
  }
  const auto it = options_.primary_keys.find({relation.schema, relation.table});
  return it == options_.primary_keys.end() ? std::vector<std::string>{} : it->second;
}

std::vector<OutgoingRecord> EventRouter::route(const SourceChange& change) {
  switch (change.kind) {
    case ChangeKind::insert:
    case ChangeKind::update:
    case ChangeKind::remove: {
      const auto& relation = relation_of(change);
      if (is_outbox(relation)) {
        if (change.kind == ChangeKind::insert) return route_outbox_row(change);
        // The outbox is insert-only: its event was published when the row was inserted, and an
        // update cannot be published as a second event with the same id.
        ++counters_.ignored_outbox_changes;
        logger()->warn("ignored {} of outbox table {}.{} at {}: the outbox is insert-only",
                       change.kind == ChangeKind::update ? "an update" : "a delete", relation.schema,
                       relation.table, change.lsn);
        return {};
      }
      if (is_captured(relation)) return route_row_change(change);
      ++counters_.ignored_table_changes;
      return {};
    }
    case ChangeKind::truncate:
      return route_truncate(change);
    case ChangeKind::message:
      return route_message(change);
  }
  throw std::invalid_argument(fmt::format("change at {} has an unknown kind", change.lsn));
}

std::vector<OutgoingRecord> EventRouter::route_outbox_row(const SourceChange& change) {
  const auto& relation = *change.relation;
  const auto position = position_of(change);
  DeadLetterOrigin origin{
      .header = table_header(relation),
      .original = [&] { return dump_replacing_invalid_utf8(raw_row_json(relation, change.new_tuple)); },
      .key = std::nullopt,
  };
  try {
    OutboxRow row(relation, change.new_tuple);
    origin.key = row.key_if_known();
    // Checked in the order of domain_event(), so the first problem is the one reported.
    const auto id = row.id();
    const auto type = row.required_string("event_type");
    const auto aggregate_type = row.required_string("aggregate_type");
    const auto aggregate_id = row.required_string("aggregate_id");
    const auto occurred_at = row.occurred_at();
    const auto payload = row.payload();
    const auto headers = row.headers();
    const auto source = source_of(options_, change, position, relation.schema, relation.table);
    const EnvelopeText envelope{
        .id = id,
        .type = type,
        .aggregate_type = aggregate_type,
        .aggregate_id = aggregate_id,
        .occurred_at = occurred_at,
        .payload = payload,
        .op = std::nullopt,
        .before = std::nullopt,
        .after = std::nullopt,
        .source = source,
        .headers = headers,
    };
    return {domain_event_record(envelope, counters_.outbox_events)};
  } catch (const Rejected& rejected) {
    return {dead_letter(options_, counters_, change, position, origin, rejected)};
  }
}

std::vector<OutgoingRecord> EventRouter::route_message(const SourceChange& change) {
  if (!change.message) {
    throw std::invalid_argument(fmt::format("message change at {} carries no message", change.lsn));
  }
  const auto& message = *change.message;
  if (message.prefix == options_.heartbeat_prefix) {
    // Heartbeats exist only to move the slot's confirmed position on an idle database; the caller
    // confirms the position as for any other consumed change.
    ++counters_.heartbeats;
    return {};
  }
  if (message.prefix != options_.message_prefix) {
    ++counters_.ignored_messages;  // another tool's messages share the slot's WAL; not ours to publish
    return {};
  }
  // A non-transactional message (pg_logical_emit_message(false, ...)) is published as well, but it
  // is not atomic with the transaction that emitted it: PostgreSQL decodes it at once, so it is
  // published even if that transaction later rolls back. Use transactional messages for events.
  const auto position = position_of(change);
  DeadLetterOrigin origin{
      .header = {std::string(dlq_header::message_prefix), message.prefix},
      .original = [&] { return message.content; },
      .key = std::nullopt,
  };
  try {
    json content;
    try {
      content = json::parse(message.content);
    } catch (const json::exception& error) {  // parse_error, or out_of_range for numbers like 1e400
      throw Rejected(DeadLetterReason::not_json,
                     fmt::format("logical message content is not valid JSON: {}", error.what()));
    }
    if (!content.is_object()) {
      throw Rejected(
          DeadLetterReason::not_json,
          fmt::format("logical message content must be a JSON object, got a JSON {}", content.type_name()));
    }
    // "type" is accepted for "event_type": it is the envelope's name for the field.
    if (const auto it = content.find("event_type"); it == content.end() || it->is_null()) {
      if (const auto type = content.find("type"); type != content.end()) content["event_type"] = *type;
    }
    const DomainEventFields reader(content, "logical message");
    origin.key = reader.key_if_known();
    auto envelope = domain_event(reader, source_of(options_, change, position, {}, {}));
    if (change.txn == nullptr) envelope.source.commit_ts = envelope.occurred_at;
    return {domain_event_record(envelope, counters_.message_events)};
  } catch (const Rejected& rejected) {
    return {dead_letter(options_, counters_, change, position, origin, rejected)};
  }
}

std::vector<OutgoingRecord> EventRouter::route_row_change(const SourceChange& change) {
  const auto& relation = *change.relation;
  const auto position = position_of(change);
  const Op op = change.kind == ChangeKind::insert   ? (position.snapshot ? Op::read : Op::create)
                : change.kind == ChangeKind::update ? Op::update
                                                    : Op::remove;
  DeadLetterOrigin origin{
      .header = table_header(relation),
      .original =
          [&] {
            const bool has_after = change.kind != ChangeKind::remove;
            return dump_replacing_invalid_utf8({
                {"op", std::string(1, op_code(op))},
                {"before", change.old_tuple ? raw_row_json(relation, change.old_tuple->columns) : json()},
                {"after", has_after ? raw_row_json(relation, change.new_tuple) : json()},
            });
          },
      .key = std::nullopt,
  };
  try {
    Envelope envelope{
        .id = row_change_id(position, change.seq),
        .type = row_change_type(relation, op),
        .aggregate_type = fmt::format("{}.{}", relation.schema, relation.table),
        .aggregate_id = {},
        .occurred_at = std::string(position.commit_ts),
        .payload = nullptr,
        .op = op,
        .before = std::nullopt,
        .after = std::nullopt,
        .source = source_of(options_, change, position, relation.schema, relation.table),
        .headers = std::nullopt,
    };
    try {
      // `before` only when PostgreSQL sent the old row: REPLICA IDENTITY FULL, a changed key, or
      // the key columns of a deleted row. Otherwise a consumer cannot know it and gets null.
      if (change.old_tuple) envelope.before = old_tuple_to_json(relation, *change.old_tuple).values;
      if (change.kind != ChangeKind::remove) {
        auto after = tuple_to_json(relation, change.new_tuple);
        envelope.after = std::move(after.values);
        envelope.source.unchanged_toast = std::move(after.unchanged_toast);
      }
    } catch (const ValueMappingError& error) {
      throw Rejected(DeadLetterReason::value_mapping, error.what());
    }
    const auto key_columns = key_columns_of(relation);
    std::optional<std::string> key;
    std::optional<std::string> old_key;
    try {
      if (!key_columns.empty()) key = message_key(envelope, key_columns);
      if (key && op == Op::update && envelope.before) old_key = old_key_of(*envelope.before, key_columns);
    } catch (const EnvelopeError& error) {
      throw Rejected(DeadLetterReason::unencodable, error.what());
    } catch (const json::exception& error) {
      throw Rejected(
          DeadLetterReason::unencodable,
          fmt::format("the key of row change {} cannot be encoded: {}", envelope.id, error.what()));
    }
    origin.key = key;
    envelope.aggregate_id = key.value_or("");
    const auto topic = row_change_topic_name(options_.topic_prefix, relation.schema, relation.table);
    std::vector<OutgoingRecord> records;
    if (old_key && *old_key != *key) {
      // The update moved the row to another key. As Debezium does, the old key gets a delete and the
      // new key a create: each key's history stays whole in its own partition, and a consumer that
      // keeps rows by key drops the old one instead of keeping it forever.
      Envelope removal = envelope;
      removal.id = fmt::format("{}:d", envelope.id);  // one change, two events: ids stay unique
      removal.type = row_change_type(relation, Op::remove);
      removal.op = Op::remove;
      removal.aggregate_id = *old_key;
      removal.after = std::nullopt;
      removal.source.unchanged_toast.clear();
      records.push_back(event_record(options_, removal, old_key, topic));
      envelope.type = row_change_type(relation, Op::create);
      envelope.op = Op::create;
      envelope.before = std::nullopt;
      // Unchanged TOASTed values were not sent, and no sink holds a row under the new key to keep
      // them from: the create must carry them, or they are lost for good.
      fill_unchanged_toast(change, key_columns, envelope);
    }
    records.push_back(event_record(options_, envelope, key, topic));
    counters_.row_change_events += records.size();
    return records;
  } catch (const Rejected& rejected) {
    return {dead_letter(options_, counters_, change, position, origin, rejected)};
  }
}

void EventRouter::fill_unchanged_toast(const SourceChange& change, const std::vector<std::string>& key_columns,
                                       Envelope& envelope) {
  auto& missing = envelope.source.unchanged_toast;
  if (missing.empty()) return;
  const auto& relation = *change.relation;
  // REPLICA IDENTITY FULL sends the old row whole (detoasted): its values are the unchanged ones.
  if (change.old_tuple && change.old_tuple->kind == OldTupleKind::full) {
    const json old_row = old_tuple_to_json(relation, *change.old_tuple).values;
    std::erase_if(missing, [&](const std::string& column) {
      const auto it = old_row.find(column);
      if (it == old_row.end()) return false;
      (*envelope.after)[column] = *it;
      return true;
    });
  }
  if (missing.empty() || toast_fetcher_ == nullptr) return;
  std::vector<std::string> key;
  for (const auto& column : key_columns) {
    const auto index = relation.column_index(column);
    if (!index || *index >= change.new_tuple.size() || change.new_tuple[*index].kind != ColumnKind::text) return;
    key.push_back(change.new_tuple[*index].value);
  }
  // The row as it is now, read once this change's transaction is visible (docs/PRODUCER.md, "Key
  // changes and unchanged TOASTed values"). If it changed since, a later change carries the newer
  // value (an update that sets a TOASTed column sends it) or removes the row. No row: a later
  // transaction deleted it or moved it on, and its delete of this key follows; until then the sinks
  // hold the row without the value (the column stays listed as unchanged). Either way the sinks end
  // at the database's state.
  const Xid xid = change.txn != nullptr && !change.txn->snapshot ? change.txn->xid : 0;
  const auto values = toast_fetcher_->fetch(relation, key_columns, key, missing, xid);
  if (!values) return;
  // Mapped as the stream's values are: a tuple holding only the fetched columns.
  TupleData fetched(relation.columns.size());
  for (auto& cell : fetched) cell.kind = ColumnKind::unchanged_toast;
  std::vector<std::string> unresolved;
  for (std::size_t i = 0; i < missing.size(); ++i) {
    const auto index = relation.column_index(missing[i]);
    if (!index || i >= values->size()) {
      unresolved.push_back(missing[i]);
      continue;
    }
    fetched[*index].kind = (*values)[i] ? ColumnKind::text : ColumnKind::null;
    fetched[*index].value = (*values)[i].value_or("");
  }
  RowJson mapped;
  try {
    mapped = tuple_to_json(relation, fetched);
  } catch (const ValueMappingError& error) {
    throw Rejected(DeadLetterReason::value_mapping, error.what());
  }
  for (auto& [column, value] : mapped.values.items()) (*envelope.after)[column] = std::move(value);
  missing = std::move(unresolved);
}

std::vector<OutgoingRecord> EventRouter::route_truncate(const SourceChange& change) {
  const auto position = position_of(change);
  std::vector<OutgoingRecord> records;
  for (const auto* relation : change.truncated) {
    if (relation == nullptr) {
      throw std::invalid_argument(
          fmt::format("truncate at {} names a relation it does not describe", change.lsn));
    }
    if (is_outbox(*relation)) {
      // Truncating (or detaching partitions of) the outbox is how users clear published rows:
      // every row's event was published when it was inserted, so there is nothing to publish.
      ++counters_.ignored_outbox_changes;
      continue;
    }
    if (!is_captured(*relation)) {
      ++counters_.ignored_table_changes;
      continue;
    }
    // One change truncates several tables: the table name keeps each event's id unique.
    const Envelope envelope{
        .id = fmt::format("{}:{}.{}", row_change_id(position, change.seq), relation->schema, relation->table),
        .type = row_change_type(*relation, Op::truncate),
        .aggregate_type = fmt::format("{}.{}", relation->schema, relation->table),
        .aggregate_id = canonical_json(json::object()),  // message_key's key of a truncate
        .occurred_at = std::string(position.commit_ts),
        .payload = nullptr,
        .op = Op::truncate,
        .before = std::nullopt,
        .after = std::nullopt,
        .source = source_of(options_, change, position, relation->schema, relation->table),
        .headers = std::nullopt,
    };
    const DeadLetterOrigin origin{
        .header = table_header(*relation),
        .original =
            [&] {
              return dump_replacing_invalid_utf8({{"op", "t"}, {"before", nullptr}, {"after", nullptr}});
            },
        .key = envelope.aggregate_id,
    };
    try {
      records.push_back(
          event_record(options_, envelope, envelope.aggregate_id,
                       row_change_topic_name(options_.topic_prefix, relation->schema, relation->table)));
      // The table's rows are spread over every partition by key: one copy per partition is ordered
      // against each of them (docs/PRODUCER.md "TRUNCATE").
      records.back().every_partition = true;
      ++counters_.row_change_events;
    } catch (const Rejected& rejected) {
      records.push_back(dead_letter(options_, counters_, change, position, origin, rejected));
    }
  }
  return records;
}

template <typename DomainEvent>
OutgoingRecord EventRouter::domain_event_record(const DomainEvent& envelope, std::uint64_t& counter) {
  auto topic = event_topics_.find(envelope.aggregate_type);
  if (topic == event_topics_.end()) {
    const std::string_view type = envelope.aggregate_type;
    topic =
        event_topics_.emplace(type, EventTopic{event_topic_name(options_.topic_prefix, type), false}).first;
  }
  auto record = event_record(options_, envelope, std::string(envelope.aggregate_id), topic->second.name);
  // Reported only once an event will really be produced there: a rejected event creates no topic.
  if (!topic->second.published) {
    topic->second.published = true;
    if (event_topics_seen_.insert(topic->second.name).second) {
      new_aggregate_types_.emplace_back(envelope.aggregate_type);
    }
  }
  ++counter;
  return record;
}

}  // namespace syncline::producer
