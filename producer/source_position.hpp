// SourcePosition: how far the producer has published the WAL, stored in Kafka with the events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/lsn.hpp"

namespace syncline::producer {

// Written to the compacted position topic inside the same Kafka transaction as the events it
// covers, so Kafka holds the events of exactly the transactions up to this position.
struct SourcePosition {
  Lsn commit_lsn;  // of the last PostgreSQL transaction published (in full, or up to `seq`)
  Lsn end_lsn;     // end of that transaction's commit record: what is confirmed to PostgreSQL
  std::uint64_t seq = 0;  // last change of that transaction published (counts every change)
  bool complete = true;   // false: a large transaction split over Kafka transactions, up to `seq`
  bool snapshot_done = false;  // the initial snapshot of the current slot was published in full

  friend bool operator==(const SourcePosition&, const SourcePosition&) = default;
};

// The position of a new slot (and of its finished snapshot): everything before `consistent_point`
// is accounted for, nothing at it. PostgreSQL streams a transaction whose commit record starts
// exactly at the consistent point, so the stored commit LSN must be below it or the resume filter
// would take that transaction for published.
inline SourcePosition position_before(Lsn consistent_point, std::uint64_t seq, bool snapshot_done) {
  return SourcePosition{Lsn(consistent_point.value() - 1), consistent_point, seq, true, snapshot_done};
}

std::string encode_position(const SourcePosition& position);
// nullopt for a value that is not a position (never for one encode_position wrote).
std::optional<SourcePosition> decode_position(std::string_view text);

// Decides, after a restart, which changes the stored position says are already in Kafka.
// PostgreSQL resends every transaction committed after the slot's confirmed_flush_lsn, and the slot
// is confirmed only after Kafka committed, so anything resent at or below the position is skipped.
class ResumeFilter {
 public:
  ResumeFilter() = default;
  explicit ResumeFilter(std::optional<SourcePosition> stored) : stored_(stored) {}

  bool already_published(Lsn commit_lsn, std::uint64_t seq) const {
    if (!stored_) return false;
    if (commit_lsn != stored_->commit_lsn) return commit_lsn < stored_->commit_lsn;
    return stored_->complete || seq <= stored_->seq;
  }
  const std::optional<SourcePosition>& stored() const { return stored_; }

 private:
  std::optional<SourcePosition> stored_;
};

}  // namespace syncline::producer
