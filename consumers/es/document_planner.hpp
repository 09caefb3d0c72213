// DocumentPlanner: turns a batch of consumed events into the search engine's steps (index, delete,
// delete-older) with external versions, from the es_projector mirror and mapping configuration.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"
#include "common/json_path.hpp"
#include "consumers/es/bulk_action.hpp"

namespace syncline::es_projector {

// The version of every write an event causes: its source_version ((epoch << 56) | commit LSN, see
// common/envelope.hpp). Commit order is the order a key's events reach us in, and events of one
// transaction share it; external_gte accepts an equal version, so the later of those wins.
// Throws std::invalid_argument (saying why) when the envelope has no valid commit LSN, one that is
// 0/0, or an epoch or LSN that does not make a version.
std::int64_t event_version(const nlohmann::json& envelope);
// source.seq (0 when absent): orders the changes of one transaction, e.g. rows against a truncate.
std::int64_t event_seq(const nlohmann::json& envelope);

// Owned by the es-projector service and used from its consumer thread only. Holds nothing
// between batches: what earlier batches wrote lives in the engine and is read through the
// DocumentLookup.
//
// Mirrors: a row change of a configured table indexes `after` under _id = its primary key (the
// Kafka key: the value of a one-column key as text, else the key's canonical JSON), deletes on
// 'd', and a 't' becomes a DeleteOlder of the whole index. An update that left TOASTed columns out
// keeps their stored values (a partial update, below).
//
// Mappings: an event whose type a mapping lists writes the document at its `id` path: `index`
// builds it from the configured fields, `update` merges those fields into the stored document
// (partial), `delete` removes it. A type may be mapped by several mappings: one step per index.
//
// Partial updates cannot carry an external version, so they are planned as whole documents: the
// stored document (from earlier in the batch, else one DocumentLookup::fetch per plan() for all
// that need it) with the new values on top. One older than the stored document is `stale`; one
// with nothing stored indexes the new values alone.
class DocumentPlanner {
 public:
  // Throws std::invalid_argument naming the mirror or mapping (and event types) that is wrong: a
  // bad JSON path, a path outside the envelope, a reserved or missing field, a type mapped twice.
  DocumentPlanner(const EsProjectorConfig& config, const std::string& topic_prefix);

  // Every topic to subscribe to: the mirrored tables' row-change topics, then the mappings'.
  const std::vector<std::string>& topics() const { return topics_; }

  // Whether a record is worth parsing: any record of a mirrored topic, and on a mapping's topic
  // those whose type a mapping lists. No allocation.
  bool wants(std::string_view topic, std::string_view type) const;

  // Every event ends up in the steps (in batch order), or in rejected, or in skipped, or in stale;
  // an event with several targets (indices) may have steps for some and be stale for others, and
  // is then listed in stale too. An event is rejected whole: none of its steps are planned.
  // Throws what lookup.fetch() throws (nothing is planned then; the caller retries the batch).
  Plan plan(std::span<const Event* const> events, DocumentLookup& lookup) const;

 private:
  struct Mirror {
    TableName table;
    std::string index;
    bool sole_writer = false;  // no other mirror or mapping writes `index`
  };
  struct Field {
    std::string name;
    JsonPath path;
  };
  struct Mapping {
    std::string index;
    EsAction action = EsAction::index;
    JsonPath id;
    std::vector<Field> fields;
    std::string label;  // "mapping 1 (index messages)", for reasons
    // An `index` action into an index some `update` action also writes: its documents may hold a
    // merge, so the write is checked against the stored document (see plan()).
    bool index_has_updates = false;
  };
  // string_view lookups without building a std::string per record.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  template <typename T>
  using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;
  struct Route {
    std::vector<std::size_t> mirrors;           // into mirrors_
    StringMap<std::vector<std::size_t>> types;  // event type -> into mappings_, config order
  };
  struct Intent;

  void add_topic(const std::string& topic);
  // The event's writes, or throws std::invalid_argument with the reason to reject it.
  void intents_of(const Event& event, const Route& route, std::vector<Intent>& out) const;
  void mirror_intents(const Event& event, const Mirror& mirror, std::int64_t version, std::int64_t seq,
                      std::vector<Intent>& out) const;
  void mapping_intents(const Event& event, const Mapping& mapping, std::int64_t version, std::int64_t seq,
                       std::vector<Intent>& out) const;

  std::vector<Mirror> mirrors_;
  std::vector<Mapping> mappings_;
  std::vector<std::string> topics_;
  StringMap<Route> routes_;
};

}  // namespace syncline::es_projector
