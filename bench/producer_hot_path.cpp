// Microbenchmark of the producer's CPU path without I/O: pgoutput bytes -> Pipeline -> EventRouter ->
// encoded Kafka records, into a sink that only checksums what it receives. Built with the project.
//
//   build/default/bench/producer_hot_path [outbox|varied|rows|messages|all] [EVENTS] [ROUNDS]
//
// Prints CPU ns per event and a checksum of every published record (topic, key, value, headers): a
// change that keeps the checksum of a mode keeps the producer's output byte for byte.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/logging.hpp"
#include "producer/event_router.hpp"
#include "producer/pipeline.hpp"
#include "tests/support/pgoutput_writer.hpp"
#include "producer/value_mapping.hpp"

namespace syncline::producer {
namespace {

using test::PgoutputWriter;
using test::relation_message;


constexpr std::uint64_t kCommitTimeMicros = 848'052'000'123'456;


using pg_type::kBool, pg_type::kBytea, pg_type::kFloat8, pg_type::kInt4, pg_type::kInt4Array, pg_type::kInt8,
    pg_type::kJsonb, pg_type::kNumeric, pg_type::kText, pg_type::kTextArray, pg_type::kTimestamp,
    pg_type::kTimestamptz, pg_type::kUuid, pg_type::kDate;

RelationColumn column(std::string name, Oid type) { return {false, std::move(name), type, -1}; }
RelationColumn key(std::string name, Oid type) { return {true, std::move(name), type, -1}; }

const RelationInfo kOutbox{16384,
                           "public",
                           "outbox",
                           ReplicaIdentity::default_identity,
                           {key("id", kUuid), column("aggregate_type", kText), column("aggregate_id", kText),
                            column("event_type", kText), column("payload", kJsonb),
                            column("occurred_at", kTimestamptz), column("headers", kJsonb)}};
const RelationInfo kOrders{
    16390,
    "public",
    "orders",
    ReplicaIdentity::default_identity,
    {key("id", kInt8), column("status", kText), column("amount", kNumeric), column("paid", kBool),
     column("ratio", kFloat8), column("tags", kTextArray), column("counts", kInt4Array),
     column("attrs", kJsonb), column("created_at", kTimestamptz), column("local_at", kTimestamp),
     column("day", kDate), column("blob", kBytea), column("ref", kUuid), column("qty", kInt4)}};

std::string uuid(std::uint64_t n) {
  return fmt::format("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}", n * 2654435761U & 0xffffffffU, n & 0xffffU,
                     n & 0xfffU, (n >> 4U) & 0xfffU, n * 11400714819323198485ULL & 0xffffffffffffULL);
}

// The payloads of the varied mode: jsonb's own output and what json columns or text may hold,
// including what the producer must reject.
const std::vector<std::string> kVariedPayloads{
    R"({"i": 1, "text": "xxxxxxxx"})",
    R"({"id": 7, "amount": "12.50", "customer": {"name": "Zoë Ångström", "tags": ["a", "b"]}})",
    R"({"b": 1, "aa": 2, "ccc": [1, 2.5, -3, 1e10, 0.1, 1.0, -0, 100.00]})",
    R"({"quote": "he said \"hi\"\n\ttab \\ slash \/ \u00e9 \u0001 \ud83d\ude00"})",
    R"([1, "two", null, true, false, {"z": {}, "y": []}])",
    R"("just a string")",
    R"(12345678901234567890)",
    R"(-9223372036854775808)",
    R"(18446744073709551616)",
    R"(3.141592653589793)",
    R"({"dup": 1, "dup": 2})",
    R"({"nested": {"deeper": {"deepest": [[[]]]}}, "": "empty key", "A": "upper"})",
    R"(  { "spaces" :  [ 1 , 2 ] }  )",
    R"(null)",
    R"({"bad": })",
    R"({"ctrl": "a\u001fb\u007fc"})",
    "{\"raw\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
    "{\"invalid\": \"\xc3\x28\"}",
    R"({"k": 1} trailing)",
    R"({"e": [1E2, 1e-2, 2E+3, 0, -1, 123456789012]})",
};

struct Workload {
  std::vector<std::pair<Lsn, std::string>> messages;  // XLogData payloads in stream order
  std::size_t events = 0;
};

class WorkloadBuilder {
 public:
  void txn(const std::vector<std::string>& changes) {
    const Lsn commit_lsn{next_ + 0x100 * (changes.size() + 1)};
    const Lsn end_lsn{commit_lsn.value() + 0x30};
    add(Lsn(next_),
        PgoutputWriter('B').u64(commit_lsn.value()).u64(kCommitTimeMicros + xid_).u32(xid_).bytes());
    for (std::size_t i = 0; i < changes.size(); ++i) add(Lsn(next_ + 0x100 * (i + 1)), changes[i]);
    add(commit_lsn, PgoutputWriter('C')
                        .u8(0)
                        .u64(commit_lsn.value())
                        .u64(end_lsn.value())
                        .u64(kCommitTimeMicros + xid_)
                        .bytes());
    ++xid_;
    next_ = end_lsn.value() + 0x100;
    workload.events += changes.size();
  }
  void add(Lsn lsn, std::string bytes) { workload.messages.emplace_back(lsn, std::move(bytes)); }

  Workload workload;

 private:
  std::uint64_t next_ = 0x1000000;
  Xid xid_ = 700;
};

std::string outbox_insert(std::uint64_t n, const std::string& payload, std::optional<std::string> headers) {
  return PgoutputWriter('I')
      .u32(kOutbox.relation_id)
      .u8('N')
      .tuple({uuid(n), "bench", fmt::format("agg-{}", n % 1000), "Happened", payload,
              "2026-11-22 10:00:00." + fmt::format("{:06}", n % 1000000) + "+00", std::move(headers)})
      .bytes();
}

// As scripts/bench writes them: jsonb_build_object('i', i, 'text', repeat('x', 100)).
Workload outbox_workload(std::size_t events) {
  WorkloadBuilder builder;
  builder.add(Lsn(0x100), relation_message(kOutbox));
  const std::string text(100, 'x');
  for (std::size_t i = 0; i < events; i += 10) {
    std::vector<std::string> changes;
    for (std::size_t j = i; j < i + 10; ++j) {
      changes.push_back(outbox_insert(j, fmt::format(R"({{"i": {}, "text": "{}"}})", j, text), std::nullopt));
    }
    builder.txn(changes);
  }
  return builder.workload;
}

Workload varied_workload(std::size_t events) {
  WorkloadBuilder builder;
  builder.add(Lsn(0x100), relation_message(kOutbox));
  const std::vector<std::optional<std::string>> headers{std::nullopt, R"({"trace": "abc", "n": 1})", "null",
                                                        R"([1])",     R"({"b": 2, "a": 1.5})",       "nope"};
  for (std::size_t i = 0; i < events; i += 10) {
    std::vector<std::string> changes;
    for (std::size_t j = i; j < i + 10; ++j) {
      if (j % 97 == 5) {  // an outbox row with an odd occurred_at or id
        changes.push_back(PgoutputWriter('I')
                              .u32(kOutbox.relation_id)
                              .u8('N')
                              .tuple({j % 2 ? uuid(j) : "not-a-uuid", "bench", "agg", "T", R"({"a": 1})",
                                      j % 3 ? "2026-11-22T10:00:00+02:00" : "yesterday", std::nullopt})
                              .bytes());
        continue;
      }
      if (j % 89 == 3) {  // missing fields
        changes.push_back(
            PgoutputWriter('I')
                .u32(kOutbox.relation_id)
                .u8('N')
                .tuple({uuid(j), std::nullopt, "", "T", std::nullopt, "2026-11-22 10:00:00+00", std::nullopt})
                .bytes());
        continue;
      }
      changes.push_back(
          outbox_insert(j, kVariedPayloads[j % kVariedPayloads.size()], headers[j % headers.size()]));
    }
    builder.txn(changes);
  }
  return builder.workload;
}

std::vector<std::optional<std::string>> order_row(std::size_t n) {
  const std::vector<std::string> statuses{"new", "paid", "shipped \"fast\"", "Zoë", "a\tb"};
  return {std::to_string(n),
          statuses[n % statuses.size()],
          fmt::format("{}.{:02}", n * 7, n % 100),
          n % 2 ? "t" : "f",
          n % 5 == 0 ? "NaN" : fmt::format("{}", static_cast<double>(n) / 7.0),
          R"({a,"b c",NULL,"d\"e"})",
          "{1,2,3}",
          n % 3 ? R"({"k": [1, 2], "b": "x"})" : "[]",
          "2026-11-22 10:00:00.5+00",
          "2026-11-22 10:00:00",
          "2026-11-22",
          "\\xdeadbeef",
          uuid(n),
          n % 7 ? std::optional<std::string>(std::to_string(n % 50)) : std::nullopt};
}

Workload rows_workload(std::size_t events) {
  WorkloadBuilder builder;
  builder.add(Lsn(0x100), relation_message(kOrders));
  for (std::size_t i = 0; i < events; i += 10) {
    std::vector<std::string> changes;
    for (std::size_t j = i; j < i + 10; ++j) {
      switch (j % 4) {
        case 0:
        case 1:
          changes.push_back(PgoutputWriter('I').u32(kOrders.relation_id).u8('N').tuple(order_row(j)).bytes());
          break;
        case 2: {  // an update that changes the key: a delete and a create
          auto writer = PgoutputWriter('U').u32(kOrders.relation_id).u8('K');
          auto old_row = std::vector<std::optional<std::string>>(kOrders.columns.size());
          old_row[0] = std::to_string(j + 1000000);
          writer.tuple(old_row).u8('N').tuple(order_row(j));
          changes.push_back(writer.bytes());
          break;
        }
        default: {
          auto old_row = std::vector<std::optional<std::string>>(kOrders.columns.size());
          old_row[0] = std::to_string(j);
          changes.push_back(PgoutputWriter('D').u32(kOrders.relation_id).u8('K').tuple(old_row).bytes());
          break;
        }
      }
    }
    builder.txn(changes);
  }
  return builder.workload;
}

Workload messages_workload(std::size_t events) {
  WorkloadBuilder builder;
  for (std::size_t i = 0; i < events; i += 10) {
    std::vector<std::string> changes;
    for (std::size_t j = i; j < i + 10; ++j) {
      const auto content = fmt::format(
          R"({{"id": "{}", "type": "Happened", "aggregate_type": "chat", "aggregate_id": "c-{}", )"
          R"("occurred_at": "2026-11-22T10:00:00.{:03}Z", "payload": {{"n": {}, "f": {}}}}})",
          uuid(j), j % 10, j % 1000, j, static_cast<double>(j) / 3.0);
      changes.push_back(
          PgoutputWriter('M').u8(1).u64(0x5000 + j).c_string("syncline").counted(content).bytes());
    }
    builder.txn(changes);
  }
  return builder.workload;
}

// Order-sensitive and length-delimited, so "ab"+"c" differs from "a"+"bc".
std::uint64_t fnv(std::uint64_t hash, std::string_view bytes) {
  hash = (hash ^ std::hash<std::string_view>{}(bytes)) * 1099511628211ULL;
  return (hash ^ bytes.size()) * 1099511628211ULL;
}

class ChecksumSink final : public EventSink {
 public:
  void ensure_topics(const std::vector<kafka::NewTopic>& topics) override {
    for (const auto& topic : topics) checksum = fnv(checksum, topic.name);
  }
  void begin() override {}
  void publish(OutgoingRecord record) override {
    const auto& message = record.message;
    checksum = fnv(checksum, message.topic);
    checksum = fnv(checksum, message.key ? "k" + *message.key : "-");
    checksum = fnv(checksum, message.value);
    for (const auto& header : message.headers) checksum = fnv(fnv(checksum, header.key), header.value);
    checksum = fnv(checksum, record.kind == RecordKind::event ? "e" : "d");
    ++records;
    bytes += message.value.size();
  }
  void commit(const SourcePosition& position) override {
    checksum = fnv(checksum, encode_position(position));
  }

  std::uint64_t checksum = 14695981039346656037ULL;
  std::size_t records = 0;
  std::size_t bytes = 0;
};

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void run(const std::string& mode, const Workload& workload, int rounds) {
  std::vector<double> per_event;
  ChecksumSink last;
  for (int round = 0; round < rounds; ++round) {
    RouterOptions options;
    options.captured_tables = {{"public", "orders"}};
    options.outbox_table = "outbox";
    EventRouter router(options);
    ChecksumSink sink;
    PipelineOptions pipeline_options;
    pipeline_options.batch_max = std::chrono::milliseconds(0);  // a Kafka commit per source transaction
    Pipeline pipeline(router, sink, pipeline_options, ResumeFilter(), PositionContext{},
                      [] { return std::chrono::steady_clock::time_point{}; });
    const double started = cpu_seconds();
    for (const auto& [lsn, bytes] : workload.messages) pipeline.on_message(lsn, bytes);
    pipeline.flush();
    per_event.push_back((cpu_seconds() - started) * 1e9 / static_cast<double>(workload.events));
    last = sink;
  }
  std::sort(per_event.begin(), per_event.end());
  fmt::print(
      "{:9} {:7} events -> {:7} records {:10} bytes  median {:6.0f} ns/event (min {:6.0f})  checksum "
      "{:016x}\n",
      mode, workload.events, last.records, last.bytes, per_event[per_event.size() / 2], per_event.front(),
      last.checksum);
}

}  // namespace
}  // namespace syncline::producer

int main(int argc, char** argv) {
  using namespace syncline::producer;
  const std::string mode = argc > 1 ? argv[1] : "all";
  const std::size_t events = argc > 2 ? std::stoul(argv[2]) : 100000;
  const int rounds = argc > 3 ? std::stoi(argv[3]) : 5;
  syncline::log::init({.level = "off", .format = syncline::log::Format::text});
  if (mode == "outbox" || mode == "all") run("outbox", outbox_workload(events), rounds);
  if (mode == "varied" || mode == "all") run("varied", varied_workload(events), rounds);
  if (mode == "rows" || mode == "all") run("rows", rows_workload(events), rounds);
  if (mode == "messages" || mode == "all") run("messages", messages_workload(events), rounds);
  return 0;
}
