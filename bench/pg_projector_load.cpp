// Load generator of `scripts/bench pg-projector` and `scripts/bench es-projector`: publishes
// envelopes into Kafka as the producer would, and writes what they stand for in the form the
// target loads natively (CSV for COPY, bulk bodies for Elasticsearch), so the benchmark can compare
// the projector with the target's own ingest of the same data. Built with the project; not timed.
//
//   pg_projector_load mirror <bootstrap> <topic> <count> <csv-out>   row changes (op c) of public.<table>
//   pg_projector_load events <bootstrap> <topic> <count> <csv-out>   domain events 'Happened' of 'bench'
//   pg_projector_load es-mirror <bootstrap> <topic> <count> <ndjson-out> <index>
//                                                                    the row changes of `mirror`, and the
//                                                                    es-projector's bulk actions for them
//   pg_projector_load watch-group <bootstrap> <group> <topic> <timeout-s> < ends
//                                                                    reports the group's committed offsets
//   pg_projector_load delete-topics <bootstrap> <prefix>             deletes every topic named <prefix>.*
//   pg_projector_load delete-group <bootstrap> <group>               deletes an empty consumer group
//
// mirror/events/es-mirror create the topic (3 partitions, kept forever), publish in Kafka
// transactions of 1000 events and print one line per partition: "<partition> <offset after its
// last event> <end offset>". The end offset is past the last transaction marker, so a projector's
// stored offset reaches it only once it has moved past the markers too.
//
// es-mirror writes, per event, the bulk action the es-projector sends for it
// (consumers/es/es_client.cpp bulk_body) and the document (consumers/es/document_planner.cpp: the
// envelope's `after` read back from the published value, plus syncline_version), two NDJSON lines.
//
// watch-group reads those partition lines on stdin and polls the consumer group's committed
// offsets every 20 ms (without joining the group), printing wall-clock times (seconds since the
// epoch) as the group gets there: "ready" once it can read them, "first <t> <sum of the committed
// offsets>" at the first commit, "applied <t>" once every partition's offset has passed its last
// event, "end <t>" once they reached the end offsets; then it exits 0. It exits 1 if the events
// are not applied within <timeout-s>, or the end offsets not reached 10 s later.
//
// CSV columns (no header), in the order of the tables the benchmark creates:
//   mirror: active, amount, created_at, doc, id, name, _syncline_lsn, _syncline_seq
//           (the projector creates mirror columns in name order, then the position columns)
//   events: event_id, aggregate_id, amount, label, occurred_at
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/envelope.hpp"
#include "common/kafka.hpp"
#include "common/lsn.hpp"

namespace syncline::bench {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kPartitions = 3;
constexpr std::uint64_t kTransactionEvents = 1000;
constexpr std::uint64_t kFirstCommitLsn = 0x3000000;
constexpr std::uint64_t kLsnPerTransaction = 0x40000;  // room for 1000 changes of ~200 bytes of WAL

// Fixed texts, so two runs publish the same bytes.
constexpr std::string_view kCommitTs = "2026-11-22T10:00:00.125Z";
constexpr std::array<std::string_view, 4> kTags{"new", "vip", "eu", "returning"};

std::string csv_field(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string iso_time(std::uint64_t i) {
  // Spread over one day, millisecond precision, as the producer prints timestamps.
  const std::uint64_t ms = (i * 7919) % 86'400'000;
  return fmt::format("2026-11-21T{:02}:{:02}:{:02}.{:03}Z", ms / 3'600'000, ms / 60'000 % 60, ms / 1000 % 60,
                     ms % 1000);
}

// A mirror row of ~200 bytes: the kinds of column a mirror infers (bigint, double precision,
// boolean, text, jsonb).
json mirror_row(std::uint64_t i) {
  return {{"id", i + 1},
          {"name", fmt::format("customer {:07} {}", i + 1, std::string(20 + i % 20, 'n'))},
          {"amount", static_cast<double>((i * 1237) % 100'000) / 100.0 + 0.25},
          {"active", i % 3 != 0},
          {"doc",
           {{"tags", {kTags.at(i % kTags.size()), kTags.at((i + 1) % kTags.size())}},
            {"score", (i * 31) % 1000},
            {"address", {{"city", "Lyon"}, {"zip", fmt::format("{:05}", i % 100'000)}}}}},
          {"created_at", iso_time(i)}};
}

struct Published {
  std::string value;
  std::string key;
  std::string type;
  std::string output;  // what the output file gets for it: a CSV line, or a bulk action and its document
};

std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t f = 0; f < fields.size(); ++f) {
    if (f > 0) line += ',';
    line += fields[f];
  }
  line += '\n';
  return line;
}

EventSource source_of(std::uint64_t i, std::string_view table) {
  const std::uint64_t transaction = i / kTransactionEvents;
  const std::uint64_t seq = i % kTransactionEvents;
  EventSource source;
  source.db = "write";
  source.schema = "public";
  source.table = std::string(table);
  source.commit_lsn = Lsn(kFirstCommitLsn + (transaction + 1) * kLsnPerTransaction);
  source.lsn = Lsn(source.commit_lsn.value() - kLsnPerTransaction + 0x100 * (seq + 1));
  source.seq = seq + 1;
  source.txid = 5000 + transaction;
  source.commit_ts = std::string(kCommitTs);
  return source;
}

Envelope mirror_envelope(std::uint64_t i, std::string_view table) {
  Envelope envelope;
  envelope.source = source_of(i, table);
  envelope.id = fmt::format("{}:{}", envelope.source.lsn.to_string(), envelope.source.seq);
  envelope.type = fmt::format("public.{}.c", table);
  envelope.aggregate_type = fmt::format("public.{}", table);
  envelope.occurred_at = std::string(kCommitTs);
  envelope.payload = nullptr;
  envelope.op = Op::create;
  envelope.after = mirror_row(i);
  const std::vector<std::string> primary_key{"id"};
  envelope.aggregate_id = message_key(envelope, primary_key);
  return envelope;
}

Published mirror_event(std::uint64_t i, std::string_view table) {
  const Envelope envelope = mirror_envelope(i, table);
  const json& row = *envelope.after;
  return {encode_envelope(envelope), envelope.aggregate_id, envelope.type,
          csv_line({row["active"].dump(), row["amount"].dump(), row["created_at"].get<std::string>(),
                    csv_field(row["doc"].dump()), row["id"].dump(), row["name"].get<std::string>(),
                    envelope.source.commit_lsn.to_string(), std::to_string(envelope.source.seq)})};
}

// The es-projector's write for a row change of a mirrored table: _id the primary key's value as
// text, the document the `after` it reads from the value (nlohmann's key order, as it dumps it)
// with syncline_version, an external_gte version of the commit LSN.
Published es_mirror_event(std::uint64_t i, std::string_view table, const std::string& index) {
  const Envelope envelope = mirror_envelope(i, table);
  std::string value = encode_envelope(envelope);
  json document = json::parse(value).at("after");
  const auto version = static_cast<std::int64_t>(envelope.source.commit_lsn.value());
  document["syncline_version"] = version;
  const json key = json::parse(envelope.aggregate_id);
  if (key.size() != 1)
    throw std::logic_error("a mirror row needs a one-column key: " + envelope.aggregate_id);
  const json& id = key.begin().value();
  const std::string id_text = id.is_string() ? id.get<std::string>() : id.dump();
  std::string output =
      fmt::format(R"({{"index":{{"_index":{},"_id":{},"version":{},"version_type":"external_gte"}}}})",
                  json(index).dump(), json(id_text).dump(), version);
  output += '\n';
  output += document.dump();
  output += '\n';
  return {std::move(value), envelope.aggregate_id, envelope.type, std::move(output)};
}

Published domain_event(std::uint64_t i) {
  Envelope envelope;
  envelope.source = source_of(i, "outbox");
  envelope.id = fmt::format("00000000-0000-4000-8000-{:012x}", i + 1);
  envelope.type = "Happened";
  envelope.aggregate_type = "bench";
  envelope.aggregate_id = fmt::format("agg-{}", i % 1000);
  envelope.occurred_at = iso_time(i);
  const std::string amount = fmt::format("{}.{:02}", (i * 1237) % 10'000, i % 100);
  const std::string label = fmt::format("order {} of {}", i + 1, envelope.aggregate_id);
  // An amount as the producer writes a numeric: a JSON number with its digits as written.
  envelope.payload = {{"amount", json::parse(amount)}, {"label", label}, {"text", std::string(100, 'x')}};
  return {encode_envelope(envelope), message_key(envelope, {}), envelope.type,
          csv_line({envelope.id, envelope.aggregate_id, amount, csv_field(label), envelope.occurred_at})};
}

// Offsets of one partition after publishing.
struct PartitionEnd {
  std::int64_t after_last_event = 0;
  std::int64_t end = 0;
};

// `index`: the alias of es-mirror's bulk actions; unused by the other modes.
int publish(std::string_view mode, const std::string& bootstrap, const std::string& topic,
            std::uint64_t count, const std::string& out_path, const std::string& index) {
  kafka::AdminClient admin({{"bootstrap.servers", bootstrap}});
  admin.create_topics({{topic, kPartitions, -1, {{"retention.ms", "-1"}}}}, 30s);

  std::map<std::int32_t, std::int64_t> last_offset;
  std::string delivery_error;
  // The producer's own settings (producer/kafka_event_sink.cpp), so the projector reads batches
  // shaped as in production.
  kafka::TransactionalProducer producer({{"bootstrap.servers", bootstrap},
                                         {"transactional.id", topic + ".loader"},
                                         {"linger.ms", "20"},
                                         {"compression.type", "lz4"}},
                                        [&](const kafka::DeliveryReport& report) {
                                          if (!report.ok()) {
                                            if (delivery_error.empty()) delivery_error = report.error_message;
                                            return;
                                          }
                                          auto& last = last_offset[report.partition];
                                          last = std::max(last, report.offset);
                                        });
  producer.init_transactions(30s);
  (void)producer.load_topic_metadata(topic, 10s);

  std::ofstream out(out_path);
  if (!out) throw std::runtime_error("cannot write " + out_path);
  // The table part of "<prefix>.public.<table>"; unused for domain events.
  const std::string table = topic.substr(topic.rfind('.') + 1);
  for (std::uint64_t first = 0; first < count; first += kTransactionEvents) {
    producer.begin_transaction();
    for (std::uint64_t i = first; i < std::min(count, first + kTransactionEvents); ++i) {
      const Published event = mode == "mirror"      ? mirror_event(i, table)
                              : mode == "es-mirror" ? es_mirror_event(i, table, index)
                                                    : domain_event(i);
      kafka::OutgoingMessage message{.topic = topic, .key = event.key, .value = event.value};
      message.headers.push_back({std::string(kafka_header::event_type), event.type});
      producer.produce(message);
      out << event.output;
    }
    producer.commit_transaction();  // flushes, serving the delivery reports
    if (!delivery_error.empty()) throw std::runtime_error("a message was not delivered: " + delivery_error);
  }
  out.close();
  if (!out) throw std::runtime_error("writing " + out_path + " failed");

  // Each partition's last transaction marker lands after commit_transaction() returned: wait for
  // it, so the end offsets printed are final.
  std::map<std::int32_t, PartitionEnd> ends;
  for (int partition = 0; partition < kPartitions; ++partition) {
    const auto it = last_offset.find(partition);
    if (it == last_offset.end()) continue;  // no event landed there
    auto& end = ends[partition];
    end.after_last_event = it->second + 1;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      end.end = admin.watermark_offsets(topic, partition, 10s).high;
      if (end.end > end.after_last_event) break;
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error(fmt::format("{} [{}]: no transaction marker after offset {} within 30 s",
                                             topic, partition, it->second));
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  for (const auto& [partition, end] : ends)
    std::printf("%d %lld %lld\n", partition, static_cast<long long>(end.after_last_event),
                static_cast<long long>(end.end));
  return 0;
}

// Seconds since the epoch, as `date +%s.%N` prints them for the script that reads these times.
void print_event(std::string_view what, const std::string& rest = {}) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  std::printf("%.*s %lld.%09lld%s%s\n", static_cast<int>(what.size()), what.data(),
              static_cast<long long>(ns / 1'000'000'000), static_cast<long long>(ns % 1'000'000'000),
              rest.empty() ? "" : " ", rest.c_str());
  std::fflush(stdout);
}

int watch_group(const std::string& bootstrap, const std::string& group, const std::string& topic,
                std::chrono::seconds timeout) {
  struct Target {
    std::int64_t applied = 0;
    std::int64_t end = 0;
  };
  std::vector<kafka::TopicPartition> partitions;
  std::vector<Target> targets;
  long long partition = 0;
  long long applied = 0;
  long long end = 0;
  while (std::scanf("%lld %lld %lld", &partition, &applied, &end) == 3) {
    partitions.push_back({topic, static_cast<std::int32_t>(partition)});
    targets.push_back({applied, end});
  }
  if (partitions.empty()) throw std::runtime_error("no \"<partition> <applied> <end>\" lines on stdin");

  // Never subscribed, so it reads the group's offsets (OffsetFetch) without joining the group.
  kafka::Consumer reader({{"bootstrap.servers", bootstrap}, {"group.id", group}});
  const auto committed = [&](std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      try {
        return reader.committed(partitions, 5s);
      } catch (const kafka::KafkaError& error) {
        if (std::chrono::steady_clock::now() > deadline) throw;
        std::fprintf(stderr, "watch-group: %s; retrying\n", error.what());
        std::this_thread::sleep_for(100ms);
      }
    }
  };
  auto deadline = std::chrono::steady_clock::now() + 30s;
  (void)committed(deadline);
  print_event("ready");

  deadline = std::chrono::steady_clock::now() + timeout;
  bool first = false;
  bool all_applied = false;
  for (;;) {
    const auto offsets = committed(deadline);
    std::int64_t sum = 0;
    bool any = false;
    bool applied_now = true;
    bool at_end = true;
    for (std::size_t p = 0; p < offsets.size(); ++p) {
      const std::int64_t offset = offsets[p].offset;  // RD_KAFKA_OFFSET_INVALID (< 0) before a commit
      any = any || offset >= 0;
      sum += std::max<std::int64_t>(offset, 0);
      applied_now = applied_now && offset >= targets[p].applied;
      at_end = at_end && offset >= targets[p].end;
    }
    if (!first && any) {
      first = true;
      print_event("first", std::to_string(sum));
    }
    if (!all_applied && applied_now) {
      all_applied = true;
      print_event("applied");
      deadline = std::chrono::steady_clock::now() + 10s;
    }
    if (all_applied && at_end) {
      print_event("end");
      return 0;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::int64_t wanted = 0;
      for (const Target& target : targets) wanted += all_applied ? target.end : target.applied;
      std::fprintf(stderr, "watch-group: group %s %s in time (sum of committed offsets %lld of %lld)\n",
                   group.c_str(), all_applied ? "did not reach the end offsets" : "did not apply every event",
                   static_cast<long long>(sum), static_cast<long long>(wanted));
      return 1;
    }
    std::this_thread::sleep_for(20ms);
  }
}

int delete_topics(const std::string& bootstrap, const std::string& prefix) {
  kafka::AdminClient admin({{"bootstrap.servers", bootstrap}});
  std::vector<std::string> ours;
  for (const auto& topic : admin.list_topics(30s)) {
    if (topic.name.starts_with(prefix + ".")) ours.push_back(topic.name);
  }
  if (!ours.empty()) admin.delete_topics(ours, 60s);
  return 0;
}

// librdkafka's admin objects, owned.
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const noexcept { rd_kafka_AdminOptions_destroy(options); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const noexcept { rd_kafka_event_destroy(event); }
};
struct DeleteGroupDeleter {
  void operator()(rd_kafka_DeleteGroup_t* group) const noexcept { rd_kafka_DeleteGroup_destroy(group); }
};

// A group that does not exist (any more) is not an error.
int delete_group(const std::string& bootstrap, const std::string& group) {
  kafka::AdminClient admin({{"bootstrap.servers", bootstrap}});
  rd_kafka_t* handle = admin.raw();
  const std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter> options(
      rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_DELETEGROUPS));
  std::array<char, 256> error_text{};
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), 30'000, error_text.data(),
                                                error_text.size()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(error_text.data());
  }
  const std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(handle));
  const std::unique_ptr<rd_kafka_DeleteGroup_t, DeleteGroupDeleter> request(
      rd_kafka_DeleteGroup_new(group.c_str()));
  std::array<rd_kafka_DeleteGroup_t*, 1> requests{request.get()};
  rd_kafka_DeleteGroups(handle, requests.data(), requests.size(), options.get(), queue.get());
  const std::unique_ptr<rd_kafka_event_t, EventDeleter> event(rd_kafka_queue_poll(queue.get(), 40'000));
  if (!event) throw std::runtime_error("deleting group " + group + ": no answer within 40 s");
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("deleting group " + group + ": " + rd_kafka_event_error_string(event.get()));
  std::size_t count = 0;
  const rd_kafka_group_result_t** results =
      rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(event.get()), &count);
  for (std::size_t i = 0; i < count; ++i) {
    const rd_kafka_error_t* error = rd_kafka_group_result_error(results[i]);
    if (error == nullptr) {
      std::fprintf(stderr, "pg_projector_load: deleted consumer group %s\n", group.c_str());
    } else if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
      std::fprintf(stderr, "pg_projector_load: no consumer group %s to delete\n", group.c_str());
    } else {
      throw std::runtime_error("deleting group " + group + ": " + rd_kafka_error_string(error));
    }
  }
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: pg_projector_load mirror|events <bootstrap> <topic> <count> <csv-out>\n"
               "       pg_projector_load es-mirror <bootstrap> <topic> <count> <ndjson-out> <index>\n"
               "       pg_projector_load watch-group <bootstrap> <group> <topic> <timeout-s> < ends\n"
               "       pg_projector_load delete-topics <bootstrap> <prefix>\n"
               "       pg_projector_load delete-group <bootstrap> <group>\n");
  return 2;
}

}  // namespace
}  // namespace syncline::bench

int main(int argc, char** argv) {
  using namespace syncline::bench;
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 5 && (args[0] == "mirror" || args[0] == "events")) {
      const std::uint64_t count = std::stoull(args[3]);
      if (count == 0) return usage();
      return publish(args[0], args[1], args[2], count, args[4], {});
    }
    if (args.size() == 6 && args[0] == "es-mirror") {
      const std::uint64_t count = std::stoull(args[3]);
      if (count == 0 || args[5].empty()) return usage();
      return publish(args[0], args[1], args[2], count, args[4], args[5]);
    }
    if (args.size() == 5 && args[0] == "watch-group") {
      return watch_group(args[1], args[2], args[3], std::chrono::seconds(std::stoll(args[4])));
    }
    if (args.size() == 3 && args[0] == "delete-topics") return delete_topics(args[1], args[2]);
    if (args.size() == 3 && args[0] == "delete-group") return delete_group(args[1], args[2]);
    return usage();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "pg_projector_load: %s\n", error.what());
    return 1;
  }
}
