// SourcePosition: how far the producer has published the WAL, and of which source, stored in Kafka
// with the events.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/lsn.hpp"

namespace syncline::producer {

// Where the initial snapshot of the current slot stands. Stored with every position, so an
// interrupted snapshot resumes instead of being taken again from a new slot (which would lose what
// the old slot held).
struct SnapshotProgress {
  enum class State : char {
    none,     // no initial snapshot for this slot (snapshot: never, or a slot from before this record)
    running,  // being published: `table` is the next table to finish, `last_key` how far into it
    done,     // every captured table was published
  };
  State state = State::none;
  std::size_t table = 0;  // index into producer.capture
  // Key columns -> PostgreSQL text of the last row of `table` published; nullopt: none yet.
  std::optional<nlohmann::json> last_key;
  std::uint64_t rows = 0;  // rows published by the snapshot so far, every table and run
  // The snapshot replaces everything the sinks hold of each table (the first one of a new source
  // epoch): every table's rows are preceded by a truncate.
  bool replace = false;

  friend bool operator==(const SnapshotProgress&, const SnapshotProgress&) = default;
};

// Which database the positions belong to (IDENTIFY_SYSTEM). Empty system_id: a position written
// before identities were stored; it is adopted, not checked.
struct SourceIdentity {
  std::string system_id;
  std::uint32_t timeline = 0;

  friend bool operator==(const SourceIdentity&, const SourceIdentity&) = default;
};

// The last source transaction whose records are in Kafka: PostgreSQL must send it again after a
// restart whenever the slot's confirmed position is not past it, which proves the WAL is the same
// history the producer published (a restored or rewound database holds another transaction there).
struct PublishedTransaction {
  Lsn commit_lsn;
  std::uint64_t xid = 0;

  friend bool operator==(const PublishedTransaction&, const PublishedTransaction&) = default;
};

// Written to the slot's position topic inside the same Kafka transaction as the events it covers,
// so Kafka holds the events of exactly the transactions up to this position.
struct SourcePosition {
  Lsn commit_lsn;  // of the last PostgreSQL transaction published (in full, or up to `seq`)
  Lsn end_lsn;     // end of that transaction's commit record: what is confirmed to PostgreSQL
  std::uint64_t seq = 0;  // last change of that transaction published (counts every change)
  bool complete = true;   // false: a large transaction split over Kafka transactions, up to `seq`
  SnapshotProgress snapshot{};
  std::uint32_t epoch = 0;  // the source epoch stamped into every envelope (envelope.hpp)
  SourceIdentity source{};
  std::optional<PublishedTransaction> last_published{};
  // Written by `syncline-ctl resync source --new-source`: the operator accepted the database as it
  // is now as a new source. No stream position; the producer starts anew (slot, initial snapshot)
  // in `epoch`.
  bool fresh = false;

  bool snapshot_done() const { return snapshot.state == SnapshotProgress::State::done; }

  friend bool operator==(const SourcePosition&, const SourcePosition&) = default;
};

// The position of a new slot (and of its finished snapshot): everything before `consistent_point`
// is accounted for, nothing at it. PostgreSQL streams a transaction whose commit record starts
// exactly at the consistent point, so the stored commit LSN must be below it or the resume filter
// would take that transaction for published.
inline SourcePosition position_before(Lsn consistent_point) {
  SourcePosition position;
  position.commit_lsn = Lsn(consistent_point.value() - 1);
  position.end_lsn = consistent_point;
  return position;
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
  explicit ResumeFilter(std::optional<SourcePosition> stored) : stored_(std::move(stored)) {
    if (stored_ && stored_->fresh) stored_.reset();  // a new source: nothing of it is published
  }

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
