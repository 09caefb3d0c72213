// InitialSnapshot: key chunks, snapshot renewal and resumption (see initial_snapshot.hpp).
#include "producer/initial_snapshot.hpp"

#include <fmt/format.h>

#include "common/logging.hpp"
#include "producer/pg_timestamp.hpp"

namespace syncline::producer {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("producer"); }

std::string now_iso8601() {
  return PgTimestamp::from_sys_time(
             std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()))
      .to_iso8601();
}

TransactionInfo version_of(const SnapshotSession& session) {
  return TransactionInfo{snapshot_event_position(session.consistent_point), now_iso8601(), 0, true};
}

}  // namespace

TablePlan plan_table(bool keyed, const SnapshotProgress& progress, std::size_t table, bool at_stream_start) {
  TablePlan plan;
  plan.keyed = keyed;
  const bool resuming = progress.table == table && progress.last_key.has_value();
  if (keyed && resuming) plan.after_key = progress.last_key;
  // Nothing of this table is in Kafka yet from this snapshot: a replacing snapshot truncates first.
  const bool first_rows = !plan.after_key.has_value();
  plan.truncate = (progress.replace && first_rows) || (!keyed && !at_stream_start);
  return plan;
}

InitialSnapshot::InitialSnapshot(InitialSnapshotOptions options, Pipeline& pipeline)
    : options_(std::move(options)), pipeline_(pipeline) {}

std::unique_ptr<SnapshotSession> InitialSnapshot::fresh_snapshot() {
  auto session = open_snapshot_session(options_.dsn, "syncline_snap_" + options_.slot.substr(0, 30));
  logger()->info("snapshot taken at {} (a temporary slot's)", session->consistent_point);
  return session;
}

SnapshotProgress InitialSnapshot::run(SnapshotProgress progress, std::unique_ptr<SnapshotSession> first) {
  progress.state = SnapshotProgress::State::running;
  std::unique_ptr<SnapshotSession> session = first ? std::move(first) : fresh_snapshot();
  TransactionInfo version = version_of(*session);
  const auto renew = [&] {
    // The open batch (with the progress of its last row) is committed before the rows of a newer
    // snapshot, at a newer position, are published: a chunk never mixes two snapshots' rows.
    pipeline_.commit_snapshot(progress);
    session->reader->finish();
    session = fresh_snapshot();
    version = version_of(*session);
  };

  for (std::size_t t = progress.table; t < options_.tables.size(); ++t) {
    const TableName& table = options_.tables[t];
    RelationInfo relation = session->reader->describe(table);
    std::vector<std::string> order = session->reader->key_order(relation);
    const bool at_stream_start = session->consistent_point == options_.stream_start;
    const TablePlan plan = plan_table(!order.empty(), progress, t, at_stream_start);
    progress.table = t;
    progress.last_key = plan.after_key;
    if (plan.truncate) {
      logger()->info("snapshot of {}: a truncate at {} precedes its rows", table.to_string(), version.commit_lsn);
      pipeline_.on_snapshot_truncate(version, relation, progress);
    }
    std::uint64_t rows = 0;
    if (!plan.keyed) {
      // No key to resume after: read in one snapshot, whatever its age (a table without a key is an
      // append-only log, which has no deletes for an old row to bring back).
      rows = session->reader->read_table(table, [&](const RelationInfo& described, const TupleData& row) {
        ++progress.rows;
        pipeline_.on_snapshot_row(version, described, row, progress);
      });
    } else {
      while (true) {
        if (options_.stop_requested()) {
          pipeline_.commit_snapshot(progress);
          return progress;
        }
        if (options_.clock() - session->taken >= options_.max_age) {
          renew();
          relation = session->reader->describe(table);
          order = session->reader->key_order(relation);
        }
        const std::size_t read =
            session->reader->read_chunk(relation, order, progress.last_key, options_.chunk_rows,
                                        [&](const TupleData& row, nlohmann::json key) {
                                          progress.last_key = std::move(key);
                                          ++progress.rows;
                                          pipeline_.on_snapshot_row(version, relation, row, progress);
                                        });
        rows += read;
        if (read < options_.chunk_rows) break;
      }
    }
    logger()->info("snapshot of {}: {} row(s)", table.to_string(), rows);
    // The next table starts from its first row; the progress is stored with the next commit.
    progress.table = t + 1;
    progress.last_key.reset();
    pipeline_.set_snapshot_progress(progress);
    if (options_.stop_requested()) {
      pipeline_.commit_snapshot(progress);
      return progress;
    }
  }
  session->reader->finish();
  progress.state = SnapshotProgress::State::done;
  progress.table = 0;
  progress.last_key.reset();
  progress.replace = false;
  pipeline_.finish_snapshot(progress);
  return progress;
}

}  // namespace syncline::producer
