// JSON form of SourcePosition, as stored in the position topic.
#include "producer/source_position.hpp"

#include <nlohmann/json.hpp>

namespace syncline::producer {

std::string encode_position(const SourcePosition& position) {
  nlohmann::ordered_json json;
  json["commit_lsn"] = position.commit_lsn.to_string();
  json["end_lsn"] = position.end_lsn.to_string();
  json["seq"] = position.seq;
  json["complete"] = position.complete;
  json["snapshot_done"] = position.snapshot_done;
  return json.dump();
}

std::optional<SourcePosition> decode_position(std::string_view text) {
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  try {
    SourcePosition position;
    const auto commit = Lsn::parse(json.at("commit_lsn").get<std::string>());
    const auto end = Lsn::parse(json.at("end_lsn").get<std::string>());
    if (!commit || !end) return std::nullopt;
    position.commit_lsn = *commit;
    position.end_lsn = *end;
    // get<std::uint64_t>() would turn -1 into 2^64-1 and 1.5 into 1: a seq that skips real changes.
    if (!json.at("seq").is_number_unsigned()) return std::nullopt;
    position.seq = json.at("seq").get<std::uint64_t>();
    position.complete = json.at("complete").get<bool>();
    position.snapshot_done = json.value("snapshot_done", false);
    return position;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace syncline::producer
