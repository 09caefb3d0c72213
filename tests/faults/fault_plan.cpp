// The fault checker's seeded schedule (see fault_plan.hpp).
#include "tests/faults/fault_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace syncline::test::faults {
namespace {

using std::chrono::milliseconds;

milliseconds between(std::mt19937_64& rng, int low_ms, int high_ms) {
  return milliseconds(std::uniform_int_distribution<int>(low_ms, high_ms)(rng));
}

template <typename T>
const T& pick(std::mt19937_64& rng, const std::vector<T>& from) {
  return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
}

// The details of one fault of `kind`, drawn from `rng`.
Fault make_fault(FaultKind kind, std::mt19937_64& rng, const PlanTargets& targets) {
  Fault fault;
  fault.kind = kind;
  fault.gap = between(rng, 1000, 5000);
  fault.delay = between(rng, 200, 4000);
  const int nth = std::uniform_int_distribution<int>(1, 6)(rng);
  switch (kind) {
    case FaultKind::producer_kill:
    case FaultKind::pg_projector_kill:
    case FaultKind::es_projector_kill:
      break;
    case FaultKind::producer_split_kill:
      // The big transaction takes a few seconds to commit and to stream: kill within them.
      fault.failpoint = fmt::format("producer.split_transaction_committed@{}", std::min(nth, 3));
      fault.delay = between(rng, 100, 3000);
      break;
    case FaultKind::producer_failpoint:
      fault.failpoint = fmt::format("producer.after_kafka_commit@{}", nth);
      break;
    case FaultKind::pg_projector_failpoint:
      fault.failpoint = fmt::format("{}@{}",
                                    std::uniform_int_distribution<int>(0, 1)(rng) == 0
                                        ? "pg-projector.before_commit"
                                        : "pg-projector.after_commit",
                                    nth);
      break;
    case FaultKind::es_projector_failpoint:
      fault.failpoint = fmt::format("es-projector.after_bulk@{}", nth);
      break;
    case FaultKind::ctl_snapshot_kill:
      fault.failpoint = fmt::format("ctl.snapshot_chunk_committed@{}", nth);
      fault.target = pick(rng, targets.snapshot_tables);
      fault.delay = between(rng, 100, 2500);
      break;
    case FaultKind::ctl_pg_replay_kill:
      // Half the replay kills wait for ctl.replay_before_swap, half are a kill -9 at a random moment.
      if (nth % 2 == 0) fault.failpoint = "ctl.replay_before_swap";
      fault.target = pick(rng, targets.pg_projections);
      fault.delay = between(rng, 100, 3000);
      break;
    case FaultKind::ctl_es_replay_kill:
      if (nth % 2 == 0) fault.failpoint = "ctl.replay_before_swap";
      fault.target = pick(rng, targets.es_projections);
      fault.delay = between(rng, 100, 3000);
      break;
    case FaultKind::write_pg_crash:
    case FaultKind::read_pg_kill:
    case FaultKind::kafka_kill:
    case FaultKind::search_kill:
      fault.delay = milliseconds(0);
      break;
  }
  return fault;
}

}  // namespace

const char* name_of(FaultKind kind) {
  switch (kind) {
    case FaultKind::producer_kill:
      return "producer kill";
    case FaultKind::producer_split_kill:
      return "producer kill in a split transaction";
    case FaultKind::producer_failpoint:
      return "producer failpoint";
    case FaultKind::pg_projector_kill:
      return "pg-projector kill";
    case FaultKind::pg_projector_failpoint:
      return "pg-projector failpoint";
    case FaultKind::es_projector_kill:
      return "es-projector kill";
    case FaultKind::es_projector_failpoint:
      return "es-projector failpoint";
    case FaultKind::ctl_snapshot_kill:
      return "ctl resync snapshot kill";
    case FaultKind::ctl_pg_replay_kill:
      return "ctl resync replay (pg) kill";
    case FaultKind::ctl_es_replay_kill:
      return "ctl resync replay (es) kill";
    case FaultKind::write_pg_crash:
      return "write-pg crash";
    case FaultKind::read_pg_kill:
      return "read-pg kill";
    case FaultKind::kafka_kill:
      return "kafka kill";
    case FaultKind::search_kill:
      return "search kill";
  }
  return "?";
}

std::string Fault::describe() const {
  std::string text = fmt::format("{} after a {:.1f} s pause", name_of(kind), gap.count() / 1000.0);
  if (!target.empty()) text += fmt::format(", target {}", target);
  if (!failpoint.empty()) text += fmt::format(", failpoint {}", failpoint);
  if (delay.count() > 0) {
    text += fmt::format(", {}kill -9 after {:.1f} s", failpoint.empty() ? "" : "else ", delay.count() / 1000.0);
  }
  return text;
}

std::string StartFaults::describe() const {
  return fmt::format(
      "fresh slot: failpoint producer.after_slot_created, else kill -9 {:.2f} s after the start; then "
      "failpoint producer.snapshot_chunk_committed@{}, else kill -9 {:.2f} s into the initial snapshot",
      early_kill.count() / 1000.0, snapshot_chunk, snapshot_kill.count() / 1000.0);
}

StartFaults plan_start(std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5157A27ULL);
  StartFaults start;
  start.early_kill = between(rng, 30, 600);
  start.snapshot_chunk = std::uniform_int_distribution<int>(1, 4)(rng);
  start.snapshot_kill = between(rng, 50, 1500);
  return start;
}

std::vector<Fault> plan_bounded(std::uint64_t seed, const PlanTargets& targets) {
  std::mt19937_64 rng(seed);
  std::vector<FaultKind> kinds(std::begin(kAllFaultKinds), std::end(kAllFaultKinds));
  std::shuffle(kinds.begin(), kinds.end(), rng);
  std::vector<Fault> plan;
  for (const auto kind : kinds) plan.push_back(make_fault(kind, rng, targets));
  return plan;
}

Fault plan_soak_fault(std::uint64_t seed, std::size_t index, const PlanTargets& targets) {
  std::mt19937_64 rng(seed * 1000003ULL + index);
  // Kafka and the search engine take ~25 and ~40 s to come back: drawn half as often as the rest.
  std::vector<FaultKind> kinds;
  for (const auto kind : kAllFaultKinds) {
    kinds.push_back(kind);
    if (kind != FaultKind::kafka_kill && kind != FaultKind::search_kill) kinds.push_back(kind);
  }
  return make_fault(pick(rng, kinds), rng, targets);
}

}  // namespace syncline::test::faults
