// Where a pipeline's consumers stand, as syncline-ctl reads it: per consumer group and partition
// the offset the sink holds, the group's Kafka-committed offset, the watermarks and the source
// position last applied. Shared by `status` and `offsets`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "common/pg.hpp"
#include "tools/ctl/projections.hpp"

namespace syncline::ctl {

// How long one Kafka request of syncline-ctl may take before the section reports an error.
inline constexpr std::chrono::seconds kKafkaTimeout{10};

// For syncline-ctl's admin client: the config's Kafka properties without consumer-only ones.
kafka::Properties admin_properties(const KafkaConfig& kafka);
// For a consumer of syncline-ctl's own (never a member of a projector's group: static membership
// settings are dropped) in group `group`, which it never commits to.
kafka::Properties reader_properties(const KafkaConfig& kafka, const std::string& group);

// What a sink resumes from on one partition, with the source position of the last event applied.
struct HeldPosition {
  std::int64_t next_offset = 0;
  std::optional<Lsn> commit_lsn;
  std::optional<std::string> commit_ts;  // ISO-8601 UTC, as stored
};

// Events still to apply on a partition: high - held, counted from the low watermark when nothing
// is held or the held offset fell below it (those records are gone); never negative.
std::int64_t partition_lag(std::optional<std::int64_t> held, const kafka::WatermarkOffsets& watermarks);

struct PartitionState {
  kafka::TopicPartition partition;
  kafka::WatermarkOffsets watermarks;
  std::optional<HeldPosition> held;             // nullopt: the sink holds nothing (everything pending)
  std::optional<std::int64_t> kafka_committed;  // the group's committed offset; nullopt: none

  std::optional<std::int64_t> held_offset() const {
    return held ? std::optional<std::int64_t>(held->next_offset) : std::nullopt;
  }
  std::int64_t lag() const { return partition_lag(held_offset(), watermarks); }
};

// One consumer group of the config and what reads through it.
struct GroupSpec {
  std::string group;
  Sink sink = Sink::pg;
  std::vector<std::string> projections;  // names, config order
  std::vector<std::string> topics;       // every topic of those projections, sorted, unique
};

// The live groups of `projections`, pg first (one per sink as the config has it).
std::vector<GroupSpec> configured_groups(const std::vector<ProjectionInfo>& projections);

// Partition counts of the topics Kafka has, read once per report (one metadata request).
using TopicCatalog = std::map<std::string, int>;
TopicCatalog read_topic_catalog(kafka::AdminClient& admin);

struct GroupState {
  std::vector<PartitionState> partitions;   // by topic, then partition
  std::vector<std::string> missing_topics;  // configured topics Kafka does not have (yet)
};

// The state of `group` on `topics`: watermarks and committed offsets from Kafka; the held
// positions from read-PostgreSQL syncline.offsets (pg; `read_db` required) or from the committed
// offsets and their metadata (es). Throws when Kafka or the store does not answer.
GroupState read_group_state(kafka::AdminClient& admin, const TopicCatalog& catalog, Sink sink,
                            const std::string& group, const std::vector<std::string>& topics,
                            pg::PgConnection* read_db);

// The syncline.offsets rows of `group` on `topics` (none when the table does not exist yet).
std::map<kafka::TopicPartition, HeldPosition> read_pg_offsets(pg::PgConnection& read_db, const std::string& group,
                                                              const std::vector<std::string>& topics);

// The newest source position applied over the partitions of `topics`: the highest commit LSN and
// the latest commit time (each may come from a different partition).
struct AppliedPosition {
  std::optional<Lsn> commit_lsn;
  std::optional<std::string> commit_ts;
  std::optional<std::chrono::system_clock::time_point> commit_time;
};
AppliedPosition newest_applied(const std::vector<PartitionState>& partitions, const std::vector<std::string>& topics);

// ---------------------------------------------------------------------------------------------
// Finding an offset by source LSN

// A record as the LSN search sees it.
struct ProbedRecord {
  std::int64_t offset = 0;
  std::optional<Lsn> commit_lsn;  // nullopt: the record carries none
};

// The first committed record at or after `offset` (offsets are not contiguous: transaction
// markers and aborted records take offsets too); nullopt when there is none before the end.
using RecordProbe = std::function<std::optional<ProbedRecord>(std::int64_t offset)>;

// The offset of the first record in [range.low, range.high) whose commit LSN is >= `target`
// (range.high when there is none), by binary search: commit LSNs never decrease along a
// partition. Throws std::runtime_error naming the offset of a record without a commit LSN.
std::int64_t first_offset_at_or_after_lsn(Lsn target, const kafka::WatermarkOffsets& range, const RecordProbe& probe);

// The commit LSN of a consumed record: its syncline-commit-lsn header, else its envelope's
// source.commit_lsn.
std::optional<Lsn> record_commit_lsn(const kafka::Message& message);

// A RecordProbe over one partition: a read_committed consumer assigned (not subscribed) to it.
// Owned by one thread.
class PartitionReader {
 public:
  PartitionReader(const KafkaConfig& kafka, kafka::TopicPartition partition,
                  std::chrono::milliseconds timeout = kKafkaTimeout);
  std::optional<ProbedRecord> first_at_or_after(std::int64_t offset);

 private:
  kafka::TopicPartition partition_;
  std::chrono::milliseconds timeout_;
  kafka::Consumer consumer_;
};

}  // namespace syncline::ctl
