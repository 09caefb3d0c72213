// syncline-ctl verify: row comparison, chunk digests and the report (see verify.hpp).
#include "tools/ctl/verify.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

#include "common/envelope.hpp"

namespace syncline::ctl::verify {

using json = nlohmann::json;

namespace {

bool string_matches(const std::string& text, const json& other) {
  if (other.is_string()) return text == other.get_ref<const std::string&>();
  if (text == other.dump()) return true;
  const json parsed = json::parse(text, nullptr, false);
  return !parsed.is_discarded() && parsed == other;
}

const json& member_or_null(const json& row, const std::string& name) {
  static const json null_value;
  if (!row.is_object()) return null_value;
  const auto found = row.find(name);
  return found == row.end() ? null_value : *found;
}

json without_nulls(const json& values) {
  json out = json::object();
  if (!values.is_object()) return out;
  for (const auto& [name, value] : values.items()) {
    if (!value.is_null()) out[name] = value;
  }
  return out;
}

}  // namespace

bool values_equal(const json& write_value, const json& read_value) {
  if (write_value == read_value) return true;
  if (write_value.is_null() || read_value.is_null()) return false;
  if (read_value.is_string() && !write_value.is_string())
    return string_matches(read_value.get_ref<const std::string&>(), write_value);
  if (write_value.is_string() && !read_value.is_string())
    return string_matches(write_value.get_ref<const std::string&>(), read_value);
  return false;
}

std::vector<std::string> differing_columns(const json& write_row, const json& read_row) {
  std::set<std::string> names;
  for (const json* row : {&write_row, &read_row}) {
    if (!row->is_object()) continue;
    for (const auto& item : row->items()) names.insert(item.key());
  }
  std::vector<std::string> out;
  for (const auto& name : names) {
    if (!values_equal(member_or_null(write_row, name), member_or_null(read_row, name))) out.push_back(name);
  }
  return out;
}

void ChunkDigest::mix(std::string_view bytes) {
  for (const char c : bytes) {
    hash_ ^= static_cast<unsigned char>(c);
    hash_ *= 1099511628211ULL;
  }
}

void ChunkDigest::add(const std::string& id, const json& values) {
  mix(id);
  mix(std::string_view("\x1f", 1));
  mix(canonical_json(without_nulls(values)));
  mix(std::string_view("\x1e", 1));
}

void ChunkDigest::add_absent(const std::string& id) {
  mix(id);
  mix(std::string_view("\x1f-\x1e", 3));
}

std::string_view to_string(DiffKind kind) {
  switch (kind) {
    case DiffKind::missing:
      return "missing";
    case DiffKind::extra:
      return "extra";
    case DiffKind::different:
      return "different";
  }
  return "?";
}

ChunkResult compare_chunk(const std::vector<WriteRow>& write_rows,
                          const std::map<std::string, StoredRow>& read_rows, std::optional<Lsn> snapshot) {
  ChunkResult result;
  ChunkDigest write_digest;
  ChunkDigest read_digest;
  for (const auto& row : write_rows) {
    write_digest.add(row.id, row.values);
    const auto found = read_rows.find(row.id);
    if (found == read_rows.end()) {
      read_digest.add_absent(row.id);
    } else {
      read_digest.add(row.id, found->second.values);
    }
  }
  result.digest_equal = write_digest.value() == read_digest.value();
  if (result.digest_equal) return result;
  for (const auto& row : write_rows) {
    const auto found = read_rows.find(row.id);
    std::optional<StoredRow> read;
    if (found != read_rows.end()) read = found->second;
    if (read && snapshot && read->position && *read->position > *snapshot) {
      ++result.newer;
      continue;
    }
    if (auto diff = compare_key(row.id, row.key, std::optional<json>(row.values), read, std::nullopt))
      result.diffs.push_back(std::move(*diff));
  }
  return result;
}

std::optional<KeyDiff> compare_key(const std::string& id, const json& key,
                                   const std::optional<json>& write_row,
                                   const std::optional<StoredRow>& read_row, std::optional<Lsn> snapshot) {
  if (read_row && snapshot && read_row->position && *read_row->position > *snapshot) return std::nullopt;
  if (!write_row && !read_row) return std::nullopt;
  KeyDiff diff{.kind = DiffKind::missing, .id = id, .key = key, .columns = {}};
  if (!read_row) return diff;
  if (!write_row) {
    diff.kind = DiffKind::extra;
    return diff;
  }
  diff.columns = differing_columns(*write_row, read_row->values);
  if (diff.columns.empty()) return std::nullopt;
  diff.kind = DiffKind::different;
  return diff;
}

std::uint64_t TableReport::count(DiffKind kind) const {
  return static_cast<std::uint64_t>(
      std::count_if(diffs.begin(), diffs.end(), [kind](const KeyDiff& diff) { return diff.kind == kind; }));
}

std::uint64_t Report::differences() const {
  std::uint64_t total = 0;
  for (const auto& projection : projections) {
    for (const auto& table : projection.tables) total += table.diffs.size();
  }
  return total;
}

bool Report::failed() const {
  for (const auto& projection : projections) {
    for (const auto& table : projection.tables) {
      if (!table.error.empty()) return true;
    }
  }
  return false;
}

namespace {

constexpr DiffKind kKinds[] = {DiffKind::missing, DiffKind::extra, DiffKind::different};

std::string key_text(const KeyDiff& diff) { return canonical_json(diff.key); }

void render_diffs(std::string& out, const std::vector<KeyDiff>& diffs, const Style& style, std::size_t limit,
                  std::string_view indent) {
  for (const DiffKind kind : kKinds) {
    std::size_t shown = 0;
    std::size_t total = 0;
    for (const auto& diff : diffs) {
      if (diff.kind != kind) continue;
      ++total;
      if (shown >= limit) continue;
      ++shown;
      std::string line = fmt::format("{}{:<10} {}", indent, to_string(kind), key_text(diff));
      if (!diff.columns.empty()) line += fmt::format("  columns: {}", fmt::join(diff.columns, ", "));
      out += style.red(line) + "\n";
    }
    if (total > shown)
      out += fmt::format("{}... and {} more {}\n", indent,
                         format_count(static_cast<std::int64_t>(total - shown)), to_string(kind));
  }
}

json diffs_json(const std::vector<KeyDiff>& diffs, std::size_t limit) {
  json out = json::object();
  for (const DiffKind kind : kKinds) {
    json list = json::array();
    std::uint64_t total = 0;
    for (const auto& diff : diffs) {
      if (diff.kind != kind) continue;
      ++total;
      if (list.size() >= limit) continue;
      json entry = {{"key", diff.key}, {"id", diff.id}};
      if (kind == DiffKind::different) entry["columns"] = diff.columns;
      list.push_back(std::move(entry));
    }
    out[std::string(to_string(kind))] = {
        {"count", total}, {"keys", std::move(list)}, {"more", total - std::min<std::uint64_t>(total, limit)}};
  }
  return out;
}

std::string count_text(std::uint64_t value) { return format_count(static_cast<std::int64_t>(value)); }

}  // namespace

std::string render_human(const Report& report, const Style& style, std::size_t limit) {
  std::string out;
  if (report.snapshot_lsn)
    out += style.dim(fmt::format("write snapshot at {}\n", report.snapshot_lsn->to_string()));
  std::vector<const ProjectionReport*> skipped;
  for (const auto& projection : report.projections) {
    if (!projection.verifiable) {
      skipped.push_back(&projection);
      continue;
    }
    out +=
        style.bold(fmt::format("{} ({}, target {})", projection.name, projection.kind, projection.target)) +
        "\n";
    for (const auto& table : projection.tables) {
      out += fmt::format("  {} -> {}\n", table.table, table.target);
      if (!table.error.empty()) {
        out += style.red(fmt::format("    could not verify: {}", table.error)) + "\n";
        continue;
      }
      out += fmt::format("    rows: {} in the write database, {} in the read store\n",
                         count_text(table.write_rows), count_text(table.read_rows));
      out += fmt::format(
          "    chunks: {} compared, {} with different digests; {} read-store keys checked for extras\n",
          count_text(table.chunks), count_text(table.chunks_different), count_text(table.extra_keys_scanned));
      if (table.newer > 0)
        out += fmt::format("    {} row(s) newer in the read store than the snapshot (not differences)\n",
                           count_text(table.newer));
      if (table.rechecked > 0)
        out += fmt::format("    {} key(s) re-checked during the settle time, {} agreed (lag)\n",
                           count_text(table.rechecked), count_text(table.settled));
      if (table.repair_attempted) {
        out += fmt::format("    repair: {} key(s) re-published ({} rows, {} deletes), {} now agree\n",
                           count_text(table.diffs_before_repair.size()), count_text(table.repair_rows),
                           count_text(table.repair_deletes), count_text(table.repaired));
      }
      if (table.diffs.empty()) {
        out += "    " + style.green("no differences") + "\n";
      } else {
        out += style.red(fmt::format(
                   "    {} difference(s): {} missing, {} extra, {} different", count_text(table.diffs.size()),
                   count_text(table.count(DiffKind::missing)), count_text(table.count(DiffKind::extra)),
                   count_text(table.count(DiffKind::different)))) +
               "\n";
        render_diffs(out, table.diffs, style, limit, "      ");
      }
    }
  }
  for (const auto* projection : skipped) {
    out += style.yellow(fmt::format("not verifiable: {} ({}): {}", projection->name, projection->kind,
                                    projection->reason)) +
           "\n";
  }
  const auto total = report.differences();
  if (report.failed()) {
    out += style.red("some tables could not be verified") + "\n";
  } else if (total == 0) {
    out += style.green("no differences") + "\n";
  } else {
    out += style.red(fmt::format("{} difference(s) remain", count_text(total))) + "\n";
  }
  return out;
}

json render_json(const Report& report, std::size_t limit) {
  json projections = json::array();
  for (const auto& projection : report.projections) {
    json entry = {{"name", projection.name},
                  {"sink", projection.sink},
                  {"kind", projection.kind},
                  {"target", projection.target},
                  {"verifiable", projection.verifiable}};
    if (!projection.verifiable) {
      entry["reason"] = projection.reason;
      projections.push_back(std::move(entry));
      continue;
    }
    json tables = json::array();
    for (const auto& table : projection.tables) {
      json t = {{"table", table.table},
                {"target", table.target},
                {"write_rows", table.write_rows},
                {"read_rows", table.read_rows},
                {"chunks", table.chunks},
                {"chunks_different", table.chunks_different},
                {"extra_keys_scanned", table.extra_keys_scanned},
                {"newer", table.newer},
                {"rechecked", table.rechecked},
                {"settled", table.settled},
                {"differences", table.diffs.size()},
                {"error", table.error.empty() ? json(nullptr) : json(table.error)}};
      t.update(diffs_json(table.diffs, limit));
      if (table.repair_attempted) {
        t["repair"] = {{"keys", table.diffs_before_repair.size()},
                       {"rows", table.repair_rows},
                       {"deletes", table.repair_deletes},
                       {"repaired", table.repaired},
                       {"before", diffs_json(table.diffs_before_repair, limit)}};
      }
      tables.push_back(std::move(t));
    }
    entry["tables"] = std::move(tables);
    projections.push_back(std::move(entry));
  }
  return {{"snapshot_lsn", report.snapshot_lsn ? json(report.snapshot_lsn->to_string()) : json(nullptr)},
          {"settle_seconds", report.settle_seconds},
          {"repair", report.repair},
          {"differences", report.differences()},
          {"ok", report.differences() == 0 && !report.failed()},
          {"projections", std::move(projections)}};
}

}  // namespace syncline::ctl::verify
