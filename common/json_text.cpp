// JSON text written as nlohmann::json::dump() writes it, without building a json tree.
#include "common/json_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

namespace syncline::json_text {
namespace {

// The length of the well-formed UTF-8 sequence starting at text[i] (a byte >= 0x80), or 0: the
// ranges of Unicode's table 3-7, which nlohmann's lexer and serializer both enforce.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t at) { return static_cast<unsigned char>(text[at]); };
  const auto in = [&](std::size_t at, unsigned lo, unsigned hi) {
    return at < text.size() && byte(at) >= lo && byte(at) <= hi;
  };
  const unsigned lead = byte(i);
  if (lead >= 0xC2 && lead <= 0xDF) return in(i + 1, 0x80, 0xBF) ? 2 : 0;
  if (lead == 0xE0) return in(i + 1, 0xA0, 0xBF) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
  if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF)
    return in(i + 1, 0x80, 0xBF) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
  if (lead == 0xED) return in(i + 1, 0x80, 0x9F) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
  if (lead == 0xF0) return in(i + 1, 0x90, 0xBF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  if (lead >= 0xF1 && lead <= 0xF3)
    return in(i + 1, 0x80, 0xBF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  if (lead == 0xF4) return in(i + 1, 0x80, 0x8F) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

// An ASCII character dump() does not write as it is: '"', '\' or a control character.
bool needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

void append_escaped(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\t':
      out += "\\t";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\f':
      out += "\\f";
      return;
    case '\r':
      out += "\\r";
      return;
    default: {
      static constexpr std::string_view kHex = "0123456789abcdef";
      const std::array<char, 6> escape{'\\', 'u', '0', '0', kHex[c >> 4U], kHex[c & 15U]};
      out.append(escape.data(), escape.size());
    }
  }
}

void append_code_point(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    if (needs_escape(static_cast<unsigned char>(cp))) {
      append_escaped(out, static_cast<unsigned char>(cp));
    } else {
      out += static_cast<char>(cp);
    }
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0U | (cp >> 6U));
    out += static_cast<char>(0x80U | (cp & 0x3FU));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0U | (cp >> 12U));
    out += static_cast<char>(0x80U | ((cp >> 6U) & 0x3FU));
    out += static_cast<char>(0x80U | (cp & 0x3FU));
  } else {
    out += static_cast<char>(0xF0U | (cp >> 18U));
    out += static_cast<char>(0x80U | ((cp >> 12U) & 0x3FU));
    out += static_cast<char>(0x80U | ((cp >> 6U) & 0x3FU));
    out += static_cast<char>(0x80U | (cp & 0x3FU));
  }
}

// One member of an object being written: offsets into the output.
struct Member {
  std::size_t begin;    // the key's opening quote
  std::size_t key_end;  // after the key's closing quote
  std::size_t end;      // after the value
};

// Recursive descent over `text`, writing dump()'s form of each value as it goes. Any input it does
// not handle exactly as nlohmann would makes it give up (false); the caller then discards the output.
class Canonicalizer {
 public:
  Canonicalizer(std::string& out, std::string_view text, std::vector<Member>& members, std::string& scratch)
      : out_(out), text_(text), members_(members), scratch_(scratch) {}

  bool run() {
    skip_space();
    if (!value(0)) return false;
    skip_space();
    return pos_ == text_.size();
  }

 private:
  static constexpr int kMaxDepth = 64;

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool take(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool value(int depth) {
    if (pos_ >= text_.size()) return false;
    switch (text_[pos_]) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    out_ += word;
    return true;
  }

  // Integers only: dump() writes a float in its own shortest form, which nlohmann computes.
  bool number() {
    const auto start = pos_;
    const bool negative = take('-');
    if (pos_ >= text_.size()) return false;
    if (text_[pos_] == '0') {
      ++pos_;
    } else if (text_[pos_] >= '1' && text_[pos_] <= '9') {
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    } else {
      return false;
    }
    if (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E')) return false;
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (negative) {
      // Parsed and printed again: "-0" is the integer 0.
      std::int64_t value = 0;
      if (const auto [end, error] = std::from_chars(first, last, value);
          error != std::errc{} || end != last) {
        return false;  // beyond 64 bits: nlohmann reads a float
      }
      std::array<char, 24> digits{};
      const auto printed = std::to_chars(digits.data(), digits.data() + digits.size(), value);
      out_.append(digits.data(), printed.ptr);
      return true;
    }
    std::uint64_t value = 0;
    if (const auto [end, error] = std::from_chars(first, last, value); error != std::errc{} || end != last) {
      return false;
    }
    out_.append(first, last);  // no sign, no leading zero: already as dump() prints it
    return true;
  }

  bool hex4(std::uint32_t& value) {
    if (text_.size() - pos_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      std::uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      value = value * 16 + digit;
    }
    return true;
  }

  bool escape() {
    if (pos_ >= text_.size()) return false;
    switch (text_[pos_++]) {
      case '"':
        out_ += "\\\"";
        return true;
      case '\\':
        out_ += "\\\\";
        return true;
      case '/':
        out_ += '/';
        return true;
      case 'b':
        out_ += "\\b";
        return true;
      case 'f':
        out_ += "\\f";
        return true;
      case 'n':
        out_ += "\\n";
        return true;
      case 'r':
        out_ += "\\r";
        return true;
      case 't':
        out_ += "\\t";
        return true;
      case 'u': {
        std::uint32_t cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          std::uint32_t low = 0;
          if (!take('\\') || !take('u') || !hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10U) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return false;
        }
        append_code_point(out_, cp);
        return true;
      }
      default:
        return false;
    }
  }

  bool string() {
    ++pos_;  // the opening quote
    out_ += '"';
    auto run = pos_;  // characters written as they are read
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        out_.append(text_.data() + run, pos_ - run);
        ++pos_;
        out_ += '"';
        return true;
      }
      if (c < 0x20) return false;  // must be escaped in JSON
      if (c == '\\') {
        out_.append(text_.data() + run, pos_ - run);
        ++pos_;
        if (!escape()) return false;
        run = pos_;
      } else if (c < 0x80) {
        ++pos_;
      } else {
        const auto length = utf8_sequence_length(text_, pos_);
        if (length == 0) return false;
        pos_ += length;
      }
    }
    return false;
  }

  bool array(int depth) {
    if (depth > kMaxDepth) return false;
    ++pos_;
    out_ += '[';
    skip_space();
    if (take(']')) {
      out_ += ']';
      return true;
    }
    while (true) {
      skip_space();
      if (!value(depth)) return false;
      skip_space();
      if (take(',')) {
        out_ += ',';
      } else if (take(']')) {
        out_ += ']';
        return true;
      } else {
        return false;
      }
    }
  }

  std::string_view key_of(const Member& member) const {
    return std::string_view(out_).substr(member.begin + 1, member.key_end - member.begin - 2);
  }

  // dump() writes an object's keys in std::map order (bytewise); jsonb writes shorter keys first.
  bool object(int depth) {
    if (depth > kMaxDepth) return false;
    ++pos_;
    out_ += '{';
    skip_space();
    if (take('}')) {
      out_ += '}';
      return true;
    }
    const auto body = out_.size();
    const auto first = members_.size();
    bool sorted = true;
    bool escaped_keys = false;
    while (true) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') return false;
      Member member{out_.size(), 0, 0};
      if (!string()) return false;
      member.key_end = out_.size();
      // An escaped key does not sort like the text it stands for; one that needs no escape does.
      escaped_keys = escaped_keys || key_of(member).find('\\') != std::string_view::npos;
      if (members_.size() > first) {
        const auto order = key_of(members_.back()).compare(key_of(member));
        if (order == 0) return false;  // a duplicate: nlohmann keeps the last one
        sorted = sorted && order < 0;
      }
      skip_space();
      if (!take(':')) return false;
      out_ += ':';
      skip_space();
      if (!value(depth)) return false;
      member.end = out_.size();
      members_.push_back(member);
      skip_space();
      if (take(',')) {
        out_ += ',';
      } else if (take('}')) {
        break;
      } else {
        return false;
      }
    }
    const auto count = members_.size() - first;
    if (escaped_keys && count > 1) return false;
    if (!sorted && !sort_members(body, first)) return false;
    members_.resize(first);
    out_ += '}';
    return true;
  }

  // Rewrites the members written from `body` on in key order.
  bool sort_members(std::size_t body, std::size_t first) {
    const auto begin = members_.begin() + static_cast<std::ptrdiff_t>(first);
    std::sort(begin, members_.end(),
              [this](const Member& a, const Member& b) { return key_of(a) < key_of(b); });
    for (auto it = begin; it + 1 < members_.end(); ++it) {
      if (key_of(*it) == key_of(*(it + 1))) return false;
    }
    scratch_.assign(out_, body, std::string::npos);
    out_.resize(body);
    for (auto it = begin; it != members_.end(); ++it) {
      if (it != begin) out_ += ',';
      out_.append(scratch_, it->begin - body, it->end - it->begin);
    }
    return true;
  }

  std::string& out_;
  std::string_view text_;
  std::vector<Member>& members_;
  std::string& scratch_;
  std::size_t pos_ = 0;
};

}  // namespace

void append_string(std::string& out, std::string_view text) {
  const auto start = out.size();
  out.reserve(start + text.size() + 2);
  out += '"';
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const auto length = utf8_sequence_length(text, i);
      if (length == 0) {
        // dump() throws here; let it, so the error reads exactly as it always has.
        out.resize(start);
        append_dump(out, nlohmann::json(std::string(text)));
        return;
      }
      i += length;
    } else if (needs_escape(c)) {
      out.append(text.data() + run, i - run);
      append_escaped(out, c);
      run = ++i;
    } else {
      ++i;
    }
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
}

void append_unsigned(std::string& out, std::uint64_t value) {
  std::array<char, 24> digits{};
  const auto printed = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out.append(digits.data(), printed.ptr);
}

void append_dump(std::string& out, const nlohmann::json& value) {
  nlohmann::detail::serializer<nlohmann::json> serializer(
      nlohmann::detail::output_adapter<char, std::string>(out), ' ', nlohmann::json::error_handler_t::strict);
  serializer.dump(value, false, false, 0);
}

bool append_canonical(std::string& out, std::string_view text) {
  // Reused: the router calls this for every outbox row, on one thread.
  thread_local std::vector<Member> members;
  thread_local std::string scratch;
  members.clear();
  const auto start = out.size();
  if (Canonicalizer(out, text, members, scratch).run()) return true;
  out.resize(start);
  return false;
}

}  // namespace syncline::json_text
