// syncline-ctl verify, the pure part: comparing rows in the pipeline's JSON representation, chunk
// digests, the differences found and the report (human and --json). No I/O: unit-tested alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl::verify {

// One row of a store in the representation the producer gives it (producer/value_mapping.cpp):
// column -> JSON value; position columns (_syncline_*, syncline_version) already removed.
struct StoredRow {
  nlohmann::json values = nlohmann::json::object();
  // The source position the read store recorded for the row (_syncline_lsn, syncline_version);
  // nullopt on the write side and when the store has none.
  std::optional<Lsn> position;
};

// Whether a write-side value and a read-side value mean the same. Equal JSON is equal (numbers by
// value, objects whatever their key order); a string on one side also equals the other side's
// JSON when it parses to it ("5" in a text column of the mirror and 5 on the write side: a column
// the mirror created as text before it saw a number), since the pipeline wrote that text.
bool values_equal(const nlohmann::json& write_value, const nlohmann::json& read_value);

// The columns whose values differ, sorted; a column absent on one side counts as null there.
std::vector<std::string> differing_columns(const nlohmann::json& write_row, const nlohmann::json& read_row);

// Order-sensitive 64-bit FNV-1a digest of a chunk: per row its id and its canonical JSON without
// null columns. Equal chunks give equal digests; a difference in representation only (see
// values_equal) gives different digests, and the rows are then compared one by one.
class ChunkDigest {
 public:
  void add(const std::string& id, const nlohmann::json& values);
  void add_absent(const std::string& id);  // the id has no row on this side
  std::uint64_t value() const { return hash_; }

 private:
  void mix(std::string_view bytes);
  std::uint64_t hash_ = 14695981039346656037ULL;
};

enum class DiffKind { missing, extra, different };
std::string_view to_string(DiffKind kind);

struct KeyDiff {
  DiffKind kind = DiffKind::missing;
  std::string id;                    // the key's id in the read store (canonical JSON, or the _id)
  nlohmann::json key;                // primary-key columns -> values, as in the Kafka key
  std::vector<std::string> columns;  // different: the columns that differ
};

// A chunk of write rows in key order (ids unique) against what the read store holds for the same
// ids. Read rows whose position is above `snapshot` were written after the write snapshot: not a
// difference. `newer` counts them.
struct ChunkResult {
  bool digest_equal = true;
  std::vector<KeyDiff> diffs;  // missing and different, in chunk order
  std::uint64_t newer = 0;
};
struct WriteRow {
  std::string id;
  nlohmann::json key;
  nlohmann::json values;
};
ChunkResult compare_chunk(const std::vector<WriteRow>& write_rows,
                          const std::map<std::string, StoredRow>& read_rows, std::optional<Lsn> snapshot);

// One key compared again (settle, repair): the write row now (nullopt: deleted) and the read row
// now. nullopt: the two agree (or the read row is newer than `snapshot`).
std::optional<KeyDiff> compare_key(const std::string& id, const nlohmann::json& key,
                                   const std::optional<nlohmann::json>& write_row,
                                   const std::optional<StoredRow>& read_row, std::optional<Lsn> snapshot);

// ---- the report ----

struct TableReport {
  std::string table;   // the write table, schema.table
  std::string target;  // read schema.table, or the index alias
  std::uint64_t write_rows = 0;
  std::uint64_t read_rows = 0;
  std::uint64_t chunks = 0;
  std::uint64_t chunks_different = 0;
  std::uint64_t extra_keys_scanned = 0;  // read-store keys checked against the write snapshot
  std::uint64_t newer = 0;               // rows skipped because the read store is ahead of the snapshot
  std::uint64_t rechecked = 0;           // keys re-read during the settle time
  std::uint64_t settled = 0;             // of those, how many agreed on a re-read (lag)
  std::vector<KeyDiff> diffs;            // what still differs
  // --repair
  bool repair_attempted = false;
  std::uint64_t repair_rows = 0;     // rows the targeted snapshot re-published
  std::uint64_t repair_deletes = 0;  // deletes it published (keys without a write row)
  std::uint64_t repaired = 0;        // keys that agree after the repair
  std::vector<KeyDiff> diffs_before_repair;
  std::string error;  // set when this table could not be verified (the report says why)

  std::uint64_t count(DiffKind kind) const;
};

struct ProjectionReport {
  std::string name;
  std::string sink;  // "pg" | "es"
  std::string kind;  // to_string(ProjectionKind)
  std::string target;
  bool verifiable = true;
  std::string reason;  // why not verifiable
  std::vector<TableReport> tables;
};

struct Report {
  std::optional<Lsn> snapshot_lsn;
  double settle_seconds = 0;
  bool repair = false;
  std::vector<ProjectionReport> projections;

  std::uint64_t differences() const;  // keys still differing, over every table
  bool failed() const;                // a table could not be verified
};

// `limit`: keys listed per table and kind before "... and N more" (the same in --json, whose
// counts are always complete).
std::string render_human(const Report& report, const Style& style, std::size_t limit);
nlohmann::json render_json(const Report& report, std::size_t limit);

}  // namespace syncline::ctl::verify
