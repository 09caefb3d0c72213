// Envelope JSON encoding and decoding, Kafka headers and message keys.
#include "common/envelope.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "common/json_text.hpp"

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

// source.epoch: absent or null is epoch 0.
std::uint32_t epoch_of(const FieldReader& source) {
  const auto* value = source.optional("epoch");
  if (value == nullptr) return 0;
  // Parsed text gives unsigned numbers; JSON built in code may hold a signed one.
  const bool integer = value->is_number_unsigned() || (value->is_number_integer() && value->get<std::int64_t>() >= 0);
  if (!integer || value->get<std::uint64_t>() > kMaxSourceEpoch) {
    throw source.error("epoch", fmt::format("expected an integer from 0 to {}, got {}", kMaxSourceEpoch,
                                            describe(*value)));
  }
  return value->get<std::uint32_t>();
}

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
  source.epoch = epoch_of(fields);
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

std::uint64_t source_version(std::uint32_t epoch, Lsn commit_lsn) {
  if (epoch > kMaxSourceEpoch) {
    throw EnvelopeError(fmt::format("source epoch {} is above the highest, {}", epoch, kMaxSourceEpoch));
  }
  if ((commit_lsn.value() >> kSourceVersionLsnBits) != 0) {
    throw EnvelopeError(fmt::format("commit LSN {} is beyond 2^56 and cannot be versioned", commit_lsn));
  }
  return (static_cast<std::uint64_t>(epoch) << kSourceVersionLsnBits) | commit_lsn.value();
}

bool is_extra_truncate_copy(const json& envelope, std::int32_t partition) {
  if (partition == 0 || !envelope.is_object()) return false;
  const auto op = envelope.find("op");
  return op != envelope.end() && op->is_string() && op->get_ref<const std::string&>() == "t";
}

std::uint64_t source_version_of(const json& envelope) {
  if (!envelope.is_object()) throw EnvelopeError("the envelope is not a JSON object");
  const FieldReader top(envelope, "");
  const auto& object = top.required("source");
  if (!object.is_object()) throw top.error("source", fmt::format("expected an object, got {}", describe(object)));
  const FieldReader fields(object, "source.");
  return source_version(epoch_of(fields), fields.lsn("commit_lsn"));
}

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
  if (source.epoch > 0) source_json["epoch"] = source.epoch;
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

namespace {

// One of the envelope's JSON values: a tree, or the text its dump() gives.
struct JsonValue {
  const json* tree = nullptr;
  std::string_view text;

  void append_to(std::string& out) const {
    if (tree != nullptr) {
      json_text::append_dump(out, *tree);
    } else {
      out += text;
    }
  }
  std::size_t size_hint() const { return tree != nullptr ? 64 : text.size(); }
};

struct EnvelopeFields {
  std::string_view id;
  std::string_view type;
  std::string_view aggregate_type;
  std::string_view aggregate_id;
  std::string_view occurred_at;
  JsonValue payload;
  std::optional<Op> op;
  std::optional<JsonValue> before;
  std::optional<JsonValue> after;
  const EventSource& source;
  std::optional<JsonValue> headers;
};

// Lsn::to_string()'s "X/Y" (upper-case hex, no leading zeros), without a temporary string.
void append_lsn(std::string& out, Lsn lsn) {
  const auto append_hex = [&out](std::uint32_t value) {
    std::array<char, 8> digits{};
    const auto printed = std::to_chars(digits.data(), digits.data() + digits.size(), value, 16);
    for (const char* c = digits.data(); c != printed.ptr; ++c) {
      out += *c >= 'a' ? static_cast<char>(*c - 'a' + 'A') : *c;
    }
  };
  append_hex(static_cast<std::uint32_t>(lsn.value() >> 32U));
  out += '/';
  append_hex(static_cast<std::uint32_t>(lsn.value() & 0xFFFFFFFFU));
}

// The bytes of envelope_to_json(...).dump(), written directly: same field order, same escaping.
std::string write_envelope(const EnvelopeFields& envelope) {
  const auto& source = envelope.source;
  std::size_t size = 320 + envelope.id.size() + envelope.type.size() + envelope.aggregate_type.size() +
                     envelope.aggregate_id.size() + envelope.occurred_at.size() +
                     envelope.payload.size_hint() + source.db.size() + source.schema.size() +
                     source.table.size() + source.commit_ts.size();
  for (const auto* part : {&envelope.before, &envelope.after, &envelope.headers}) {
    if (*part) size += (*part)->size_hint();
  }
  std::string out;
  out.reserve(size);
  const auto string_field = [&out](std::string_view name, std::string_view value) {
    out += name;
    json_text::append_string(out, value);
  };
  const auto json_field = [&out](std::string_view name, const std::optional<JsonValue>& value) {
    out += name;
    if (value) {
      value->append_to(out);
    } else {
      out += "null";
    }
  };
  string_field("{\"id\":", envelope.id);
  string_field(",\"type\":", envelope.type);
  string_field(",\"aggregate_type\":", envelope.aggregate_type);
  string_field(",\"aggregate_id\":", envelope.aggregate_id);
  string_field(",\"occurred_at\":", envelope.occurred_at);
  json_field(",\"payload\":", envelope.payload);
  out += ",\"op\":";
  if (envelope.op) {
    out += '"';
    out += op_code(*envelope.op);  // a letter: nothing to escape
    out += '"';
  } else {
    out += "null";
  }
  json_field(",\"before\":", envelope.before);
  json_field(",\"after\":", envelope.after);
  string_field(",\"source\":{\"db\":", source.db);
  string_field(",\"schema\":", source.schema);
  string_field(",\"table\":", source.table);
  out += ",\"lsn\":\"";
  append_lsn(out, source.lsn);
  out += "\",\"commit_lsn\":\"";
  append_lsn(out, source.commit_lsn);
  out += "\",\"seq\":";
  json_text::append_unsigned(out, source.seq);
  out += ",\"txid\":";
  json_text::append_unsigned(out, source.txid);
  string_field(",\"commit_ts\":", source.commit_ts);
  out += source.snapshot ? ",\"snapshot\":true" : ",\"snapshot\":false";
  if (source.epoch > 0) {
    out += ",\"epoch\":";
    json_text::append_unsigned(out, source.epoch);
  }
  if (!source.unchanged_toast.empty()) {
    out += ",\"unchanged_toast\":[";
    for (std::size_t i = 0; i < source.unchanged_toast.size(); ++i) {
      if (i > 0) out += ',';
      json_text::append_string(out, source.unchanged_toast[i]);
    }
    out += ']';
  }
  out += '}';
  if (envelope.headers) json_field(",\"headers\":", envelope.headers);
  out += '}';
  return out;
}

std::string encode(const EnvelopeFields& envelope) {
  try {
    return write_envelope(envelope);
  } catch (const json::type_error& e) {
    throw EnvelopeError(fmt::format("envelope {} cannot be encoded: {}", envelope.id, e.what()));
  }
}

std::optional<JsonValue> tree_of(const std::optional<json>& value) {
  if (!value) return std::nullopt;
  return JsonValue{&*value, {}};
}

std::optional<JsonValue> text_of(const std::optional<std::string_view>& value) {
  if (!value) return std::nullopt;
  return JsonValue{nullptr, *value};
}

}  // namespace

std::string encode_envelope(const Envelope& envelope) {
  return encode(EnvelopeFields{
      .id = envelope.id,
      .type = envelope.type,
      .aggregate_type = envelope.aggregate_type,
      .aggregate_id = envelope.aggregate_id,
      .occurred_at = envelope.occurred_at,
      .payload = {&envelope.payload, {}},
      .op = envelope.op,
      .before = tree_of(envelope.before),
      .after = tree_of(envelope.after),
      .source = envelope.source,
      .headers = tree_of(envelope.headers),
  });
}

std::string encode_envelope(const EnvelopeText& envelope) {
  return encode(EnvelopeFields{
      .id = envelope.id,
      .type = envelope.type,
      .aggregate_type = envelope.aggregate_type,
      .aggregate_id = envelope.aggregate_id,
      .occurred_at = envelope.occurred_at,
      .payload = {nullptr, envelope.payload},
      .op = envelope.op,
      .before = text_of(envelope.before),
      .after = text_of(envelope.after),
      .source = envelope.source,
      .headers = text_of(envelope.headers),
  });
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

std::array<std::pair<std::string_view, std::string>, 3> kafka_headers(const EnvelopeText& envelope) {
  return {{{kafka_header::event_id, std::string(envelope.id)},
           {kafka_header::event_type, std::string(envelope.type)},
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
