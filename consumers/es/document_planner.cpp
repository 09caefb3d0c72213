// DocumentPlanner: configuration checks, routing, and the two-pass batch planner (collect what
// partial updates need from the engine, fetch it once, then build the steps).
#include "consumers/es/document_planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include "common/envelope.hpp"
#include "common/logging.hpp"
#include "common/lsn.hpp"
#include "common/topic_names.hpp"

namespace syncline::es_projector {
namespace {

using nlohmann::json;
using DocumentKey = std::pair<std::string, std::string>;  // (index, _id)

std::shared_ptr<spdlog::logger> logger() { return log::get("es-projector"); }

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// A configured path: parsed, and checked to start at an envelope field.
JsonPath envelope_path(const std::string& text, const std::string& where) {
  try {
    JsonPath path = parse_json_path(text);
    check_envelope_path(path);
    return path;
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(where + ": " + error.what());
  }
}

const json* member(const json& object, std::string_view name) {
  if (!object.is_object()) return nullptr;
  const auto found = object.find(name);
  return found == object.end() ? nullptr : &*found;
}

const std::string* string_member(const json& object, std::string_view name) {
  const json* value = member(object, name);
  return value != nullptr && value->is_string() ? &value->get_ref<const std::string&>() : nullptr;
}

std::string describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return std::string(value.type_name()) + " " + text;
}

// A document _id from a JSON value: a string as it is, a number as its JSON text.
std::optional<std::string> id_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) return value.dump();
  return std::nullopt;
}

// The _id of a row from its Kafka key, the canonical JSON of its primary-key columns: the value
// itself for a one-column key (what people search by), the key's JSON for a composite one.
std::string mirror_id(const Event& event) {
  if (!event.key) {
    throw std::invalid_argument(
        "a mirror needs a primary key, and the record has no Kafka key (the table has no primary key; "
        "give it one, or map its events instead)");
  }
  const json key = json::parse(*event.key, nullptr, false);
  if (!key.is_object() || key.empty()) {
    throw std::invalid_argument("a mirror needs a primary key, and the Kafka key " + std::string(*event.key) +
                                " is not a JSON object of primary-key columns");
  }
  if (key.size() == 1) {
    const json& value = key.begin().value();
    if (value.is_null()) throw std::invalid_argument("the primary key in the Kafka key is null");
    return value.is_string() ? value.get<std::string>() : value.dump();
  }
  return canonical_json(key);
}

}  // namespace

std::int64_t event_version(const json& envelope) {
  const json* source = member(envelope, "source");
  const std::string* text = source != nullptr ? string_member(*source, "commit_lsn") : nullptr;
  if (text == nullptr)
    throw std::invalid_argument("the envelope has no source.commit_lsn to version its writes by");
  const auto lsn = Lsn::parse(*text);
  if (!lsn) throw std::invalid_argument("source.commit_lsn '" + *text + "' is not an LSN");
  if (!lsn->is_valid()) {
    throw std::invalid_argument("source.commit_lsn " + lsn->to_string() + " cannot be a version (it must be above 0/0)");
  }
  std::uint64_t version = 0;
  try {
    version = source_version_of(envelope);
  } catch (const EnvelopeError& error) {
    throw std::invalid_argument(error.what());
  }
  // The engine's versions are positive int64s; epoch <= 127 keeps (epoch << 56) | lsn below 2^63.
  if (version > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw std::invalid_argument(fmt::format("source version {} does not fit the engine's int64 versions", version));
  }
  return static_cast<std::int64_t>(version);
}

std::int64_t event_seq(const json& envelope) {
  const json* source = member(envelope, "source");
  const json* seq = source != nullptr ? member(*source, "seq") : nullptr;
  if (seq == nullptr || seq->is_null()) return 0;
  if (!seq->is_number_unsigned() && !(seq->is_number_integer() && seq->get<std::int64_t>() >= 0)) {
    throw std::invalid_argument("source.seq is " + describe(*seq) + ", not a non-negative integer");
  }
  const auto value = seq->get<std::uint64_t>();
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw std::invalid_argument(fmt::format("source.seq {} does not fit an int64", value));
  return static_cast<std::int64_t>(value);
}

// One write an event causes, before partial updates are resolved against the stored documents.
struct DocumentPlanner::Intent {
  enum class Kind { index, partial, remove, delete_older };
  Kind kind = Kind::index;
  std::string index;
  std::string id;
  std::int64_t version = 0;
  std::int64_t seq = 0;
  std::string table;               // a mirror's "schema.table"
  std::optional<std::string> key;  // a mapping's Kafka key (kKeyField)
  bool untagged_too = false;       // delete_older: see DeleteOlder
  json document;  // index: the whole document; partial: the new values (without kVersionField)
  // A partial row change keeps only these (TOASTed, unchanged) columns of the stored row, so a
  // column dropped from the table does not live on; a partial mapping keeps every stored field.
  std::optional<std::vector<std::string>> kept_columns;
  bool row = false;  // from a mirror: a missing base means a gap, not an ordinary first write
  bool check_merge = false;  // index: a mapping's, into an index partial updates write too
  std::size_t event = 0;
};

DocumentPlanner::DocumentPlanner(const EsProjectorConfig& config, const std::string& topic_prefix) {
  std::set<std::pair<std::string, std::string>> mirrored;  // (table, index)
  for (const EsMirrorConfig& mirror : config.mirror) {
    const std::string label = fmt::format("mirror of {}.{}", mirror.table.schema, mirror.table.table);
    if (mirror.table.schema.empty() || mirror.table.table.empty()) {
      throw std::invalid_argument(label + ": the table needs a schema and a name");
    }
    if (mirror.index.empty()) throw std::invalid_argument(label + ": no index");
    if (!mirrored.insert({mirror.table.schema + "." + mirror.table.table, mirror.index}).second) {
      throw std::invalid_argument(label + ": mirrored into index " + mirror.index + " twice");
    }
    // Tables whose names sanitize alike share a topic; plan() tells them apart by event source.
    const std::string topic = row_change_topic_name(topic_prefix, mirror.table.schema, mirror.table.table);
    add_topic(topic);
    routes_[topic].mirrors.push_back(mirrors_.size());
    mirrors_.push_back({mirror.table, mirror.index, false});
  }

  for (std::size_t m = 0; m < config.mappings.size(); ++m) {
    const EsMappingConfig& mapping = config.mappings[m];
    const std::string label = fmt::format("mapping {} (index {})", m + 1, mapping.index);
    if (mapping.index.empty()) throw std::invalid_argument(label + ": no index");
    if (mapping.topics.empty()) throw std::invalid_argument(label + ": no topics to read");
    if (mapping.events.empty()) throw std::invalid_argument(label + ": no events");
    std::set<std::string> types;
    const std::size_t first = mappings_.size();
    for (std::size_t e = 0; e < mapping.events.size(); ++e) {
      const EsEventMappingConfig& event = mapping.events[e];
      const std::string where = fmt::format("{}, event {} (types {})", label, e + 1, join(event.types));
      if (event.types.empty()) throw std::invalid_argument(where + ": no event types");
      for (const auto& type : event.types) {
        if (type.empty()) throw std::invalid_argument(where + ": an empty event type");
        // Two events of one mapping for a type would write one document twice, in an order
        // nobody chose.
        if (!types.insert(type).second) {
          throw std::invalid_argument(fmt::format("{}: type {} is mapped twice", where, type));
        }
      }
      Mapping out{mapping.index, event.action, envelope_path(event.id, where + ", id"), {}, label};
      if (out.id.optional) throw std::invalid_argument(where + ", id: a document id cannot be optional");
      if (event.action == EsAction::remove && !event.fields.empty()) {
        throw std::invalid_argument(where + ": a delete writes no fields");
      }
      if (event.action != EsAction::remove && event.fields.empty()) {
        throw std::invalid_argument(where + ": no fields to write");
      }
      std::set<std::string_view> names;
      for (const auto& [name, path] : event.fields) {
        const std::string field_where = fmt::format("{}, field {}", where, name);
        if (name.empty()) throw std::invalid_argument(where + ": a field without a name");
        if (std::ranges::find(kBookkeepingFields, name) != kBookkeepingFields.end()) {
          throw std::invalid_argument(field_where + ": the name is reserved for Syncline's bookkeeping");
        }
        if (!names.insert(name).second) throw std::invalid_argument(field_where + ": written twice");
        out.fields.push_back({name, envelope_path(path, field_where)});
      }
      mappings_.push_back(std::move(out));
    }
    for (const auto& topic : mapping.topics) {
      if (topic.empty()) throw std::invalid_argument(label + ": an empty topic name");

      add_topic(topic);
      Route& route = routes_[topic];
      for (std::size_t e = 0; e < mapping.events.size(); ++e) {
        for (const auto& type : mapping.events[e].types) route.types[type].push_back(first + e);
      }
    }
  }
  for (Mapping& mapping : mappings_) {
    mapping.index_has_updates =
        mapping.action == EsAction::index && std::ranges::any_of(mappings_, [&](const Mapping& other) {
          return other.action == EsAction::update && other.index == mapping.index;
        });
  }
  // A mirror that is its index's only writer may also truncate documents without kTableField
  // (written before the field existed); in a shared index those could be anyone's.
  for (Mirror& mirror : mirrors_) {
    const auto writes = [&](const std::string& index) { return index == mirror.index; };
    const auto mirrors_there = std::count_if(mirrors_.begin(), mirrors_.end(),
                                             [&](const Mirror& other) { return writes(other.index); });
    const bool mapped_there = std::any_of(mappings_.begin(), mappings_.end(),
                                          [&](const Mapping& mapping) { return writes(mapping.index); });
    mirror.sole_writer = mirrors_there == 1 && !mapped_there;
  }
}

void DocumentPlanner::add_topic(const std::string& topic) {
  if (std::find(topics_.begin(), topics_.end(), topic) == topics_.end()) topics_.push_back(topic);
}

bool DocumentPlanner::wants(std::string_view topic, std::string_view type) const {
  const auto route = routes_.find(topic);
  if (route == routes_.end()) return false;
  return !route->second.mirrors.empty() || route->second.types.contains(type);
}

void DocumentPlanner::intents_of(const Event& event, const Route& route, std::vector<Intent>& out) const {
  const json& envelope = *event.value;
  std::vector<const Mirror*> mirrors;
  if (!route.mirrors.empty()) {
    const json* source = member(envelope, "source");
    const std::string* schema = source != nullptr ? string_member(*source, "schema") : nullptr;
    const std::string* table = source != nullptr ? string_member(*source, "table") : nullptr;
    if (schema == nullptr || table == nullptr) {
      throw std::invalid_argument("a row-change topic's event without source.schema and source.table");
    }
    for (const std::size_t m : route.mirrors) {
      if (mirrors_[m].table.schema == *schema && mirrors_[m].table.table == *table)
        mirrors.push_back(&mirrors_[m]);
    }
  }
  const auto typed = route.types.find(event.type);
  const bool mapped = typed != route.types.end();
  // A table that is not mirrored but shares a (sanitized) topic name with one that is.
  if (mirrors.empty() && !mapped) return;

  const std::int64_t version = event_version(envelope);
  const std::int64_t seq = event_seq(envelope);
  for (const Mirror* mirror : mirrors) {
    try {
      mirror_intents(event, *mirror, version, seq, out);
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument(fmt::format("mirror of {}.{} (index {}): {}", mirror->table.schema,
                                              mirror->table.table, mirror->index, error.what()));
    }
  }
  if (mapped) {
    // A truncate comes once per partition; a mapping is not a version-floored mirror and applies
    // only the copy on partition 0.
    if (is_extra_truncate_copy(envelope, event.partition)) return;
    for (const std::size_t m : typed->second) mapping_intents(event, mappings_[m], version, seq, out);
  }
}

void DocumentPlanner::mirror_intents(const Event& event, const Mirror& mirror, std::int64_t version,
                                     std::int64_t seq, std::vector<Intent>& out) const {
  const json& envelope = *event.value;
  const std::string* code = string_member(envelope, "op");
  const std::optional<Op> op =
      code != nullptr && code->size() == 1 ? op_from_code(code->front()) : std::nullopt;
  if (!op) {
    throw std::invalid_argument(code == nullptr ? "a row change without op" : "unknown op '" + *code + "'");
  }
  Intent intent;
  intent.index = mirror.index;
  intent.version = version;
  intent.seq = seq;
  intent.table = mirror.table.schema + "." + mirror.table.table;
  intent.event = event.index;
  intent.row = true;
  if (*op == Op::truncate) {
    // Every partition's copy: each removes what its partition wrote before the truncate.
    intent.kind = Intent::Kind::delete_older;
    intent.untagged_too = mirror.sole_writer;
    out.push_back(std::move(intent));
    return;
  }
  intent.id = mirror_id(event);
  if (*op == Op::remove) {
    intent.kind = Intent::Kind::remove;
    out.push_back(std::move(intent));
    return;
  }
  const json* after = member(envelope, "after");
  if (after == nullptr || !after->is_object()) {
    throw std::invalid_argument(
        fmt::format("a row change with op '{}' needs an 'after' object", op_code(*op)));
  }
  intent.kind = Intent::Kind::index;
  intent.document = *after;
  if (*op == Op::update) {
    const json* source = member(envelope, "source");
    const json* unchanged = source != nullptr ? member(*source, "unchanged_toast") : nullptr;
    if (unchanged != nullptr && unchanged->is_array() && !unchanged->empty()) {
      std::vector<std::string> columns;
      for (const json& column : *unchanged) {
        if (!column.is_string()) {
          throw std::invalid_argument("source.unchanged_toast holds " + describe(column) +
                                      ", not a column name");
        }
        columns.push_back(column.get<std::string>());
      }
      intent.kind = Intent::Kind::partial;
      intent.kept_columns = std::move(columns);
    }
  }
  out.push_back(std::move(intent));
}

void DocumentPlanner::mapping_intents(const Event& event, const Mapping& mapping, std::int64_t version,
                                      std::int64_t seq, std::vector<Intent>& out) const {
  const json& envelope = *event.value;
  const std::string where = mapping.label + ", type " + std::string(event.type);
  Intent intent;
  intent.index = mapping.index;
  intent.version = version;
  intent.seq = seq;
  intent.event = event.index;
  if (event.key) intent.key = std::string(*event.key);
  const json* id = resolve(envelope, mapping.id);
  if (id == nullptr) throw std::invalid_argument(where + ": missing id at JSON path " + mapping.id.text);
  auto text = id_text(*id);
  if (!text) {
    throw std::invalid_argument(where + ": the id at JSON path " + mapping.id.text + " is " + describe(*id) +
                                ", not a string or number");
  }
  if (text->empty())
    throw std::invalid_argument(where + ": the id at JSON path " + mapping.id.text + " is empty");
  intent.id = std::move(*text);
  if (mapping.action == EsAction::remove) {
    intent.kind = Intent::Kind::remove;
    out.push_back(std::move(intent));
    return;
  }
  intent.kind = mapping.action == EsAction::update ? Intent::Kind::partial : Intent::Kind::index;
  intent.check_merge = mapping.index_has_updates && intent.key.has_value();
  intent.document = json::object();
  for (const Field& field : mapping.fields) {
    const json* value = resolve(envelope, field.path);
    if (value == nullptr) {
      if (field.path.optional) continue;  // left out: an index drops it, an update keeps the stored one
      throw std::invalid_argument(where + ", field " + field.name + ": missing JSON path " + field.path.text);
    }
    intent.document[field.name] = *value;
  }
  out.push_back(std::move(intent));
}

Plan DocumentPlanner::plan(std::span<const Event* const> events, DocumentLookup& lookup) const {
  Plan plan;

  // Pass 1: what each event writes, and which stored documents the partial updates need: those
  // of documents that no earlier event of the batch writes (for the others, the batch knows best).
  std::vector<Intent> intents;
  std::vector<DocumentKey> to_fetch;
  std::set<DocumentKey> written;
  std::vector<Intent> mine;
  for (const Event* event : events) {
    const auto route = routes_.find(event->topic);
    if (route == routes_.end()) {
      plan.skipped.push_back(event->index);
      continue;
    }
    mine.clear();
    try {
      if (event->value == nullptr) throw std::invalid_argument("no parsed envelope");
      intents_of(*event, route->second, mine);
    } catch (const std::invalid_argument& error) {
      plan.rejected.emplace_back(event->index, error.what());
      continue;
    }
    if (mine.empty()) {
      plan.skipped.push_back(event->index);
      continue;
    }
    for (Intent& intent : mine) {
      if (intent.kind != Intent::Kind::delete_older) {
        DocumentKey key{intent.index, intent.id};
        // A mapping's whole-document write needs the stored one too: to tell an unordered write
        // (older than a merge another key made) from a stale one.
        const bool needs_base = intent.kind == Intent::Kind::partial || intent.check_merge;
        if (written.insert(key).second && needs_base) to_fetch.push_back(std::move(key));
      }
      intents.push_back(std::move(intent));
    }
  }

  std::map<DocumentKey, std::optional<CurrentDocument>> fetched;
  if (!to_fetch.empty()) fetched = lookup.fetch(to_fetch);

  // Pass 2: the steps. The overlay is what the engine will hold for a document once the steps so
  // far are applied (nullopt: deleted), with the same external_gte rule the engine applies.
  struct Stored {
    std::optional<json> source;
    std::int64_t version = 0;
    std::int64_t seq = 0;
    std::string table;               // kTableField ("" when absent)
    std::optional<std::string> key;  // kKeyField
    bool merged = false;             // kMergedField
  };
  using Position = std::pair<std::int64_t, std::int64_t>;  // (version, seq)
  std::map<DocumentKey, Stored> overlay;
  // (index, table) -> the highest truncate planned in this batch; table "" for untagged documents.
  std::map<std::pair<std::string, std::string>, Position> truncated;
  std::set<std::size_t> stale;
  std::set<std::size_t> rejected;
  const auto write = [&](const DocumentKey& key, Stored stored) {
    const auto found = overlay.find(key);
    if (found == overlay.end()) {
      overlay.emplace(key, std::move(stored));
    } else if (stored.version >= found->second.version) {
      found->second = std::move(stored);
    }
  };
  const auto below = [](const Position& position, const Position& floor) { return position < floor; };
  const auto index_step = [&](const Intent& intent, json document, bool merged) {
    document[kVersionField] = intent.version;
    document[kSeqField] = intent.seq;
    if (intent.row) {
      document[kTableField] = intent.table;
    } else if (intent.key) {
      document[kKeyField] = *intent.key;
    } else {
      document.erase(kKeyField);  // merged from a document another key wrote
    }
    const bool marked = merged && !intent.row;  // rows are never merges of two writers
    if (marked) {
      document[kMergedField] = true;
    } else {
      document.erase(kMergedField);
    }
    plan.steps.emplace_back(BulkAction{BulkAction::Kind::index, intent.index, intent.id, intent.version,
                                       document.dump(), intent.event});
    write({intent.index, intent.id}, {std::move(document), intent.version, intent.seq, intent.table, intent.key, marked});
  };
  // What the engine holds for the intent's document once the steps so far are applied: the
  // batch's own writes first, else the lookup (nullptr: nothing known).
  const auto base_of = [&](const Intent& intent) -> Stored* {
    const DocumentKey key{intent.index, intent.id};
    if (const auto known = overlay.find(key); known != overlay.end()) return &known->second;
    const auto found = fetched.find(key);
    if (found == fetched.end() || !found->second) return nullptr;
    // The lookup saw the engine before this batch: a truncate of its table planned since
    // deletes it if it is below the truncate.
    const json& source = found->second->source;
    const std::string* table = string_member(source, kTableField);
    const json* seq = member(source, kSeqField);
    const std::int64_t stored_seq = seq != nullptr && seq->is_number_integer() ? seq->get<std::int64_t>() : 0;
    const auto floor = truncated.find({intent.index, table != nullptr ? *table : std::string()});
    const bool truncated_since =
        floor != truncated.end() && below({found->second->version, stored_seq}, floor->second);
    return &overlay
                .emplace(key, Stored{truncated_since ? std::nullopt : std::optional<json>(source),
                                     found->second->version, stored_seq, table != nullptr ? *table : std::string(),
                                     found->second->key, found->second->merged})
                .first->second;
  };
  // A mapping's write from another Kafka key than the one that wrote the stored document.
  const auto other_key = [](const Intent& intent, const Stored& base) {
    return !intent.row && base.key && intent.key && *base.key != *intent.key;
  };
  // Older than the stored document: by version for the key that wrote it (its partition's order
  // is the commit order); from another key by (version, seq), so that two keys' events of one
  // transaction are ordered too.
  const auto older = [&](const Intent& intent, const Stored& base) {
    if (other_key(intent, base)) return below({intent.version, intent.seq}, {base.version, base.seq});
    return base.version > intent.version;
  };
  // An older write is stale (a replay of its key, or a whole document that ordered delivery
  // would have replaced anyway), unless ordered delivery would have combined it with the stored
  // document: a partial update from another key, or a whole document under another key's merge.
  // Nobody ordered those, so merging, replacing or skipping would each lose a write: the event
  // goes to the dead-letter topic, with all its targets.
  const auto skip_older = [&](const Intent& intent, const Stored& base) {
    if (!other_key(intent, base) || (intent.kind == Intent::Kind::index && !base.merged)) {
      stale.insert(intent.event);
      return;
    }
    rejected.insert(intent.event);
    stale.erase(intent.event);
    std::erase_if(plan.steps, [&](const Step& step) {
      return std::visit([&](const auto& planned) { return planned.event == intent.event; }, step);
    });
    plan.rejected.emplace_back(
        intent.event,
        fmt::format("index {} document {}: this {} (Kafka key {}, version {}, seq {}) is older than the stored "
                    "document (version {}, seq {}), which {} with another Kafka key ({}) wrote; events of different "
                    "keys are not ordered, so it cannot be applied or skipped safely. Fix: map ids that follow the "
                    "aggregate id (the Kafka key), or use `index` actions with the whole document; then re-apply "
                    "this event",
                    intent.index, intent.id, intent.kind == Intent::Kind::partial ? "partial update" : "document",
                    *intent.key, intent.version, intent.seq, base.version, base.seq,
                    base.merged ? "a partial update" : "an event", *base.key));
  };

  for (Intent& intent : intents) {
    if (rejected.contains(intent.event)) continue;  // its other targets
    switch (intent.kind) {
      case Intent::Kind::delete_older: {
        plan.steps.emplace_back(DeleteOlder{intent.index, intent.table, intent.version, intent.seq,
                                            intent.untagged_too, intent.event});
        const Position position{intent.version, intent.seq};
        const auto raise = [&](const std::string& table) {
          auto [floor, inserted] = truncated.try_emplace({intent.index, table}, position);
          if (!inserted) floor->second = std::max(floor->second, position);
        };
        raise(intent.table);
        if (intent.untagged_too) raise("");
        // The table's documents below the truncate are gone once it is applied.
        for (auto it = overlay.lower_bound({intent.index, ""});
             it != overlay.end() && it->first.first == intent.index; ++it) {
          const bool of_table =
              it->second.table == intent.table || (intent.untagged_too && it->second.table.empty());
          if (of_table && below({it->second.version, it->second.seq}, position)) it->second.source.reset();
        }
        break;
      }
      case Intent::Kind::remove:
        plan.steps.emplace_back(
            BulkAction{BulkAction::Kind::remove, intent.index, intent.id, intent.version, {}, intent.event});
        write({intent.index, intent.id}, {std::nullopt, intent.version, intent.seq, intent.table, intent.key});
        break;
      case Intent::Kind::index: {
        // Not sent when older: the engine would refuse an older version, but take an equal one of
        // an earlier seq.
        const Stored* base = intent.check_merge ? base_of(intent) : nullptr;
        if (base != nullptr && older(intent, *base)) {
          skip_older(intent, *base);
          break;
        }
        index_step(intent, std::move(intent.document), false);
        break;
      }
      case Intent::Kind::partial: {
        Stored* base = base_of(intent);
        if (base != nullptr && older(intent, *base)) {
          skip_older(intent, *base);
          break;
        }
        if (!base || !base->source || !base->source->is_object()) {
          if (intent.row) {
            logger()->warn(
                "index {} document {}: an update left TOASTed columns out and the document is not "
                "stored; indexing it without them",
                intent.index, intent.id);
          }
          index_step(intent, std::move(intent.document), true);
          break;
        }
        json document;
        if (intent.kept_columns) {
          document = std::move(intent.document);
          for (const auto& column : *intent.kept_columns) {
            const json* kept = member(*base->source, column);
            if (kept != nullptr && !document.contains(column)) document[column] = *kept;
          }
        } else {
          document = std::move(*base->source);
          for (auto& [name, value] : intent.document.items()) document[name] = std::move(value);
        }
        index_step(intent, std::move(document), true);
        break;
      }
    }
  }

  // stale lists events, once each, in batch order.
  plan.stale.assign(stale.begin(), stale.end());
  return plan;
}

}  // namespace syncline::es_projector
