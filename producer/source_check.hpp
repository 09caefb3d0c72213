// The source-identity rules: whether the write database the producer reaches now is the one whose
// WAL it published, and whether its slot can continue that stream. Pure, so every rule is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/lsn.hpp"
#include "producer/slot_manager.hpp"
#include "producer/source_position.hpp"

namespace syncline::producer {

// Exit code of syncline-producer when it refuses a source (see SourceRefused).
inline constexpr int kExitSourceRefused = 3;

// The command that recovers from every refusal: accept the database as it is now as a new source.
inline constexpr const char* kNewSourceCommand = "syncline-ctl resync source --new-source";

// The producer will not stream: continuing would lose or duplicate events silently. The message says
// what happened, what was stored, and names the recovery command. Never retried.
class SourceRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One line of a timeline history file (TIMELINE_HISTORY): timeline `timeline` ended at `switchpoint`,
// where its child began.
struct TimelineSwitch {
  std::uint32_t timeline = 0;
  Lsn switchpoint;
};

// Parses the content of a timeline history file ("1\t0/3000158\tno recovery target specified").
// Comment and blank lines are skipped; throws std::invalid_argument for a malformed line.
std::vector<TimelineSwitch> parse_timeline_history(const std::string& content);

// What the producer sees of the source at the start of a session.
struct SourceFacts {
  SourceIdentity now;     // IDENTIFY_SYSTEM: system identifier and current timeline
  Lsn server_wal;         // IDENTIFY_SYSTEM's xlogpos: how far the server's WAL reaches
  SlotState slot;         // the configured slot (exists = false when missing)
  std::string slot_name;
  // The history of timeline now.timeline (empty on timeline 1, or when not fetched).
  std::vector<TimelineSwitch> history;
};

// nullopt when the producer may stream from `facts` after `stored`; otherwise the refusal's message.
// Refused: another system; a slot that is missing while a stream position is stored; a server whose
// WAL ends before the stored position; a timeline older than the stored one, or one that branched off
// before the stored position. Not refused: no stored position, a fresh (new-source) position, a
// position stored before identities were recorded (it is adopted), a newer timeline whose history
// contains the stored position (a promoted standby that carries the slot).
std::optional<std::string> source_problem(const std::optional<SourcePosition>& stored, const SourceFacts& facts);

// The transaction the stream must begin with after a restart (PositionContext::expect): the last
// published one, when the slot's confirmed position `confirmed` is not past it.
std::optional<PublishedTransaction> expected_first_transaction(const std::optional<SourcePosition>& stored,
                                                               Lsn confirmed);

}  // namespace syncline::producer
