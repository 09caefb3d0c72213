// The fault checker's schedule: which faults, in which order, with which delays, all drawn from one
// seed so a printed seed replays the same schedule. Pure (no I/O).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace syncline::test::faults {

enum class FaultKind {
  producer_kill,            // kill -9 at a random moment
  producer_split_kill,      // a 20,000+ row transaction, then kill -9 while it is published in pieces
  producer_failpoint,       // restarted with a producer failpoint armed (fallback: kill -9 after a delay)
  pg_projector_kill,        // kill -9 at a random moment
  pg_projector_failpoint,   // pg-projector.before_commit / after_commit
  es_projector_kill,        // kill -9 at a random moment
  es_projector_failpoint,   // es-projector.after_bulk
  ctl_snapshot_kill,        // kill -9 of `syncline-ctl resync snapshot`, then run it again to the end
  ctl_pg_replay_kill,       // kill -9 of `syncline-ctl resync replay` of a pg projection, then again
  ctl_es_replay_kill,       // kill -9 of `syncline-ctl resync replay` of an index, then again
  write_pg_crash,           // pg_ctl -m immediate, then start (crash recovery)
  read_pg_kill,             // scripts/stack kill read-pg, then up
  kafka_kill,               // scripts/stack kill kafka, then up
  search_kill,              // scripts/stack kill search, then up in the background
};

inline constexpr FaultKind kAllFaultKinds[] = {
    FaultKind::producer_kill,        FaultKind::producer_split_kill, FaultKind::producer_failpoint,
    FaultKind::pg_projector_kill,    FaultKind::pg_projector_failpoint, FaultKind::es_projector_kill,
    FaultKind::es_projector_failpoint, FaultKind::ctl_snapshot_kill, FaultKind::ctl_pg_replay_kill,
    FaultKind::ctl_es_replay_kill,   FaultKind::write_pg_crash,      FaultKind::read_pg_kill,
    FaultKind::kafka_kill,           FaultKind::search_kill};

const char* name_of(FaultKind kind);

struct Fault {
  FaultKind kind{};
  std::chrono::milliseconds gap{0};    // the pause before it (the workload keeps running)
  std::chrono::milliseconds delay{0};  // a random kill's moment: after this long (or the fallback of a failpoint)
  std::string failpoint;               // "name@N" armed for the process, empty when none
  std::string target;                  // ctl faults: the table or projection
  std::string describe() const;
};

// The start of a run, on a fresh slot with a large table: the producer is killed early (between slot
// creation and its first commit: failpoint producer.after_slot_created, and a kill after
// `early_kill`), then during its initial snapshot (failpoint producer.snapshot_chunk_committed@N, and
// a kill `snapshot_kill` after the snapshot is seen to run).
struct StartFaults {
  std::chrono::milliseconds early_kill{0};
  int snapshot_chunk = 1;
  std::chrono::milliseconds snapshot_kill{0};
  std::string describe() const;
};

struct PlanTargets {
  std::vector<std::string> snapshot_tables;  // schema.table, for ctl resync snapshot
  std::vector<std::string> pg_projections;   // for ctl resync replay --sink pg
  std::vector<std::string> es_projections;   // index aliases, for ctl resync replay --sink es
};

StartFaults plan_start(std::uint64_t seed);

// The bounded schedule: every kind once, in a seeded order (scripts/test's run).
std::vector<Fault> plan_bounded(std::uint64_t seed, const PlanTargets& targets);

// The next fault of an open-ended (soak) schedule: the `index`th draw of the seed's sequence.
Fault plan_soak_fault(std::uint64_t seed, std::size_t index, const PlanTargets& targets);

}  // namespace syncline::test::faults
