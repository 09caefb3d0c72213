// Topic identity checks of the pg-projector: is the partition it reads still the one its stored
// position (syncline.offsets) was taken from, or was the topic deleted and recreated (or its log
// rewritten)? Pure decisions, no I/O: unit-tested alone; ProjectorService feeds them watermarks
// and records.
//
// librdkafka 2.0.2 (Debian 12) exposes no topic ids, so identity is inferred from what can be
// read: the log end, the order of delivered offsets, and the event id of the last applied record.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/kafka.hpp"

namespace syncline::pg_projector {

// The last record applied on a partition, stored with its position: on the same topic, the
// record at `offset` has this event id for as long as it is kept.
struct Fingerprint {
  std::int64_t offset = 0;
  std::string event_id;
  bool operator==(const Fingerprint&) const = default;
};

// A partition's stored position as syncline.offsets holds it.
struct StoredPosition {
  std::int64_t next_offset = 0;
  std::optional<Fingerprint> last_applied;
};

// The topic under a stored position is not the one it was taken from. The projector stops (exit
// 1): applying from the stored offset would skip records of the new topic.
class TopicRewritten : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the operator runs to read the topic again from its start, for the message: the command
// names the first projection reading the topic (they share the group's position, so one reset
// moves them all) and says which others it moves.
std::string recovery_commands(const std::string& group, const std::string& topic,
                              const std::vector<std::string>& projections);

// A comparison still to make: the first record delivered on the partition.
struct PendingFingerprint {
  Fingerprint expected;
  std::int64_t stored_next = 0;
  kafka::WatermarkOffsets watermarks;  // at assignment, for the message
};

// Where a partition with a stored position starts reading, and what it must find there.
struct StartPlan {
  std::int64_t start = 0;  // the offset to fetch from
  std::optional<PendingFingerprint> verify;
};

// At assignment: throws TopicRewritten when the stored next offset lies beyond the partition's end
// (the high watermark). When the last applied record is still in the log, reading starts at it so
// that it can be compared (records below the stored offset are dropped, never applied).
StartPlan plan_start(const kafka::TopicPartition& partition, const StoredPosition& stored,
                     const kafka::WatermarkOffsets& watermarks, const std::string& recovery);

// The first record delivered on a partition whose plan has `verify`. Returns true when the check
// is done (matched, or the record at that offset is gone: compacted away or a transaction marker,
// so nothing can be compared); throws TopicRewritten on another event id at that offset.
// `event_id`: the record's syncline-event-id header or envelope id; nullopt when it has neither.
bool check_fingerprint(const kafka::TopicPartition& partition, const PendingFingerprint& pending, std::int64_t offset,
                       const std::optional<std::string>& event_id, const std::string& recovery);

// A record delivered by the consumer (not one re-fed from the projector's own queue): librdkafka
// delivers a partition's offsets in increasing order from the position the projector chose, so
// an offset below `floor` (the seek target, or the last delivered + 1) means the consumer jumped
// back by itself, as it does when the stored offset is out of range of a recreated topic
// (auto.offset.reset). Throws TopicRewritten then.
void check_delivery(const kafka::TopicPartition& partition, std::optional<std::int64_t> floor, std::int64_t offset,
                    std::optional<std::int64_t> stored_next, const std::string& recovery);

}  // namespace syncline::pg_projector
