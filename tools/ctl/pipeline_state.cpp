// Where a pipeline's consumers stand (see pipeline_state.hpp).
#include "tools/ctl/pipeline_state.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "common/envelope.hpp"
#include "common/iso_time.hpp"
#include "consumers/es/es_projector_service.hpp"

namespace syncline::ctl {

kafka::Properties admin_properties(const KafkaConfig& kafka) {
  kafka::Properties properties;
  for (const auto& [key, value] : kafka.properties)
    if (!kafka::is_consumer_property(key)) properties[key] = value;
  properties["bootstrap.servers"] = kafka.bootstrap_servers;
  properties["client.id"] = kafka.client_id + "-ctl";
  return properties;
}

kafka::Properties reader_properties(const KafkaConfig& kafka, const std::string& group) {
  kafka::Properties properties;
  for (const auto& [key, value] : kafka.properties) properties[key] = value;
  // A projector's static membership id would make this reader take over (fence) its place.
  properties.erase("group.instance.id");
  properties["bootstrap.servers"] = kafka.bootstrap_servers;
  properties["client.id"] = kafka.client_id + "-ctl";
  properties["group.id"] = group;
  properties["enable.partition.eof"] = "true";
  return properties;
}

std::int64_t partition_lag(std::optional<std::int64_t> held, const kafka::WatermarkOffsets& watermarks) {
  const std::int64_t from = held ? std::max(*held, watermarks.low) : watermarks.low;
  return std::max<std::int64_t>(0, watermarks.high - from);
}

std::vector<GroupSpec> configured_groups(const std::vector<ProjectionInfo>& projections) {
  std::vector<GroupSpec> groups;
  for (const auto& projection : projections) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const GroupSpec& group) {
      return group.group == projection.group && group.sink == projection.sink;
    });
    if (it == groups.end()) {
      groups.push_back({projection.group, projection.sink, {}, {}});
      it = std::prev(groups.end());
    }
    it->projections.push_back(projection.name);
    it->topics.insert(it->topics.end(), projection.topics.begin(), projection.topics.end());
  }
  for (auto& group : groups) {
    std::sort(group.topics.begin(), group.topics.end());
    group.topics.erase(std::unique(group.topics.begin(), group.topics.end()), group.topics.end());
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const GroupSpec& a, const GroupSpec& b) { return a.sink == Sink::pg && b.sink == Sink::es; });
  return groups;
}

TopicCatalog read_topic_catalog(kafka::AdminClient& admin) {
  TopicCatalog catalog;
  for (const auto& topic : admin.list_topics(kKafkaTimeout))
    catalog[topic.name] = static_cast<int>(topic.partitions.size());
  return catalog;
}

std::map<kafka::TopicPartition, HeldPosition> read_pg_offsets(pg::PgConnection& read_db, const std::string& group,
                                                              const std::vector<std::string>& topics) {
  std::map<kafka::TopicPartition, HeldPosition> held;
  if (topics.empty()) return held;
  if (read_db.exec("SELECT to_regclass('syncline.offsets') IS NOT NULL").value(0, 0) != "t") return held;
  std::string array = "{";
  for (const auto& topic : topics) {
    if (array.size() > 1) array += ',';
    array += '"' + topic + '"';  // topic names are [A-Za-z0-9._-]: nothing to escape
  }
  array += '}';
  const auto result = read_db.exec(
      "SELECT topic, partition, next_offset, last_commit_lsn::text, "
      "to_char(last_commit_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
      "FROM syncline.offsets WHERE consumer_group = $1 AND topic = ANY($2::text[])",
      {group, array});
  for (int row = 0; row < result.rows(); ++row) {
    HeldPosition position{std::stoll(std::string(result.value(row, 2))), std::nullopt, result.get(row, 4)};
    if (!result.is_null(row, 3)) position.commit_lsn = Lsn::parse(result.value(row, 3));
    held[{std::string(result.value(row, 0)), std::stoi(std::string(result.value(row, 1)))}] = std::move(position);
  }
  return held;
}

GroupState read_group_state(kafka::AdminClient& admin, const TopicCatalog& catalog, Sink sink,
                            const std::string& group, const std::vector<std::string>& topics,
                            pg::PgConnection* read_db) {
  GroupState state;
  std::vector<kafka::TopicPartition> partitions;
  for (const auto& topic : topics) {
    const auto it = catalog.find(topic);
    if (it == catalog.end()) {
      state.missing_topics.push_back(topic);
      continue;
    }
    for (int p = 0; p < it->second; ++p) partitions.push_back({topic, p});
  }
  std::map<kafka::TopicPartition, kafka::TopicPartitionOffset> committed;
  for (auto& offset : admin.group_offsets(group, partitions, kKafkaTimeout))
    committed[{offset.topic, offset.partition}] = std::move(offset);
  std::map<kafka::TopicPartition, HeldPosition> stored;
  if (sink == Sink::pg) {
    if (read_db == nullptr) throw std::logic_error("read_group_state: a pg group needs the read database");
    stored = read_pg_offsets(*read_db, group, topics);
  }
  for (const auto& partition : partitions) {
    PartitionState entry{partition, admin.watermark_offsets(partition.topic, partition.partition, kKafkaTimeout),
                         std::nullopt, std::nullopt};
    const auto commit = committed.find(partition);
    if (commit != committed.end() && commit->second.offset >= 0) entry.kafka_committed = commit->second.offset;
    if (sink == Sink::pg) {
      if (const auto it = stored.find(partition); it != stored.end()) entry.held = it->second;
    } else if (entry.kafka_committed) {
      HeldPosition held{*entry.kafka_committed, std::nullopt, std::nullopt};
      if (const auto metadata = es_projector::parse_commit_metadata(commit->second.metadata)) {
        if (metadata->commit_lsn) held.commit_lsn = Lsn::parse(*metadata->commit_lsn);
        held.commit_ts = metadata->commit_ts;
      }
      entry.held = std::move(held);
    }
    state.partitions.push_back(std::move(entry));
  }
  return state;
}

AppliedPosition newest_applied(const std::vector<PartitionState>& partitions, const std::vector<std::string>& topics) {
  AppliedPosition newest;
  for (const auto& partition : partitions) {
    if (!partition.held || std::find(topics.begin(), topics.end(), partition.partition.topic) == topics.end()) continue;
    const HeldPosition& held = *partition.held;
    if (held.commit_lsn && (!newest.commit_lsn || *held.commit_lsn > *newest.commit_lsn))
      newest.commit_lsn = held.commit_lsn;
    if (!held.commit_ts) continue;
    const auto time = parse_iso_utc(*held.commit_ts);
    if (time && (!newest.commit_time || *time > *newest.commit_time)) {
      newest.commit_time = time;
      newest.commit_ts = held.commit_ts;
    }
  }
  return newest;
}

// ---------------------------------------------------------------------------------------------
// Finding an offset by source LSN

std::int64_t first_offset_at_or_after_lsn(Lsn target, const kafka::WatermarkOffsets& range, const RecordProbe& probe) {
  // Invariant: every record before `low` has a commit LSN below the target, and the first record
  // at or after `high` (or the end) has one at or above it.
  std::int64_t low = range.low;
  std::int64_t high = range.high;
  while (low < high) {
    const std::int64_t middle = low + (high - low) / 2;
    const auto record = probe(middle);
    if (!record || record->offset >= high) {
      high = middle;  // nothing between middle and high: the same record answers for both
      continue;
    }
    if (!record->commit_lsn) {
      throw std::runtime_error(fmt::format("the record at offset {} has no commit LSN (no syncline-commit-lsn header "
                                           "and no source.commit_lsn): cannot search this partition by LSN",
                                           record->offset));
    }
    if (*record->commit_lsn >= target) {
      high = middle;
    } else {
      low = record->offset + 1;
    }
  }
  const auto record = probe(low);
  return record && record->offset < range.high ? record->offset : range.high;
}

std::optional<Lsn> record_commit_lsn(const kafka::Message& message) {
  if (const auto header = message.header(kafka_header::commit_lsn)) return Lsn::parse(*header);
  const auto value = nlohmann::json::parse(message.value(), nullptr, false);
  if (!value.is_object()) return std::nullopt;
  const auto source = value.find("source");
  if (source == value.end() || !source->is_object()) return std::nullopt;
  const auto lsn = source->find("commit_lsn");
  if (lsn == source->end() || !lsn->is_string()) return std::nullopt;
  return Lsn::parse(lsn->get<std::string>());
}

PartitionReader::PartitionReader(const KafkaConfig& kafka, kafka::TopicPartition partition,
                                 std::chrono::milliseconds timeout)
    : partition_(std::move(partition)),
      timeout_(timeout),
      consumer_(reader_properties(kafka, fmt::format("syncline-ctl-reader-{}", ::getpid()))) {}

std::optional<ProbedRecord> PartitionReader::first_at_or_after(std::int64_t offset) {
  consumer_.assign({{partition_.topic, partition_.partition, offset}});
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (std::chrono::steady_clock::now() < deadline) {
    auto message = consumer_.poll(std::chrono::milliseconds(200));
    if (!message) continue;
    if (message->error() == RD_KAFKA_RESP_ERR__PARTITION_EOF) return std::nullopt;
    if (!message->ok()) {
      if (kafka::classify(message->error()) == kafka::ErrorClass::retriable) continue;
      throw kafka::KafkaError(message->error(), fmt::format("reading {}/{} at offset {}: {}", partition_.topic,
                                                            partition_.partition, offset, message->error_message()));
    }
    if (message->partition() != partition_.partition || message->offset() < offset) continue;
    return ProbedRecord{message->offset(), record_commit_lsn(*message)};
  }
  throw kafka::KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT,
                          fmt::format("reading {}/{} at offset {}: no record and no end of partition within {} ms",
                                      partition_.topic, partition_.partition, offset, timeout_.count()));
}

}  // namespace syncline::ctl
