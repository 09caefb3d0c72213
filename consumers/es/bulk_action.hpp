// What the es-projector sends to the search engine: bulk actions (and the rare request of its
// own, a truncate), planned from consumed events, and the outcome of each.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace syncline::es_projector {

// The document field that holds the source version of the last write, so that partial updates
// (which cannot carry an external version) are stale-proof too.
inline constexpr std::string_view kVersionField = "syncline_version";
// Beside it on mirror documents: the table ("schema.table") and the change's source.seq, so that a
// truncate deletes only its own table's documents, and only those below (version, seq) of it. On
// mapped documents the seq too: two Kafka keys' events of one transaction (one version) are
// ordered by it.
inline constexpr std::string_view kTableField = "syncline_table";
inline constexpr std::string_view kSeqField = "syncline_seq";
// On mapped documents: the Kafka key of the event that last wrote it. Events of one key are in
// one partition's order; a partial update older than the document from ANOTHER key cannot be
// ordered against it (dead-lettered, see DocumentPlanner).
inline constexpr std::string_view kKeyField = "syncline_key";
// On mapped documents a partial update wrote (merged onto the stored one, or created from its
// fields alone): true. A whole-document write from another key older than such a document cannot
// be ordered against the merge either (dead-lettered); older than a whole document, it is stale.
inline constexpr std::string_view kMergedField = "syncline_merged";
// Every field Syncline adds to a document: reserved in mappings, left out when comparing stores.
inline constexpr std::array<std::string_view, 5> kBookkeepingFields = {kVersionField, kTableField, kSeqField,
                                                                       kKeyField, kMergedField};

// One consumed Kafka record, as the planner sees it. Views into the batch: valid during plan().
struct Event {
  std::size_t index = 0;  // position in the batch
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string_view> key;    // the Kafka key (a row change's canonical JSON primary key)
  std::string_view type;                  // the syncline-event-type header ("" when absent)
  const nlohmann::json* value = nullptr;  // the parsed envelope; never null in plan()
};

// An index or delete of one document with an external version (version_type=external_gte).
struct BulkAction {
  enum class Kind { index, remove };
  Kind kind = Kind::index;
  std::string index;         // the alias
  std::string id;            // _id
  std::int64_t version = 0;  // from the source commit position
  std::string source;        // the document's JSON text (with kVersionField); empty for remove
  std::size_t event = 0;     // the batch index of the event it applies
};

// One copy of a truncate of a mirrored table: every document of `index` whose kTableField is
// `table` and whose (kVersionField, kSeqField) is below (version, seq) is deleted. Documents of
// other tables, mapped documents, and the table's newer rows stay. Every partition's copy is
// applied; each deletes what its partition wrote before the truncate, so the result does not
// depend on the order in which partitions are consumed.
struct DeleteOlder {
  std::string index;
  std::string table;         // "schema.table"
  std::int64_t version = 0;
  std::int64_t seq = 0;
  // Also documents without kTableField: only when this table is the index's sole writer, so that
  // documents written before kTableField existed are truncated too.
  bool untagged_too = false;
  std::size_t event = 0;
};

using Step = std::variant<BulkAction, DeleteOlder>;

// The document as the engine holds it now (for partial updates).
struct CurrentDocument {
  nlohmann::json source;  // _source
  std::int64_t version = 0;  // its kVersionField (0 when absent)
  std::optional<std::string> key;  // its kKeyField (absent: not written by a mapping of this version)
  bool merged = false;             // its kMergedField
};

// Reads documents by (index, id); nullopt for those that do not exist. Throws on transport
// errors (the caller retries the batch).
class DocumentLookup {
 public:
  virtual ~DocumentLookup() = default;
  virtual std::map<std::pair<std::string, std::string>, std::optional<CurrentDocument>> fetch(
      const std::vector<std::pair<std::string, std::string>>& documents) = 0;
};

// What plan() produced for a batch.
struct Plan {
  std::vector<Step> steps;  // in the order they must be applied
  std::vector<std::pair<std::size_t, std::string>> rejected;  // (event index, reason): dead letters
  std::vector<std::size_t> skipped;  // wanted topic, nothing to do (e.g. a type with no mapping)
  std::vector<std::size_t> stale;    // a partial update older than the stored document
};

// The outcome of one bulk item.
enum class ItemOutcome {
  done,    // 200/201, or 404 for a delete (nothing to delete)
  stale,   // 409: the engine holds a newer version; counted, not an error
  retry,   // 429, 502, 503, 504 (or a transport failure): send this item again later
  reject,  // 400-class mapping/parsing errors and other permanent ones: dead-letter the event
};

struct ItemResult {
  ItemOutcome outcome = ItemOutcome::done;
  long status = 0;
  std::string reason;  // the engine's error type and reason, for rejects and retries
};

}  // namespace syncline::es_projector
