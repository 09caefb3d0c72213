// Topic identity checks of the pg-projector (see topic_identity.hpp).
#include "consumers/pg/topic_identity.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace syncline::pg_projector {

namespace {

[[noreturn]] void refuse(const kafka::TopicPartition& partition, const std::string& what,
                         const std::string& recovery) {
  throw TopicRewritten(fmt::format(
      "topic {} partition {} was deleted and recreated (or its log rewritten) since its position was stored: {}. "
      "The projector stops instead of skipping records of the new topic; nothing of it was applied. {}",
      partition.topic, partition.partition, what, recovery));
}

}  // namespace

std::string recovery_commands(const std::string& group, const std::string& topic,
                              const std::vector<std::string>& projections) {
  const std::string name = projections.empty() ? std::string("NAME") : projections.front();
  std::string text = fmt::format(
      "To read the topic again from its start, stop every syncline-pg-projector of group {} and run: "
      "syncline-ctl offsets reset --projection {} --topic {} --to-earliest",
      group, name, topic);
  if (projections.size() > 1) {
    text += fmt::format(" (it moves every pg projection reading the topic: {})", fmt::join(projections, ", "));
  }
  return text;
}

StartPlan plan_start(const kafka::TopicPartition& partition, const StoredPosition& stored,
                     const kafka::WatermarkOffsets& watermarks, const std::string& recovery) {
  if (stored.next_offset > watermarks.high) {
    refuse(partition,
           fmt::format("the stored next offset {} is beyond the partition's end (log start {}, end {})",
                       stored.next_offset, watermarks.low, watermarks.high),
           recovery);
  }
  StartPlan plan{stored.next_offset, std::nullopt};
  // A fingerprint at or past the stored offset describes no applied record (a hand-edited row).
  if (const auto& last = stored.last_applied;
      last && last->offset < stored.next_offset && last->offset >= watermarks.low) {
    plan.start = last->offset;
    plan.verify = PendingFingerprint{*last, stored.next_offset, watermarks};
  }
  return plan;
}

bool check_fingerprint(const kafka::TopicPartition& partition, const PendingFingerprint& pending, std::int64_t offset,
                       const std::optional<std::string>& event_id, const std::string& recovery) {
  const Fingerprint& expected = pending.expected;
  if (offset < expected.offset) return false;  // not there yet
  if (offset > expected.offset) return true;   // compacted away, or now a transaction marker: nothing to compare
  if (event_id == expected.event_id) return true;
  refuse(partition,
         fmt::format("the record at offset {}, the last one applied (stored next offset {}; log start {}, end {}), "
                     "was event {} and is now {}",
                     offset, pending.stored_next, pending.watermarks.low, pending.watermarks.high, expected.event_id,
                     event_id ? "event " + *event_id : std::string("a record without an event id")),
         recovery);
}

void check_delivery(const kafka::TopicPartition& partition, std::optional<std::int64_t> floor, std::int64_t offset,
                    std::optional<std::int64_t> stored_next, const std::string& recovery) {
  if (!floor || offset >= *floor) return;
  refuse(partition,
         fmt::format("the consumer delivered offset {} where the projector expected {} or later (stored next offset "
                     "{}): Kafka moved the position back by itself, as it does when the stored offset is out of range "
                     "of the partition",
                     offset, *floor, stored_next ? std::to_string(*stored_next) : std::string("none")),
         recovery);
}

}  // namespace syncline::pg_projector
