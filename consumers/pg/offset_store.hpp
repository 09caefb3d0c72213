// OffsetStore: the consumer group's Kafka positions kept in the read database itself
// (syncline.offsets), advanced in the same transaction as the projection writes.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "common/pg.hpp"
#include "consumers/pg/topic_identity.hpp"

namespace syncline::pg_projector {

// The SQLSTATE advance_offset() raises when the stored offset is not the one the batch started
// from: another instance (or an earlier, in-doubt commit of this one) already applied it.
inline constexpr std::string_view kOffsetMovedSqlstate = "SL001";

struct StoredOffset {
  std::int64_t next_offset = 0;
  std::optional<Lsn> last_commit_lsn;
  std::optional<Fingerprint> last_applied;  // nullopt: none stored (older rows, or after a reset)
};

// One partition's advance inside a batch transaction.
struct OffsetAdvance {
  kafka::TopicPartition partition;
  std::optional<std::int64_t> expected;  // the stored next_offset the batch started from; nullopt: no row
  std::int64_t next_offset = 0;
  std::optional<Lsn> last_commit_lsn;
  std::optional<std::string> last_commit_ts;  // ISO-8601, from the last event's source.commit_ts
  // The batch's last record on the partition that has an event id; nullopt keeps the stored one
  // (which still describes a record of the partition: an older one).
  std::optional<Fingerprint> last_applied;

  // Takes last_commit_lsn / last_commit_ts from the last applied event's envelope (when it has them).
  void record_source(const nlohmann::json& envelope);
};

// Stateless apart from the group name; the connection is the caller's.
class OffsetStore {
 public:
  explicit OffsetStore(std::string consumer_group) : group_(std::move(consumer_group)) {}

  // Creates schema syncline, table syncline.offsets and function syncline.advance_offset() when
  // absent. Safe when several instances start at once (serialised by an advisory lock).
  static void ensure_schema(pg::PgConnection& connection);

  std::map<kafka::TopicPartition, StoredOffset> load(pg::PgConnection& connection,
                                                     const std::vector<kafka::TopicPartition>& partitions) const;

  // The statement (and its parameters) that advances one partition; it raises SQLSTATE
  // kOffsetMovedSqlstate when the stored offset is not `expected`.
  static const std::string& advance_sql();
  std::vector<pg::Param> advance_params(const OffsetAdvance& advance) const;

  // Moves a partition's position by hand (syncline-ctl offsets reset), creating the row when
  // absent: the applied source position and the fingerprint no longer describe the new offset,
  // so they are cleared, to be learnt again from the next batch.
  static const std::string& reset_sql();
  std::vector<pg::Param> reset_params(const kafka::TopicPartition& partition, std::int64_t next_offset) const;

  const std::string& group() const noexcept { return group_; }

 private:
  std::string group_;
};

}  // namespace syncline::pg_projector
