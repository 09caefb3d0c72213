// Declarative SQL projections: the :json.path compiler, and binding envelope values as text
// parameters typed by what PostgreSQL inferred for each statement.
#include "consumers/pg/sql_projection.hpp"

#include "consumers/pg/mirror_projection.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "common/envelope.hpp"
#include "common/json_path.hpp"
#include "common/pg_types.hpp"

namespace syncline::pg_projector {
namespace {

using nlohmann::json;
namespace oid = sql_param_oid;

// ---------------------------------------------------------------------------------------------
// The named-parameter compiler

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_path_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_path_char(char c) { return is_path_start(c) || is_digit(c); }

// A byte that continues a PostgreSQL identifier or number: after one, ':' and '$' belong to the
// token ("a[i:j]", "name$1"), so they start neither a parameter nor a dollar quote.
bool continues_sql_token(char c) {
  return is_path_char(c) || c == '$' || static_cast<unsigned char>(c) >= 0x80;
}

class NamedParameterCompiler {
 public:
  explicit NamedParameterCompiler(std::string_view sql) : sql_(sql) {}

  CompiledSql run() {
    out_.sql.reserve(sql_.size());
    while (pos_ < sql_.size()) {
      const char c = sql_[pos_];
      const char next = at(pos_ + 1);
      if (c == '\'') {
        copy_quoted('\'', escape_string_prefix());
      } else if (c == '"') {
        copy_quoted('"', false);
      } else if (c == '-' && next == '-') {
        const std::size_t end = sql_.find('\n', pos_);
        copy_to(end == std::string_view::npos ? sql_.size() : end);
      } else if (c == '/' && next == '*') {
        copy_block_comment();
      } else if (c == '$' && !after_token(pos_)) {
        copy_dollar();
      } else if (c == ':' && is_path_start(next) && !after_operand(pos_)) {
        compile_parameter();
      } else {
        out_.sql += c;
        ++pos_;
      }
    }
    return std::move(out_);
  }

 private:
  char at(std::size_t i) const { return i < sql_.size() ? sql_[i] : '\0'; }
  bool after_token(std::size_t i) const { return i > 0 && continues_sql_token(sql_[i - 1]); }
  bool after_operand(std::size_t i) const {
    if (i == 0) return false;
    const char previous = sql_[i - 1];
    return continues_sql_token(previous) || previous == ':' || previous == ']' || previous == ')';
  }

  // E'...' (any case) takes backslash escapes; the E must start a token ("type'..'" is not one).
  bool escape_string_prefix() const {
    return pos_ > 0 && (sql_[pos_ - 1] == 'E' || sql_[pos_ - 1] == 'e') && !after_token(pos_ - 1);
  }

  [[noreturn]] void fail(std::size_t offset, const std::string& what) const {
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i < offset && i < sql_.size(); ++i) {
      if (sql_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw std::invalid_argument(what + " at line " + std::to_string(line) + ", column " +
                                std::to_string(column));
  }

  void copy_to(std::size_t end) {
    out_.sql.append(sql_.substr(pos_, end - pos_));
    pos_ = end;
  }

  // '...' with '' (and, for E'...', backslash) escapes; "..." with "" escapes.
  void copy_quoted(char quote, bool backslash_escapes) {
    std::size_t i = pos_ + 1;
    while (i < sql_.size()) {
      if (backslash_escapes && sql_[i] == '\\') {
        i += 2;
      } else if (sql_[i] == quote) {
        if (at(i + 1) != quote) {
          copy_to(i + 1);
          return;
        }
        i += 2;
      } else {
        ++i;
      }
    }
    fail(pos_, quote == '"' ? "unterminated quoted identifier" : "unterminated string literal");
  }

  // PostgreSQL's block comments nest.
  void copy_block_comment() {
    std::size_t depth = 0;
    std::size_t i = pos_;
    while (i < sql_.size()) {
      if (sql_[i] == '/' && at(i + 1) == '*') {
        ++depth;
        i += 2;
      } else if (sql_[i] == '*' && at(i + 1) == '/') {
        i += 2;
        if (--depth == 0) {
          copy_to(i);
          return;
        }
      } else {
        ++i;
      }
    }
    fail(pos_, "unterminated /* comment");
  }

  // $n is refused; $$...$$ and $tag$...$tag$ are copied whole; any other '$' is just a character.
  void copy_dollar() {
    if (is_digit(at(pos_ + 1))) {
      std::size_t end = pos_ + 1;
      while (is_digit(at(end))) ++end;
      fail(pos_, "positional parameter " + std::string(sql_.substr(pos_, end - pos_)) +
                     " (write :json.path parameters only; mixing both is error-prone)");
    }
    std::size_t tag_end = pos_ + 1;
    const auto tag_char = [](char c) { return is_path_char(c) || static_cast<unsigned char>(c) >= 0x80; };
    if (tag_char(at(tag_end)) && !is_digit(at(tag_end))) {
      while (tag_char(at(tag_end))) ++tag_end;
    }
    if (at(tag_end) != '$') {
      out_.sql += '$';
      ++pos_;
      return;
    }
    const std::string_view tag = sql_.substr(pos_, tag_end + 1 - pos_);
    const std::size_t close = sql_.find(tag, tag_end + 1);
    if (close == std::string_view::npos) fail(pos_, "unterminated dollar-quoted string " + std::string(tag));
    copy_to(close + tag.size());
  }

  void compile_parameter() {
    const std::size_t start = pos_;
    const std::string_view written = sql_.substr(start + 1, json_path_length(sql_.substr(start + 1)));
    SqlParameter parameter;
    try {
      parameter = parse_json_path(written);
    } catch (const std::invalid_argument& error) {
      fail(start, error.what());
    }
    try {
      // A typo in a path would otherwise reject every event: it fails start-up instead.
      check_envelope_path(parameter);
    } catch (const std::invalid_argument& error) {
      fail(start, "parameter :" + parameter.text + ": " + error.what());
    }

    std::size_t number = 0;
    while (number < out_.parameters.size() && out_.parameters[number].text != parameter.text) ++number;
    if (number == out_.parameters.size()) {
      out_.parameters.push_back(std::move(parameter));
    } else if (out_.parameters[number].optional != parameter.optional) {
      fail(start, "parameter :" + parameter.text + " is written both with and without '?'");
    }
    out_.sql += '$';
    out_.sql += std::to_string(number + 1);
    pos_ = start + 1 + written.size();
  }

  std::string_view sql_;
  std::size_t pos_ = 0;
  CompiledSql out_;
};

// ---------------------------------------------------------------------------------------------
// Binding

// Names for reasons, and for array types the element type whose rules apply to each element.
struct KnownType {
  Oid type;
  std::string_view name;
  Oid element = 0;  // 0: not an array bound from a JSON array
};
constexpr std::array<KnownType, 27> kKnownTypes = {{
    {oid::kBool, "boolean"},
    {oid::kBytea, "bytea"},
    {oid::kInt2, "smallint"},
    {oid::kInt4, "integer"},
    {oid::kInt8, "bigint"},
    {oid::kText, "text"},
    {oid::kJson, "json"},
    {oid::kFloat4, "real"},
    {oid::kFloat8, "double precision"},
    {oid::kUnknown, "unknown"},
    {oid::kBpchar, "character"},
    {oid::kVarchar, "character varying"},
    {oid::kDate, "date"},
    {oid::kTimestamp, "timestamp without time zone"},
    {oid::kTimestamptz, "timestamp with time zone"},
    {oid::kNumeric, "numeric"},
    {oid::kUuid, "uuid"},
    {oid::kPgLsn, "pg_lsn"},
    {oid::kJsonb, "jsonb"},
    {oid::kBoolArray, "boolean[]", oid::kBool},
    {oid::kInt4Array, "integer[]", oid::kInt4},
    {oid::kTextArray, "text[]", oid::kText},
    {oid::kVarcharArray, "character varying[]", oid::kVarchar},
    {oid::kInt8Array, "bigint[]", oid::kInt8},
    {oid::kNumericArray, "numeric[]", oid::kNumeric},
    {oid::kUuidArray, "uuid[]", oid::kUuid},
    {oid::kJsonbArray, "jsonb[]", oid::kJsonb},
}};

const KnownType* known_type(Oid type) {
  const auto found = std::find_if(kKnownTypes.begin(), kKnownTypes.end(),
                                  [type](const KnownType& known) { return known.type == type; });
  return found == kKnownTypes.end() ? nullptr : &*found;
}

std::string type_name(Oid type) {
  const KnownType* known = known_type(type);
  return known != nullptr ? std::string(known->name) : "type oid " + std::to_string(type);
}

// "object {"a":1}", cut to about 100 bytes (on a UTF-8 boundary) so a reason stays a header.
std::string describe(const json& value) {
  constexpr std::size_t kMaxShown = 100;
  std::string kind;
  switch (value.type()) {
    case json::value_t::object:
      kind = "object";
      break;
    case json::value_t::array:
      kind = "array";
      break;
    case json::value_t::string:
      kind = "string";
      break;
    case json::value_t::boolean:
      kind = "boolean";
      break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      kind = "integer";
      break;
    case json::value_t::number_float:
      kind = "number";
      break;
    default:
      kind = "null";
      break;
  }
  std::string shown = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > kMaxShown) {
    std::size_t cut = kMaxShown;
    while (cut > 0 && (static_cast<unsigned char>(shown[cut]) & 0xC0U) == 0x80U) --cut;
    shown.resize(cut);
    shown += "...";
  }
  return kind + " " + shown;
}

// Optional sign and decimal digits, within [min, max]: what int2/int4/int8 input accepts from us.
bool is_integer_text(std::string_view text, std::int64_t min, std::int64_t max) {
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) digits.remove_prefix(1);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) return false;
  if (text.front() == '+') text.remove_prefix(1);
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && value >= min && value <= max;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) {
             return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
           };
           return lower(x) == lower(y);
         });
}

// A decimal number (1, -1.5, .5, 1e-3) or NaN/Infinity: what numeric, real and double accept.
bool is_numeric_text(std::string_view text) {
  std::string_view rest = text;
  if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) rest.remove_prefix(1);
  if (equals_ignoring_case(rest, "infinity") || equals_ignoring_case(rest, "inf")) return true;
  if (equals_ignoring_case(text, "nan")) return true;
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t begin = i;
    while (i < rest.size() && is_digit(rest[i])) ++i;
    return i - begin;
  };
  std::size_t mantissa = digits();
  if (i < rest.size() && rest[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < rest.size() && (rest[i] == 'e' || rest[i] == 'E')) {
    ++i;
    if (i < rest.size() && (rest[i] == '+' || rest[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == rest.size();
}

bool integer_in_range(const json& value, std::int64_t min, std::int64_t max) {
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    return number <= static_cast<std::uint64_t>(max);  // every range here starts at or below 0
  }
  const auto number = value.get<std::int64_t>();
  return number >= min && number <= max;
}

// Standard base64 (padding optional) to bytea's hex input format; nullopt if not base64.
std::optional<std::string> base64_to_bytea_hex(std::string_view text) {
  const auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 == 0 && text.ends_with("==")) {
    text.remove_suffix(2);
  } else if (text.size() % 4 == 0 && text.ends_with('=')) {
    text.remove_suffix(1);
  }
  if (text.size() % 4 == 1) return std::nullopt;
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + text.size() * 3 / 2);
  std::uint32_t bits = 0;
  int count = 0;
  for (const char c : text) {
    const int value = sextet(c);
    if (value < 0) return std::nullopt;
    bits = (bits << 6U) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      const auto byte = static_cast<unsigned>((bits >> static_cast<unsigned>(count)) & 0xFFU);
      out += kHex[byte >> 4U];
      out += kHex[byte & 0xFU];
    }
  }
  return out;
}

using pg::append_array_element;

std::optional<std::string> to_param(const json& value, Oid type, pg::Param& out);

// `{...}` from a JSON array (nested arrays become dimensions, except for json/jsonb elements).
std::optional<std::string> to_array_literal(const json& array, Oid array_type, Oid element_type,
                                            std::string& out, std::string& where) {
  out += '{';
  for (std::size_t i = 0; i < array.size(); ++i) {
    if (i > 0) out += ',';
    const json& element = array[i];
    const std::string position = "[" + std::to_string(i) + "]";
    if (element.is_null()) {
      out += "NULL";
    } else if (element.is_array() && element_type != oid::kJsonb && element_type != oid::kJson) {
      where += position;
      if (auto error = to_array_literal(element, array_type, element_type, out, where)) return error;
      where.resize(where.size() - position.size());
    } else {
      pg::Param text;
      if (to_param(element, element_type, text)) {
        std::string error = "expects " + type_name(array_type) + ", got " + describe(element);
        error += " at element " + where;
        error += position;
        return error;
      }
      append_array_element(out, *text);
    }
  }
  out += '}';
  return std::nullopt;
}

// Sets `out` to the text PostgreSQL's input function for `type` accepts for `value`; on a mismatch
// returns what is wrong ("expects bigint, got object {...}") and leaves `out` unspecified.
std::optional<std::string> to_param(const json& value, Oid type, pg::Param& out) {
  const auto mismatch = [&] { return "expects " + type_name(type) + ", got " + describe(value); };
  if (value.is_null()) {
    out = std::nullopt;
    return std::nullopt;
  }
  switch (type) {
    case oid::kBool:
      if (value.is_boolean()) {
        out = value.get<bool>() ? "true" : "false";
        return std::nullopt;
      }
      if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        if (text == "true" || text == "false" || text == "t" || text == "f") {
          out = text;
          return std::nullopt;
        }
      }
      return mismatch();
    case oid::kInt2:
    case oid::kInt4:
    case oid::kInt8: {
      const std::int64_t min = type == oid::kInt2   ? std::numeric_limits<std::int16_t>::min()
                               : type == oid::kInt4 ? std::numeric_limits<std::int32_t>::min()
                                                    : std::numeric_limits<std::int64_t>::min();
      const std::int64_t max = type == oid::kInt2   ? std::numeric_limits<std::int16_t>::max()
                               : type == oid::kInt4 ? std::numeric_limits<std::int32_t>::max()
                                                    : std::numeric_limits<std::int64_t>::max();
      // The producer sends numeric columns as strings, so an integer string is as good as a number.
      if (value.is_number_integer() && integer_in_range(value, min, max)) {
        out = value.dump();
        return std::nullopt;
      }
      if (value.is_string() && is_integer_text(value.get_ref<const std::string&>(), min, max)) {
        out = value.get<std::string>();
        return std::nullopt;
      }
      return mismatch();
    }
    case oid::kNumeric:
    case oid::kFloat4:
    case oid::kFloat8:
      // dump() writes integers exactly (nlohmann keeps int64/uint64) and doubles round-trippably.
      if (value.is_number()) {
        out = value.dump();
        return std::nullopt;
      }
      if (value.is_string() && is_numeric_text(value.get_ref<const std::string&>())) {
        out = value.get<std::string>();
        return std::nullopt;
      }
      return mismatch();
    case oid::kJson:
    case oid::kJsonb:
      out = value.dump();
      return std::nullopt;
    case oid::kBytea:
      // The producer sends bytea as base64 (DESIGN.md): passed as is, bytea would store the base64
      // text's bytes. A "\x..." string is already bytea's own hex format.
      if (value.is_string()) {
        const auto& text = value.get_ref<const std::string&>();
        if (text.starts_with("\\x")) {
          out = text;
          return std::nullopt;
        }
        if (auto hex = base64_to_bytea_hex(text)) {
          out = std::move(*hex);
          return std::nullopt;
        }
      }
      return "expects bytea (base64 or \\x hex), got " + describe(value);
    default:
      break;
  }
  if (const KnownType* known = known_type(type); known != nullptr && known->element != 0) {
    if (!value.is_array()) return mismatch();
    std::string literal;
    std::string where;
    if (auto error = to_array_literal(value, type, known->element, literal, where)) return error;
    out = std::move(literal);
    return std::nullopt;
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    // libpq sends parameters as C strings: a NUL would silently cut the value short.
    if (text.find('\0') != std::string::npos)
      return mismatch() + " (PostgreSQL text cannot hold a NUL character)";
    out = text;
    return std::nullopt;
  }
  if (value.is_number() || value.is_boolean()) {
    out = value.dump();
    return std::nullopt;
  }
  return mismatch();
}

std::string join_types(const std::vector<std::string>& types) {
  std::string out;
  for (const auto& type : types) {
    if (!out.empty()) out += ", ";
    out += type;
  }
  return out;
}

}  // namespace

CompiledSql compile_named_parameters(std::string_view sql) { return NamedParameterCompiler(sql).run(); }

// ---------------------------------------------------------------------------------------------
// SqlProjection

std::string expand_schema_placeholder(std::string_view sql, const std::string& schema) {
  std::string out;
  std::size_t from = 0;
  for (auto at = sql.find(kSchemaPlaceholder); at != std::string_view::npos;
       at = sql.find(kSchemaPlaceholder, from)) {
    if (schema.empty()) throw std::invalid_argument("it writes {{schema}} but the projection has no 'schema' key");
    out.append(sql.substr(from, at - from));
    out += mirror_sql::quote_identifier(schema);
    from = at + kSchemaPlaceholder.size();
  }
  out.append(sql.substr(from));
  return out;
}

bool uses_schema_placeholder(const SqlProjectionConfig& config) {
  if (config.setup.find(kSchemaPlaceholder) != std::string::npos) return true;
  for (const auto& handler : config.handlers)
    for (const auto& sql : handler.statements)
      if (sql.find(kSchemaPlaceholder) != std::string::npos) return true;
  return false;
}

SqlProjection::SqlProjection(SqlProjectionConfig config) : config_(std::move(config)) {
  const std::string projection = "projection " + config_.name;
  if (config_.name.empty()) throw std::invalid_argument("a SQL projection needs a name");
  // The same SQL compiles against the live schema or a replay's shadow schema.
  try {
    config_.setup = expand_schema_placeholder(config_.setup, config_.schema);
    for (auto& handler : config_.handlers)
      for (auto& sql : handler.statements) sql = expand_schema_placeholder(sql, config_.schema);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(projection + ": " + error.what());
  }
  if (config_.topics.empty()) throw std::invalid_argument(projection + ": no topics to read");
  if (config_.handlers.empty()) throw std::invalid_argument(projection + ": no event handlers");

  // Reasons name a handler only when its statement numbers alone would be ambiguous for a type.
  std::unordered_map<std::string, std::size_t> handlers_per_type;
  for (const auto& handler : config_.handlers) {
    for (const auto& type : handler.types) ++handlers_per_type[type];
  }

  for (std::size_t h = 0; h < config_.handlers.size(); ++h) {
    const SqlHandlerConfig& handler = config_.handlers[h];
    const std::string where =
        projection + ", handler " + std::to_string(h + 1) + " (types " + join_types(handler.types) + ")";
    if (handler.types.empty()) throw std::invalid_argument(where + ": no event types");
    if (handler.statements.empty()) throw std::invalid_argument(where + ": no statements");
    for (std::size_t t = 0; t < handler.types.size(); ++t) {
      if (handler.types[t].empty()) throw std::invalid_argument(where + ": an empty event type");
      if (std::find(handler.types.begin(), handler.types.begin() + static_cast<std::ptrdiff_t>(t),
                    handler.types[t]) != handler.types.begin() + static_cast<std::ptrdiff_t>(t)) {
        throw std::invalid_argument(where + ": type " + handler.types[t] + " is listed twice");
      }
    }

    const std::size_t first = statements_.size();
    for (std::size_t s = 0; s < handler.statements.size(); ++s) {
      const std::string& sql = handler.statements[s];
      const std::string statement_where = where + ", statement " + std::to_string(s + 1);
      if (sql.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw std::invalid_argument(statement_where + ": empty statement");
      }
      try {
        statements_.push_back({compile_named_parameters(sql), statement_where, {}, false});
      } catch (const std::invalid_argument& error) {
        throw std::invalid_argument(statement_where + ": " + error.what());
      }
    }

    for (const auto& type : handler.types) {
      std::string prefix = projection;
      prefix += ", type " + type + ", ";
      if (handlers_per_type[type] > 1) prefix += "handler " + std::to_string(h + 1) + ", ";
      auto& entries = by_type_[type];
      for (std::size_t s = 0; s < handler.statements.size(); ++s) {
        entries.push_back({first + s, prefix + "statement " + std::to_string(s + 1) + ": "});
      }
    }
  }
  topic_set_.insert(config_.topics.begin(), config_.topics.end());
}

bool SqlProjection::wants(std::string_view topic, std::string_view type) const {
  return topic_set_.contains(topic) && by_type_.contains(type);
}

void SqlProjection::setup(Session& session) {
  if (!config_.schema.empty())
    session.connection().exec("CREATE SCHEMA IF NOT EXISTS " + mirror_sql::quote_identifier(config_.schema));
  // No parameters: the simple query protocol, so the setup may hold several statements.
  if (!config_.setup.empty()) session.connection().exec(config_.setup);
  // Prepared again on every (re)connect: the setup SQL may just have changed the tables, and so
  // the types PostgreSQL infers.
  for (CompiledStatement& statement : statements_) {
    statement.types_known = false;
    types_of(statement, session);
  }
}

const std::vector<Oid>& SqlProjection::types_of(CompiledStatement& statement, Session& session) {
  if (!statement.types_known) {
    try {
      statement.parameter_types = session.parameter_types(statement.compiled.sql);
    } catch (const pg::PgError& error) {
      // Same SQLSTATE (so the same retry decision), but saying which configured statement failed.
      std::string message = error.what();
      const std::string suffix = " [SQLSTATE " + error.sqlstate() + "]";
      if (!error.sqlstate().empty() && message.ends_with(suffix))
        message.resize(message.size() - suffix.size());
      throw pg::PgError(error.sqlstate(), statement.label + ": " + message);
    }
    if (statement.parameter_types.size() != statement.compiled.parameters.size()) {
      // Only possible if PostgreSQL lexes the text differently from the compiler (e.g. backslash
      // escapes with standard_conforming_strings off): binding would then misplace values.
      throw pg::PgError("42P02", statement.label + ": PostgreSQL sees " +
                                     std::to_string(statement.parameter_types.size()) +
                                     " parameters where the compiler made " +
                                     std::to_string(statement.compiled.parameters.size()) +
                                     " in: " + statement.compiled.sql);
    }
    statement.types_known = true;
  }
  return statement.parameter_types;
}

void SqlProjection::plan(std::span<const Event* const> events,
                         const std::unordered_set<std::size_t>& isolated, Session& session, PlanSink& sink) {
  // Every statement this projection emits covers exactly one event, so each event's statements
  // already stand alone: `isolated` asks for nothing more.
  static_cast<void>(isolated);
  std::vector<Statement> bound;
  for (const Event* event : events) {
    const auto found = by_type_.find(event->type);
    if (found == by_type_.end()) {
      sink.skip(event->index);  // wants() says no to this type: nothing to apply
      continue;
    }
    if (event->value == nullptr) {
      // The service promises a parsed value; never drop an event silently if it does not.
      sink.reject(event->index,
                  "projection " + config_.name + ", type " + found->first + ": no parsed envelope");
      continue;
    }
    if (is_extra_truncate_copy(*event->value, event->partition)) {
      sink.skip(event->index);  // a truncate applies once: its copy on partition 0
      continue;
    }
    // An event applies all or nothing: bind every statement before adding any.
    bound.clear();
    std::optional<std::string> rejection;
    for (const TypeStatement& entry : found->second) {
      CompiledStatement& statement = statements_[entry.statement];
      const std::vector<Oid>& types = types_of(statement, session);
      const std::vector<SqlParameter>& parameters = statement.compiled.parameters;
      Statement out{&statement.compiled.sql, {}, {event->index}};
      out.params.reserve(parameters.size());
      for (std::size_t p = 0; p < parameters.size() && !rejection; ++p) {
        const SqlParameter& parameter = parameters[p];
        const json* value = resolve(*event->value, parameter);
        if (value == nullptr) {
          if (parameter.optional) {
            out.params.emplace_back(std::nullopt);
          } else {
            rejection = entry.reason_prefix + "missing JSON path " + parameter.text;
          }
          continue;
        }
        if (auto error = to_param(*value, types[p], out.params.emplace_back())) {
          rejection = entry.reason_prefix + "parameter :" + parameter.text + " " + *error;
        }
      }
      if (rejection) break;
      bound.push_back(std::move(out));
    }
    if (rejection) {
      sink.reject(event->index, std::move(*rejection));
      continue;
    }
    for (Statement& statement : bound) sink.add(std::move(statement));
  }
}

void SqlProjection::reset() {
  // Nothing to forget: the only database knowledge kept is each statement's parameter types, which
  // a rolled-back batch cannot change (the setup DDL commits on its own, before any batch), and
  // setup() refreshes them after every reconnect.
}

}  // namespace syncline::pg_projector
