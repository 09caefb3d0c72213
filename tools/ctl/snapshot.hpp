// Re-publishing rows of captured tables from one consistent snapshot of the write database as
// op "r" row changes (and op "d" for targeted keys that no longer exist): the engine behind
// `syncline-ctl resync snapshot` and `verify --repair`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/lsn.hpp"
#include "producer/snapshot_reader.hpp"
#include "tools/ctl/progress.hpp"

namespace syncline::ctl {

struct SnapshotRequest {
  TableName table;
  std::string where;  // SQL predicate on the table; empty: every row. Trusted operator input.
  // When set: exactly these primary keys (each a JSON object column -> value, the same JSON the
  // producer puts in a row change's Kafka key). Keys whose row does not exist in the snapshot
  // are published as deletes (op "d", before = the key) at the snapshot position. Such runs are
  // not resumable and take no `where`.
  std::optional<std::vector<nlohmann::json>> keys;
  std::size_t chunk_rows = 1000;
  bool restart = false;  // ignore the progress of an interrupted run and start over
};

struct SnapshotResult {
  std::uint64_t rows = 0;     // op "r" events this run published
  std::uint64_t deletes = 0;  // op "d" events (targeted keys whose row does not exist)
  std::uint64_t chunks = 0;   // Kafka transactions this run committed
  Lsn snapshot_lsn;           // source.commit_lsn of every event this run published
  bool resumed = false;       // continued after the last key of an interrupted run
  // Extensions.
  std::uint64_t previous_rows = 0;    // rows the interrupted run(s) had published before (resumed)
  std::uint64_t dead_letters = 0;     // rows whose values could not be mapped (in the producer's DLQ)
  Lsn consistent_point;               // of the temporary slot: the first WAL position not in the snapshot
  bool restarted_after_done = false;  // the last run for this table and predicate had finished
  std::string topic;                  // the row-change topic
  double seconds = 0;
};

// SIGINT/SIGTERM during a run: the open Kafka transaction was aborted, the progress of every chunk
// committed before it is kept. The message says how to resume.
class SnapshotInterrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Publishes `request.table` (one table). Refuses (ctl::Refused) a table the producer does not
// capture, the outbox, and a table without a primary key or replica identity index. Throws
// SnapshotInterrupted when a stop is requested (common/shutdown.hpp), pg::PgError and
// kafka::KafkaError when a service fails (the progress committed so far is kept), and
// std::invalid_argument for a malformed key. `progress` may be null.
SnapshotResult publish_snapshot(const Config& config, const SnapshotRequest& request, Progress* progress);

// The refusals of publish_snapshot() that need no service: for checking every table of a command
// before the first one starts. Throws ctl::Refused.
void check_snapshot_table(const Config& config, const TableName& table);

// --- Pieces with rules of their own, exposed for tests and for the command's messages. ---

// "<prefix>.ctl.snapshots": one partition, compacted, a progress record per table and predicate.
std::string snapshot_progress_topic(std::string_view topic_prefix);
// "schema.table" for no predicate, "schema.table#<16 hex digits>" (FNV-1a of the predicate) otherwise.
std::string snapshot_progress_key(const TableName& table, std::string_view where);
// The Kafka transactional.id of a run: one per prefix, table and predicate (and another for targeted
// key runs), so a new run fences a killed one, and runs for different tables never fence each other.
std::string snapshot_transactional_id(std::string_view topic_prefix, const TableName& table,
                                      std::string_view where, bool targeted_keys);

// The source position of the snapshot's events, and the keyset chunk's SELECT: the producer's
// (producer/snapshot_reader.hpp), shared so both snapshots order rows and versions alike.
using producer::keyset_chunk_sql;
using producer::snapshot_event_position;

// The progress record stored in snapshot_progress_topic() with each chunk.
struct SnapshotProgressRecord {
  std::string table;  // "schema.table"
  std::string where;
  nlohmann::json last_key;  // null before the first row; else key column -> PostgreSQL text form
  std::uint64_t rows = 0;   // published so far, over every run since started_at
  std::uint64_t chunks = 0;
  bool done = false;
  std::string started_at;  // ISO-8601 UTC, when the first run of this snapshot began
  std::string updated_at;
  Lsn snapshot_lsn;  // the position of the last chunk's events
};
std::string encode_progress(const SnapshotProgressRecord& record);
// nullopt for a value that is not a progress record.
std::optional<SnapshotProgressRecord> decode_progress(std::string_view text);

}  // namespace syncline::ctl
