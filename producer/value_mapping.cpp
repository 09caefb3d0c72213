// Maps pgoutput's text-format column values to JSON by PostgreSQL type.
#include "producer/value_mapping.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace syncline::producer {
namespace {

// Values can be megabytes long; an error message quotes only their start.
std::string quote_for_error(std::string_view text) {
  constexpr std::size_t kMax = 80;
  if (text.size() <= kMax) return fmt::format("'{}'", text);
  return fmt::format("'{}...' ({} bytes)", text.substr(0, kMax), text.size());
}

[[noreturn]] void invalid(std::string_view text, std::string_view type) {
  throw ValueMappingError(fmt::format("{} is not a valid {}", quote_for_error(text), type));
}

template <typename Number>
Number parse_number(std::string_view text, std::string_view type) {
  Number value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc{} || ptr != end) invalid(text, type);
  if constexpr (std::is_floating_point_v<Number>) {
    // from_chars also reads "inf" and "nan", which PostgreSQL never prints and JSON cannot hold.
    if (!std::isfinite(value)) invalid(text, type);
  }
  return value;
}

bool is_special_float(std::string_view text) {
  return text == "NaN" || text == "Infinity" || text == "-Infinity";
}
bool is_infinity(std::string_view text) { return text == "infinity" || text == "-infinity"; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Consumes exactly `count` digits (or, with count 0, one or more) and returns their value.
std::optional<int> take_digits(std::string_view& text, std::size_t count) {
  std::size_t n = 0;
  while (n < text.size() && is_digit(text[n]) && (count == 0 || n < count)) ++n;
  if (n == 0 || (count != 0 && n != count) || n > 9) return std::nullopt;
  int value = 0;
  std::from_chars(text.data(), text.data() + n, value);
  text.remove_prefix(n);
  return value;
}

bool take_char(std::string_view& text, char c) {
  if (text.empty() || text.front() != c) return false;
  text.remove_prefix(1);
  return true;
}

// The parts of ISO DateStyle output: "2026-11-22 10:00:00.123+00". `fraction` keeps PostgreSQL's
// digits as they are, so no precision is invented or lost.
struct DateTimeParts {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  std::string_view fraction;  // without the '.'; may be empty
  int offset_seconds = 0;     // east of UTC
};

// Three numbers with a separator: "2026-11-22", "10:00:00". All but a date's year have two digits.
std::optional<std::array<int, 3>> take_triple(std::string_view& text, char separator,
                                              std::size_t first_width) {
  std::array<int, 3> values{};
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0 && !take_char(text, separator)) return std::nullopt;
    const auto value = take_digits(text, i == 0 ? first_width : 2);
    if (!value) return std::nullopt;
    values[i] = *value;
  }
  return values;
}

bool parse_date(std::string_view& text, DateTimeParts& parts) {
  const auto date = take_triple(text, '-', 0);
  if (!date) return false;
  const auto [year, month, day] = *date;
  parts.year = year;
  parts.month = month;
  parts.day = day;
  return parts.year >= 1 &&
         std::chrono::year_month_day{std::chrono::year{parts.year},
                                     std::chrono::month{static_cast<unsigned>(parts.month)},
                                     std::chrono::day{static_cast<unsigned>(parts.day)}}
             .ok();
}

bool parse_time(std::string_view& text, DateTimeParts& parts) {
  const auto time = take_triple(text, ':', 2);
  if (!time) return false;
  const auto [hour, minute, second] = *time;
  parts.hour = hour;
  parts.minute = minute;
  parts.second = second;
  if (take_char(text, '.')) {
    const auto digits = std::find_if_not(text.begin(), text.end(), is_digit) - text.begin();
    if (digits == 0) return false;
    parts.fraction = text.substr(0, static_cast<std::size_t>(digits));
    text.remove_prefix(static_cast<std::size_t>(digits));
  }
  // 24:00:00 is a valid PostgreSQL time of day.
  return parts.hour <= 24 && parts.minute < 60 && parts.second < 60;
}

// "+00", "+05:30", "-03:00:15".
bool parse_offset(std::string_view& text, DateTimeParts& parts) {
  const bool negative = take_char(text, '-');
  if (!negative && !take_char(text, '+')) return false;
  const auto hours = take_digits(text, 2);
  if (!hours) return false;
  int seconds = *hours * 3600;
  if (take_char(text, ':')) {
    const auto minutes = take_digits(text, 2);
    if (!minutes) return false;
    seconds += *minutes * 60;
    if (take_char(text, ':')) {
      const auto secs = take_digits(text, 2);
      if (!secs) return false;
      seconds += *secs;
    }
  }
  parts.offset_seconds = negative ? -seconds : seconds;
  return true;
}

// Zero-padded to `width` digits, more if the value needs them: fmt's "{:0N}" for a non-negative int.
void append_padded(std::string& out, int value, int width) {
  std::array<char, 12> digits{};
  const auto printed = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  for (auto length = printed.ptr - digits.data(); length < width; ++length) out += '0';
  out.append(digits.data(), printed.ptr);
}

// "2026-11-22T10:00:00[.fraction]": once per outbox row and timestamp column, so without fmt.
std::string format_date_time(const DateTimeParts& parts, std::string_view suffix = {}) {
  std::string text;
  text.reserve(20 + 1 + parts.fraction.size() + suffix.size());
  append_padded(text, parts.year, 4);
  text += '-';
  append_padded(text, parts.month, 2);
  text += '-';
  append_padded(text, parts.day, 2);
  text += 'T';
  append_padded(text, parts.hour, 2);
  text += ':';
  append_padded(text, parts.minute, 2);
  text += ':';
  append_padded(text, parts.second, 2);
  if (!parts.fraction.empty()) {
    text += '.';
    text += parts.fraction;
  }
  text += suffix;
  return text;
}

std::string map_date(std::string_view text) {
  if (is_infinity(text)) return std::string(text);
  DateTimeParts parts;
  auto rest = text;
  if (!parse_date(rest, parts) || !rest.empty()) invalid(text, "date (ISO DateStyle, AD)");
  return std::string(text);
}

std::string map_timestamp(std::string_view text) {
  if (is_infinity(text)) return std::string(text);
  DateTimeParts parts;
  auto rest = text;
  if (!parse_date(rest, parts) || !take_char(rest, ' ') || !parse_time(rest, parts) || !rest.empty()) {
    invalid(text, "timestamp (ISO DateStyle, AD)");
  }
  return format_date_time(parts);
}

}  // namespace

std::string map_timestamptz(std::string_view text) {
  if (is_infinity(text)) return std::string(text);
  DateTimeParts parts;
  auto rest = text;
  // PostgreSQL's ISO output uses ' ' and "+00"; JSON producers (json_build_object(now()), most
  // languages) write 'T' and "+00:00" or 'Z'. All name the same instant.
  if (!parse_date(rest, parts) || !(take_char(rest, ' ') || take_char(rest, 'T')) || !parse_time(rest, parts) ||
      !(take_char(rest, 'Z') || parse_offset(rest, parts)) || !rest.empty()) {
    invalid(text, "timestamptz (ISO DateStyle, AD)");
  }
  if (parts.offset_seconds != 0) {
    // Only if the session's TimeZone is not UTC; shift the whole seconds, keep the fraction digits.
    using namespace std::chrono;
    const auto local = sys_days{year{parts.year} / parts.month / parts.day} + hours{parts.hour} +
                       minutes{parts.minute} + seconds{parts.second};
    const auto utc = local - seconds{parts.offset_seconds};
    const auto day = floor<days>(utc);
    const year_month_day date{day};
    const hh_mm_ss clock{utc - day};
    parts.year = static_cast<int>(date.year());
    parts.month = static_cast<int>(static_cast<unsigned>(date.month()));
    parts.day = static_cast<int>(static_cast<unsigned>(date.day()));
    parts.hour = static_cast<int>(clock.hours().count());
    parts.minute = static_cast<int>(clock.minutes().count());
    parts.second = static_cast<int>(clock.seconds().count());
  }
  return format_date_time(parts, "Z");
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string map_bytea(std::string_view text) {
  if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0) {
    invalid(text, "bytea in hex output format (\\x...)");
  }
  std::string bytes;
  bytes.reserve(text.size() / 2 - 1);
  for (std::size_t i = 2; i < text.size(); i += 2) {
    const int high = hex_digit(text[i]);
    const int low = hex_digit(text[i + 1]);
    if (high < 0 || low < 0) invalid(text, "bytea in hex output format (\\x...)");
    bytes += static_cast<char>(high * 16 + low);
  }
  return base64_encode(bytes);
}

// array_out's text form: {1,2,NULL}, {"a b","c\"d"}, {{1,2},{3,4}}, optionally with dimension
// bounds "[0:1]={...}". Elements are quoted when they contain delimiters, quotes, backslashes or
// spaces, or spell NULL; inside quotes a backslash escapes the next character.
class ArrayParser {
 public:
  ArrayParser(std::string_view text, Oid element_type) : text_(text), element_type_(element_type) {}

  nlohmann::json parse() {
    if (!text_.empty() && text_.front() == '[') {
      const auto equals = text_.find('=');
      if (equals == std::string_view::npos) fail("'=' after the dimension bounds");
      pos_ = equals + 1;
    }
    auto value = parse_level(0);
    skip_space();
    if (pos_ != text_.size()) fail("the end of the array");
    return value;
  }

 private:
  // PostgreSQL's MAXDIM; also keeps garbage from recursing deeply.
  static constexpr int kMaxDimensions = 6;

  [[noreturn]] void fail(std::string_view expected) const {
    throw ValueMappingError(
        fmt::format("array {}: expected {} at character {}", quote_for_error(text_), expected, pos_));
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }

  nlohmann::json parse_level(int depth) {
    if (depth >= kMaxDimensions) fail("at most 6 dimensions");
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] != '{') fail("'{'");
    ++pos_;
    auto values = nlohmann::json::array();
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return values;
    }
    while (true) {
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == '{') {
        values.push_back(parse_level(depth + 1));
      } else {
        values.push_back(parse_element());
      }
      skip_space();
      if (pos_ >= text_.size()) fail("',' or '}'");
      const char c = text_[pos_++];
      if (c == '}') return values;
      if (c != ',') fail("',' or '}'");
    }
  }

  nlohmann::json parse_element() {
    std::string element;
    if (pos_ < text_.size() && text_[pos_] == '"') {
      ++pos_;
      while (true) {
        if (pos_ >= text_.size()) fail("a closing '\"'");
        char c = text_[pos_++];
        if (c == '"') break;
        if (c == '\\') {
          if (pos_ >= text_.size()) fail("a character after '\\'");
          c = text_[pos_++];
        }
        element += c;
      }
      return map_text_value(element, element_type_);
    }
    const auto start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '}' && text_[pos_] != '{' &&
           text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c == '\\') {
        if (pos_ >= text_.size()) fail("a character after '\\'");
        c = text_[pos_++];
      }
      element += c;
    }
    if (pos_ == start) fail("an element");
    element.erase(element.find_last_not_of(" \t\n") + 1);
    // Only an unquoted NULL is null; "NULL" in quotes is the text.
    if (element.size() == 4 &&
        std::equal(element.begin(), element.end(), "NULL", [](char a, char b) { return (a & ~0x20) == b; })) {
      return nullptr;
    }
    return map_text_value(element, element_type_);
  }

  std::string_view text_;
  Oid element_type_;
  std::size_t pos_ = 0;
};

constexpr std::array<std::pair<Oid, Oid>, 31> kArrayElementTypes{{
    {1000, pg_type::kBool},     {1001, pg_type::kBytea},       {1002, 18 /* char */},
    {1003, 19 /* name */},      {1005, pg_type::kInt2},        {1007, pg_type::kInt4},
    {1009, pg_type::kText},     {1014, 1042 /* bpchar */},     {1015, pg_type::kVarchar},
    {1016, pg_type::kInt8},     {1021, pg_type::kFloat4},      {1022, pg_type::kFloat8},
    {1028, pg_type::kOid},      {1115, pg_type::kTimestamp},   {1182, pg_type::kDate},
    {1183, 1083 /* time */},    {1185, pg_type::kTimestamptz}, {1187, 1186 /* interval */},
    {1231, pg_type::kNumeric},  {2951, pg_type::kUuid},        {199, pg_type::kJson},
    {3807, pg_type::kJsonb},    {1270, 1266 /* timetz */},     {1041, 869 /* inet */},
    {651, 650 /* cidr */},      {1040, 829 /* macaddr */},     {143, 142 /* xml */},
    {1561, 1560 /* bit */},     {1563, 1562 /* varbit */},     {791, 790 /* money */},
    {1034, 1033 /* aclitem */},
}};

// The row's column, for error messages: "public.accounts.balance".
std::string column_path(const RelationInfo& relation, const RelationColumn& column) {
  return fmt::format("{}.{}.{}", relation.schema, relation.table, column.name);
}

void check_column_count(const RelationInfo& relation, const TupleData& tuple) {
  if (tuple.size() != relation.columns.size()) {
    throw ValueMappingError(fmt::format("relation {}.{} (id {}) has {} columns but the tuple has {}",
                                        relation.schema, relation.table, relation.relation_id,
                                        relation.columns.size(), tuple.size()));
  }
}

// Adds one column to `row`: a value, a null, or the name of an unchanged TOASTed column.
void add_column(RowJson& row, const RelationInfo& relation, const RelationColumn& column,
                const TupleColumn& value) {
  switch (value.kind) {
    case ColumnKind::null:
      row.values[column.name] = nullptr;
      return;
    case ColumnKind::unchanged_toast:
      row.unchanged_toast.push_back(column.name);
      return;
    case ColumnKind::binary:
      throw ValueMappingError(
          fmt::format("column {} arrived in binary format; the producer reads pgoutput in text format only",
                      column_path(relation, column)));
    case ColumnKind::text:
      try {
        row.values[column.name] = map_text_value(value.value, column.type_oid);
      } catch (const ValueMappingError& error) {
        throw ValueMappingError(fmt::format("column {} (type oid {}): {}", column_path(relation, column),
                                            column.type_oid, error.what()));
      }
      return;
  }
}

}  // namespace

std::optional<Oid> array_element_type(Oid type_oid) {
  const auto* it = std::find_if(kArrayElementTypes.begin(), kArrayElementTypes.end(),
                                [type_oid](const auto& entry) { return entry.first == type_oid; });
  if (it == kArrayElementTypes.end()) return std::nullopt;
  return it->second;
}

nlohmann::json map_text_value(std::string_view text, Oid type_oid) {
  switch (type_oid) {
    case pg_type::kInt2:
      return parse_number<std::int16_t>(text, "int2");
    case pg_type::kInt4:
      return parse_number<std::int32_t>(text, "int4");
    case pg_type::kInt8:
      return parse_number<std::int64_t>(text, "int8");
    case pg_type::kOid:
      return parse_number<std::uint32_t>(text, "oid");
    case pg_type::kFloat4:
    case pg_type::kFloat8:
      if (is_special_float(text)) return std::string(text);
      return parse_number<double>(text, type_oid == pg_type::kFloat4 ? "float4" : "float8");
    case pg_type::kBool:
      if (text == "t") return true;
      if (text == "f") return false;
      invalid(text, "bool ('t' or 'f')");
    case pg_type::kJson:
    case pg_type::kJsonb:
      try {
        return nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& error) {
        throw ValueMappingError(fmt::format("{} is not valid JSON: {}", quote_for_error(text), error.what()));
      }
    case pg_type::kTimestamptz:
      return map_timestamptz(text);
    case pg_type::kTimestamp:
      return map_timestamp(text);
    case pg_type::kDate:
      return map_date(text);
    case pg_type::kBytea:
      return map_bytea(text);
    default:
      break;
  }
  if (const auto element_type = array_element_type(type_oid)) return ArrayParser(text, *element_type).parse();
  // numeric (a string, so no precision is lost), uuid, text and every other type: the text form.
  return std::string(text);
}

std::string base64_encode(std::string_view bytes) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto chunk = (static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])) << 16U) |
                       (static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i + 1])) << 8U) |
                       static_cast<std::uint8_t>(bytes[i + 2]);
    out += kAlphabet[(chunk >> 18U) & 63U];
    out += kAlphabet[(chunk >> 12U) & 63U];
    out += kAlphabet[(chunk >> 6U) & 63U];
    out += kAlphabet[chunk & 63U];
  }
  if (const auto rest = bytes.size() - i; rest > 0) {
    auto chunk = static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i])) << 16U;
    if (rest == 2) chunk |= static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[i + 1])) << 8U;
    out += kAlphabet[(chunk >> 18U) & 63U];
    out += kAlphabet[(chunk >> 12U) & 63U];
    out += rest == 2 ? kAlphabet[(chunk >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

RowJson tuple_to_json(const RelationInfo& relation, const TupleData& tuple) {
  check_column_count(relation, tuple);
  RowJson row;
  for (std::size_t i = 0; i < tuple.size(); ++i) add_column(row, relation, relation.columns[i], tuple[i]);
  return row;
}

RowJson old_tuple_to_json(const RelationInfo& relation, const OldTuple& old_tuple) {
  check_column_count(relation, old_tuple.columns);
  RowJson row;
  for (std::size_t i = 0; i < old_tuple.columns.size(); ++i) {
    if (old_tuple.kind == OldTupleKind::key && !relation.columns[i].is_key) continue;
    add_column(row, relation, relation.columns[i], old_tuple.columns[i]);
  }
  return row;
}

}  // namespace syncline::producer
