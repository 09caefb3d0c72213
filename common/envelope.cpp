// Envelope JSON encoding and decoding, Kafka headers and message keys.
#include "common/envelope.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace syncline {

using nlohmann::json;

namespace {

std::string describe(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return fmt::format("{} {}", value.type_name(), text);
}

// Reads the fields of one JSON object, naming "<prefix><key>" in every error.
class FieldReader {
 public:
  FieldReader(const json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  const json& required(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end()) throw error(key, "is missing");
    return *it;
  }

  // Absent and null both mean "not set".
  const json* optional(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  std::string string(const char* key) const {
    const auto& value = required(key);
    if (!value.is_string()) throw error(key, fmt::format("expected a string, got {}", describe(value)));
    return value.get<std::string>();
  }

  std::uint64_t unsigned_integer(const char* key) const {
    const auto& value = required(key);
    if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<std::int64_t>() >= 0)) {
      throw error(key, fmt::format("expected a non-negative integer, got {}", describe(value)));
    }
    return value.get<std::uint64_t>();
  }

  Lsn lsn(const char* key) const {
    const auto& value = required(key);
    const auto lsn = value.is_string() ? Lsn::parse(value.get_ref<const std::string&>()) : std::nullopt;
    if (!lsn) throw error(key, fmt::format("expected an LSN like \"0/16B3748\", got {}", describe(value)));
    return *lsn;
  }

  std::optional<json> object_or_null(const char* key) const {
    const auto* value = optional(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_object())
      throw error(key, fmt::format("expected an object or null, got {}", describe(*value)));
    return *value;
  }

  EnvelopeError error(const char* key, std::string_view problem) const {
    return EnvelopeError(fmt::format("envelope field '{}{}' {}", prefix_, key, problem));
  }

 private:
  const json& object_;
  std::string prefix_;
};

EventSource source_from_json(const FieldReader& envelope) {
  const auto& object = envelope.required("source");
  if (!object.is_object())
    throw envelope.error("source", fmt::format("expected an object, got {}", describe(object)));
  const FieldReader fields(object, "source.");
  EventSource source{
      .db = fields.string("db"),
      .schema = fields.string("schema"),
      .table = fields.string("table"),
      .lsn = fields.lsn("lsn"),
      .commit_lsn = fields.lsn("commit_lsn"),
      .seq = fields.unsigned_integer("seq"),
      .txid = fields.unsigned_integer("txid"),
      .commit_ts = fields.string("commit_ts"),
      .snapshot = false,
      .unchanged_toast = {},
  };
  if (const auto* snapshot = fields.optional("snapshot")) {
    if (!snapshot->is_boolean())
      throw fields.error("snapshot", fmt::format("expected a boolean, got {}", describe(*snapshot)));
    source.snapshot = snapshot->get<bool>();
  }
  if (const auto* columns = fields.optional("unchanged_toast")) {
    const bool strings = columns->is_array() && std::all_of(columns->begin(), columns->end(),
                                                            [](const json& c) { return c.is_string(); });
    if (!strings) {
      throw fields.error("unchanged_toast",
                         fmt::format("expected an array of column names, got {}", describe(*columns)));
    }
    source.unchanged_toast = columns->get<std::vector<std::string>>();
  }
  return source;
}

}  // namespace

std::optional<Op> op_from_code(char code) {
  switch (code) {
    case 'c':
    case 'u':
    case 'd':
    case 'r':
    case 't':
      return static_cast<Op>(code);
    default:
      return std::nullopt;
  }
}

nlohmann::ordered_json envelope_to_json(const Envelope& envelope) {
  const auto& source = envelope.source;
  nlohmann::ordered_json source_json = {
      {"db", source.db},
      {"schema", source.schema},
      {"table", source.table},
      {"lsn", source.lsn.to_string()},
      {"commit_lsn", source.commit_lsn.to_string()},
      {"seq", source.seq},
      {"txid", source.txid},
      {"commit_ts", source.commit_ts},
      {"snapshot", source.snapshot},
  };
  if (!source.unchanged_toast.empty()) source_json["unchanged_toast"] = source.unchanged_toast;

  const auto or_null = [](const std::optional<json>& value) {
    return value ? nlohmann::ordered_json(*value) : nullptr;
  };
  nlohmann::ordered_json out = {
      {"id", envelope.id},
      {"type", envelope.type},
      {"aggregate_type", envelope.aggregate_type},
      {"aggregate_id", envelope.aggregate_id},
      {"occurred_at", envelope.occurred_at},
      {"payload", nlohmann::ordered_json(envelope.payload)},
      {"op", envelope.op ? nlohmann::ordered_json(std::string(1, op_code(*envelope.op))) : nullptr},
      {"before", or_null(envelope.before)},
      {"after", or_null(envelope.after)},
      {"source", std::move(source_json)},
  };
  if (envelope.headers) out["headers"] = nlohmann::ordered_json(*envelope.headers);
  return out;
}

std::string encode_envelope(const Envelope& envelope) {
  try {
    return envelope_to_json(envelope).dump();
  } catch (const json::type_error& e) {
    throw EnvelopeError(fmt::format("envelope {} cannot be encoded: {}", envelope.id, e.what()));
  }
}

Envelope envelope_from_json(const json& value) {
  if (!value.is_object())
    throw EnvelopeError(fmt::format("envelope must be a JSON object, got {}", describe(value)));
  const FieldReader fields(value, "");
  Envelope envelope{
      .id = fields.string("id"),
      .type = fields.string("type"),
      .aggregate_type = fields.string("aggregate_type"),
      .aggregate_id = fields.string("aggregate_id"),
      .occurred_at = fields.string("occurred_at"),
      .payload = fields.required("payload"),
      .op = std::nullopt,
      .before = fields.object_or_null("before"),
      .after = fields.object_or_null("after"),
      .source = source_from_json(fields),
      .headers = fields.object_or_null("headers"),
  };
  if (const auto* op = fields.optional("op")) {
    const auto code = op->is_string() && op->get_ref<const std::string&>().size() == 1
                          ? op_from_code(op->get_ref<const std::string&>().front())
                          : std::nullopt;
    if (!code)
      throw fields.error(
          "op", fmt::format(R"(expected one of "c", "u", "d", "r", "t" or null, got {})", describe(*op)));
    envelope.op = code;
  }
  return envelope;
}

Envelope decode_envelope(std::string_view text) {
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error& e) {
    throw EnvelopeError(fmt::format("envelope is not valid JSON: {}", e.what()));
  }
  return envelope_from_json(value);
}

std::array<std::pair<std::string_view, std::string>, 3> kafka_headers(const Envelope& envelope) {
  return {{{kafka_header::event_id, envelope.id},
           {kafka_header::event_type, envelope.type},
           {kafka_header::commit_lsn, envelope.source.commit_lsn.to_string()}}};
}

std::string canonical_json(const json& value) {
  // nlohmann::json keeps object keys in a std::map, so dump() already sorts them at every depth.
  return value.dump();
}

std::string message_key(const Envelope& envelope, std::span<const std::string> primary_key) {
  if (!envelope.is_row_change()) return envelope.aggregate_id;
  if (*envelope.op == Op::truncate) return canonical_json(json::object());
  const auto& row = envelope.after ? envelope.after : envelope.before;
  if (!row) {
    throw EnvelopeError(
        fmt::format("row change {} has neither 'before' nor 'after' to take its key from", envelope.id));
  }
  if (primary_key.empty()) return canonical_json(*row);
  json key = json::object();
  for (const auto& column : primary_key) {
    const auto it = row->find(column);
    if (it == row->end()) {
      throw EnvelopeError(fmt::format("row change {} lacks primary-key column '{}'", envelope.id, column));
    }
    key[column] = *it;
  }
  return canonical_json(key);
}

}  // namespace syncline
