// InitialSnapshot: publishes the captured tables' current rows for the producer's slot, in resumable
// key chunks, so an interrupted snapshot continues instead of costing the slot (and its WAL).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "producer/pipeline.hpp"
#include "producer/slot_manager.hpp"
#include "producer/snapshot_reader.hpp"
#include "producer/source_position.hpp"

namespace syncline::producer {

struct InitialSnapshotOptions {
  std::string dsn;
  std::vector<TableName> tables;  // producer.capture, in order: SnapshotProgress::table indexes it
  std::string slot;               // names the temporary slots ("syncline_snap_<slot>_...")
  std::size_t chunk_rows = 1000;
  std::chrono::milliseconds max_age{std::chrono::minutes(10)};
  Lsn stream_start;  // where the slot streams from: the snapshot at exactly this point needs no truncate
  std::function<bool()> stop_requested = [] { return false; };
  SteadyClock clock = std::chrono::steady_clock::now;
};

// What the rules below decide for each table. Exposed for tests.
struct TablePlan {
  bool keyed = false;     // read in key order and resumable after a key
  bool truncate = false;  // a truncate at the snapshot's position precedes its rows
  std::optional<nlohmann::json> after_key;  // resume after this key
};
// A keyed table resumes after the stored key. A table without a key is read again whole, and its rows
// are preceded by a truncate whenever the snapshot is not at the stream's start: the rows published
// by an interrupted run, and the stream's inserts between the stream's start and this snapshot,
// would otherwise stay beside the new copies. A replacing snapshot (a new source epoch) truncates
// every table before its first row.
TablePlan plan_table(bool keyed, const SnapshotProgress& progress, std::size_t table, bool at_stream_start);

// Owned by the producer's session, on its thread. Publishes through the session's Pipeline, which
// stores the progress with every Kafka commit (SourcePosition::snapshot).
class InitialSnapshot {
 public:
  InitialSnapshot(InitialSnapshotOptions options, Pipeline& pipeline);

  // Publishes from `progress` (state running) to the end and returns the final progress (done), or
  // the progress reached when stop_requested() said so (state running, committed). `first` is the
  // new slot's own exported snapshot (at stream_start) when there is one; later snapshots, and all of
  // them for a resumed run, come from temporary slots. Throws what the database or the sink throws;
  // what was committed before stays, and the next session resumes from it.
  SnapshotProgress run(SnapshotProgress progress, std::unique_ptr<SnapshotSession> first = nullptr);

 private:
  std::unique_ptr<SnapshotSession> fresh_snapshot();

  InitialSnapshotOptions options_;
  Pipeline& pipeline_;
};

}  // namespace syncline::producer
