// syncline-ctl resync replay for a search-index projection: builds <alias>_v<N+1> from the topics
// beside the live index, catches up with the live es-projector, moves the alias in one atomic
// request, hands the live projector over, and retires the old index after a grace period.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/kafka.hpp"
#include "consumers/es/es_client.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/terminal.hpp"

namespace syncline::ctl {

// What `resync replay --sink es` was asked to do (replay_command.cpp maps its options here).
struct EsReplayOptions {
  std::chrono::milliseconds grace{std::chrono::minutes(5)};  // old index kept this long after the swap
  bool keep_old = false;                                     // never delete the old index
  bool json = false;                                         // the result as JSON on stdout
  // How often the live group's committed offsets are read while catching up.
  std::chrono::milliseconds check_interval{std::chrono::seconds(1)};
  // After an interrupt during the hand-over (alias already moved), how long the hand-over may
  // still take before the run stops anyway.
  std::chrono::milliseconds handover_after_interrupt{std::chrono::seconds(30)};
};

// What a run did.
struct EsReplayResult {
  std::string projection;
  std::string alias;
  std::string old_index;
  std::string new_index;
  std::uint64_t events = 0;         // records read from the topics in this run
  std::uint64_t dead_lettered = 0;  // events sent to the dead-letter topic in this run
  double seconds = 0;
  bool resumed = false;      // continued a shadow index an earlier run left
  bool swapped = false;      // the alias now points at new_index
  bool interrupted = false;  // stopped by SIGINT/SIGTERM before finishing
  // What became of old_index: "deleted", "kept" (--keep-old), "retiring" (a later run deletes it
  // after delete_after), "live" (no swap happened).
  std::string old_index_state = "live";
  std::optional<std::string> delete_after;  // ISO-8601 UTC, for "retiring"
};

// Runs the replay, prints the result (human or --json) on stdout, progress on stderr, and returns
// the exit code: 0 done, 1 interrupted (the live alias untouched unless said otherwise; run it
// again to resume). Throws for what keeps it from running (config, services, index state).
int run_es_replay(const Config& config, const ProjectionInfo& projection, const EsReplayOptions& options,
                  Progress& progress);

// The replay itself, without printing the result (tests call it directly).
EsReplayResult replay_es_index(const Config& config, const ProjectionInfo& projection,
                               const EsReplayOptions& options, Progress& progress);

// The pieces of the replay that are decisions rather than I/O, exposed for unit tests.
namespace es_replay {

using Positions = std::map<kafka::TopicPartition, std::int64_t>;

// N of "<alias>_v<N>" (N >= 1, digits only); nullopt for any other name.
std::optional<int> index_version(std::string_view alias, std::string_view index);
std::string versioned_index(std::string_view alias, int version);
// The shadow consumer group: "<live group>.resync.<alias>.v<version>".
std::string shadow_group(std::string_view live_group, std::string_view alias, int version);

// The mark a replay leaves in a retired index's _meta (key kRetiredMeta): when it was retired
// and when it may be deleted (nullopt: kept by --keep-old, never deleted).
inline constexpr std::string_view kRetiredMeta = "syncline_retired";
struct Retirement {
  std::string retired_at;                   // ISO-8601 UTC
  std::optional<std::string> delete_after;  // ISO-8601 UTC
  std::string replaced_by;
};
nlohmann::json retirement_meta(const Retirement& retirement);  // {kRetiredMeta: {...}}
std::optional<Retirement> retirement_of(const nlohmann::json& meta);

// Where a run starts, from the indices named <alias>_v* and where the alias points.
struct Layout {
  std::string live;  // the index the alias points to
  std::string shadow;
  int shadow_version = 0;
  bool resume = false;                    // the shadow exists (an interrupted run's): continue it
  std::vector<std::string> delete_now;    // retired, grace over
  std::vector<std::string> mark_retired;  // older, unaliased, without a mark (a run stopped after its swap)
};
// Throws std::runtime_error when the alias points to several indices.
Layout plan_layout(std::string_view alias, const std::string& live,
                   const std::vector<es_projector::IndexInfo>& indices,
                   std::chrono::system_clock::time_point now);

// Whether every partition of `targets` has its position at or past the target (a partition
// without a position has not).
bool reached(const Positions& positions, const Positions& targets);

// The result as syncline-ctl prints it.
nlohmann::json result_json(const EsReplayResult& result);
std::string result_text(const EsReplayResult& result, const Style& style);

}  // namespace es_replay
}  // namespace syncline::ctl
