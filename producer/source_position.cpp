// JSON form of SourcePosition, as stored in the position topic.
#include "producer/source_position.hpp"

#include <nlohmann/json.hpp>

namespace syncline::producer {
namespace {

using nlohmann::json;

std::string_view state_name(SnapshotProgress::State state) {
  switch (state) {
    case SnapshotProgress::State::none:
      return "none";
    case SnapshotProgress::State::running:
      return "running";
    case SnapshotProgress::State::done:
      return "done";
  }
  return "none";
}

std::optional<SnapshotProgress::State> state_from(std::string_view name) {
  if (name == "none") return SnapshotProgress::State::none;
  if (name == "running") return SnapshotProgress::State::running;
  if (name == "done") return SnapshotProgress::State::done;
  return std::nullopt;
}

// get<std::uint64_t>() would turn -1 into 2^64-1 and 1.5 into 1: a seq that skips real changes.
bool is_count(const json& value) { return value.is_number_unsigned(); }

}  // namespace

std::string encode_position(const SourcePosition& position) {
  nlohmann::ordered_json out;
  out["commit_lsn"] = position.commit_lsn.to_string();
  out["end_lsn"] = position.end_lsn.to_string();
  out["seq"] = position.seq;
  out["complete"] = position.complete;
  // Kept for readers of the older form (and people): true once the snapshot is done.
  out["snapshot_done"] = position.snapshot_done();
  nlohmann::ordered_json snapshot;
  snapshot["state"] = state_name(position.snapshot.state);
  if (position.snapshot.state == SnapshotProgress::State::running) {
    snapshot["table"] = position.snapshot.table;
    snapshot["last_key"] = position.snapshot.last_key ? *position.snapshot.last_key : json();
  }
  snapshot["rows"] = position.snapshot.rows;
  if (position.snapshot.replace) snapshot["replace"] = true;
  out["snapshot"] = std::move(snapshot);
  out["epoch"] = position.epoch;
  if (!position.source.system_id.empty()) {
    out["system_id"] = position.source.system_id;
    out["timeline"] = position.source.timeline;
  }
  if (position.last_published) {
    out["last_published"] = {{"commit_lsn", position.last_published->commit_lsn.to_string()},
                             {"xid", position.last_published->xid}};
  }
  if (position.fresh) out["fresh"] = true;
  return out.dump();
}

std::optional<SourcePosition> decode_position(std::string_view text) {
  const auto in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!in.is_object()) return std::nullopt;
  try {
    SourcePosition position;
    const auto commit = Lsn::parse(in.at("commit_lsn").get<std::string>());
    const auto end = Lsn::parse(in.at("end_lsn").get<std::string>());
    if (!commit || !end) return std::nullopt;
    position.commit_lsn = *commit;
    position.end_lsn = *end;
    if (!is_count(in.at("seq"))) return std::nullopt;
    position.seq = in.at("seq").get<std::uint64_t>();
    position.complete = in.at("complete").get<bool>();
    if (const auto it = in.find("snapshot"); it != in.end()) {
      const auto state = state_from(it->at("state").get<std::string>());
      if (!state) return std::nullopt;
      position.snapshot.state = *state;
      if (*state == SnapshotProgress::State::running) {
        if (!is_count(it->at("table"))) return std::nullopt;
        position.snapshot.table = it->at("table").get<std::size_t>();
        const auto& key = it->at("last_key");
        if (!key.is_null() && !key.is_object()) return std::nullopt;
        if (key.is_object()) position.snapshot.last_key = key;
      }
      if (!is_count(it->at("rows"))) return std::nullopt;
      position.snapshot.rows = it->at("rows").get<std::uint64_t>();
      position.snapshot.replace = it->value("replace", false);
    } else if (in.value("snapshot_done", false)) {
      // The older form: only whether the snapshot was done. A position written while it ran cannot
      // be told from one of `snapshot: never`; it is read as "none", so nothing is dropped or redone.
      position.snapshot.state = SnapshotProgress::State::done;
    }
    if (const auto it = in.find("snapshot_done"); it != in.end() && !it->is_boolean()) return std::nullopt;
    if (const auto it = in.find("epoch"); it != in.end()) {
      if (!is_count(*it) || it->get<std::uint64_t>() > 127) return std::nullopt;
      position.epoch = it->get<std::uint32_t>();
    }
    if (const auto it = in.find("system_id"); it != in.end()) {
      position.source.system_id = it->get<std::string>();
      if (!is_count(in.at("timeline"))) return std::nullopt;
      position.source.timeline = in.at("timeline").get<std::uint32_t>();
    }
    if (const auto it = in.find("last_published"); it != in.end()) {
      const auto lsn = Lsn::parse(it->at("commit_lsn").get<std::string>());
      if (!lsn || !is_count(it->at("xid"))) return std::nullopt;
      position.last_published = PublishedTransaction{*lsn, it->at("xid").get<std::uint64_t>()};
    }
    position.fresh = in.value("fresh", false);
    return position;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace syncline::producer
