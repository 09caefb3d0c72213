// Load generator of `scripts/bench pg-projector`: publishes envelopes into Kafka as the producer
// would, and writes the rows they stand for as CSV, so the read database can load the same rows by
// COPY for comparison. Built with the project; not timed by the benchmark.
//
//   pg_projector_load mirror <bootstrap> <topic> <count> <csv-out>   row changes (op c) of public.<table>
//   pg_projector_load events <bootstrap> <topic> <count> <csv-out>   domain events 'Happened' of 'bench'
//   pg_projector_load delete-topics <bootstrap> <prefix>             deletes every topic named <prefix>.*
//
// mirror/events create the topic (3 partitions, kept forever), publish in Kafka transactions of
// 1000 events and print one line per partition: "<partition> <offset after its last event> <end
// offset>". The end offset is past the last transaction marker, so the projector's stored offset
// reaches it only once it has moved past the markers too.
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
  std::vector<std::string> csv;  // the row's fields, in the CSV's column order
};

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

Published mirror_event(std::uint64_t i, std::string_view table) {
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
  const json& row = *envelope.after;
  return {encode_envelope(envelope),
          envelope.aggregate_id,
          envelope.type,
          {row["active"].dump(), row["amount"].dump(), row["created_at"].get<std::string>(),
           csv_field(row["doc"].dump()), row["id"].dump(), row["name"].get<std::string>(),
           envelope.source.commit_lsn.to_string(), std::to_string(envelope.source.seq)}};
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
  return {encode_envelope(envelope),
          message_key(envelope, {}),
          envelope.type,
          {envelope.id, envelope.aggregate_id, amount, csv_field(label), envelope.occurred_at}};
}

// Offsets of one partition after publishing.
struct PartitionEnd {
  std::int64_t after_last_event = 0;
  std::int64_t end = 0;
};

int publish(std::string_view mode, const std::string& bootstrap, const std::string& topic,
            std::uint64_t count, const std::string& csv_path) {
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

  std::ofstream csv(csv_path);
  if (!csv) throw std::runtime_error("cannot write " + csv_path);
  // The table part of "<prefix>.public.<table>"; unused for domain events.
  const std::string table = topic.substr(topic.rfind('.') + 1);
  for (std::uint64_t first = 0; first < count; first += kTransactionEvents) {
    producer.begin_transaction();
    for (std::uint64_t i = first; i < std::min(count, first + kTransactionEvents); ++i) {
      const Published event = mode == "mirror" ? mirror_event(i, table) : domain_event(i);
      kafka::OutgoingMessage message{.topic = topic, .key = event.key, .value = event.value};
      message.headers.push_back({std::string(kafka_header::event_type), event.type});
      producer.produce(message);
      for (std::size_t f = 0; f < event.csv.size(); ++f) csv << (f == 0 ? "" : ",") << event.csv[f];
      csv << '\n';
    }
    producer.commit_transaction();  // flushes, serving the delivery reports
    if (!delivery_error.empty()) throw std::runtime_error("a message was not delivered: " + delivery_error);
  }
  csv.close();
  if (!csv) throw std::runtime_error("writing " + csv_path + " failed");

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

int delete_topics(const std::string& bootstrap, const std::string& prefix) {
  kafka::AdminClient admin({{"bootstrap.servers", bootstrap}});
  std::vector<std::string> ours;
  for (const auto& topic : admin.list_topics(30s)) {
    if (topic.name.starts_with(prefix + ".")) ours.push_back(topic.name);
  }
  if (!ours.empty()) admin.delete_topics(ours, 60s);
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: pg_projector_load mirror|events <bootstrap> <topic> <count> <csv-out>\n"
               "       pg_projector_load delete-topics <bootstrap> <prefix>\n");
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
      return publish(args[0], args[1], args[2], count, args[4]);
    }
    if (args.size() == 3 && args[0] == "delete-topics") return delete_topics(args[1], args[2]);
    return usage();
  } catch (const std::exception& error) {
    std::fprintf(stderr, "pg_projector_load: %s\n", error.what());
    return 1;
  }
}
