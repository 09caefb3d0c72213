// `syncline-ctl resync replay` for read-PostgreSQL projections (the pg mirror and SQL projections
// with a `schema`): rebuild the projection's schema from its topics into a shadow schema, bring the
// shadow exactly to the live consumer group's position, and swap the two schemas by renaming them
// in one transaction, so readers see the old tables or the new ones, never none.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/projections.hpp"
#include "tools/ctl/replay.hpp"

namespace syncline::ctl {

struct PgReplayOptions {
  std::chrono::milliseconds grace{std::chrono::minutes(5)};  // before the retired schema is dropped
  bool keep_old = false;  // never drop the retired schema
  bool restart = false;   // drop a shadow an interrupted run left and start over
  bool json = false;
};

// Where a replay of a read-PostgreSQL projection writes; names derived from the live schema.
struct PgReplayTarget {
  std::string schema;        // the live schema readers read
  std::string shadow;        // <schema>__resync, built by the replay
  std::string replay_group;  // <live group>.resync.<projection>: the shadow's rows in syncline.offsets
};

// Validates that `projection` can be replayed and names its schemas. Throws Refused when it is
// not a pg projection, a SQL projection has no `schema` (or "public") or does not write
// {{schema}}, or another pg projection writes into the same schema.
PgReplayTarget pg_replay_target(const Config& config, const ProjectionInfo& projection);

std::string shadow_schema_name(std::string_view schema);                              // <schema>__resync
std::string retired_schema_name(std::string_view schema, std::int64_t unix_seconds);  // <schema>__retired_<t>
// The swap time in a retired schema's name; nullopt when `name` is not one of `schema`'s.
std::optional<std::int64_t> retired_schema_time(std::string_view name, std::string_view schema);
std::string replay_group_name(std::string_view live_group, std::string_view projection);

// Runs the replay (see docs: resuming, the swap, retiring); prints the result (human or JSON) on
// stdout and returns the exit code. Throws Refused or a service's error when it cannot run; an
// interruption (SIGINT/SIGTERM) before the swap throws, leaving the live projection untouched.
int run_pg_replay(const Config& config, const ProjectionInfo& projection, const PgReplayOptions& options,
                  Progress& progress);

}  // namespace syncline::ctl
