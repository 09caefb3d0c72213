// syncline-ctl resync snapshot against the real stack: rows re-published as the producer publishes
// them, at the snapshot's position, exactly once across interruptions, and a mirror rebuilt exactly
// from a topic whose early history was deleted while the producer keeps streaming.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "common/config.hpp"
#include "common/envelope.hpp"
#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "tests/integration/producer_test_support.hpp"
#include "tests/support/ctl_harness.hpp"
#include "tests/support/pg_projector_harness.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "tools/ctl/snapshot.hpp"

namespace syncline::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class CtlSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(require_write_pg());
    ASSERT_TRUE(require_kafka());
  }
};

// The config syncline-ctl reads: the producer's Kafka prefix, write database and captured tables.
std::string ctl_config_yaml(const ProducerHarness& producer, const std::vector<std::string>& captured) {
  const auto& env = stack_env();
  return fmt::format(
      "log:\n  level: info\nkafka:\n  bootstrap_servers: {}\n  topic_prefix: {}\nwrite_db:\n  dsn: {}\n"
      "producer:\n  slot: {}\n  publication: {}\n  outbox_table: public.{}\n  message_prefix: {}\n"
      "  capture: [{}]\n",
      env.kafka_bootstrap, producer.prefix(), env.write_pg_dsn, producer.slot(), producer.slot(),
      producer.outbox_table(), producer.message_prefix(), fmt::join(captured, ", "));
}

class ConfigFile {
 public:
  explicit ConfigFile(const std::string& yaml)
      : path_(fmt::format("/tmp/{}.yaml", unique_name("ctl_snapshot"))) {
    std::ofstream(path_) << yaml;
  }
  ~ConfigFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Decoded row changes of one table's topic with the records they came from.
struct RowEvent {
  ConsumedRecord record;
  Envelope envelope;
};

std::vector<RowEvent> read_row_events(const std::string& topic, std::size_t at_least,
                                      std::chrono::milliseconds deadline = 60s) {
  std::vector<RowEvent> events;
  consume_committed_records({topic}, at_least, deadline, [&](const ConsumedRecord& record) {
    events.push_back({record, decode_envelope(record.value)});
  });
  return events;
}

std::vector<RowEvent> at_position(const std::vector<RowEvent>& events, Lsn commit_lsn) {
  std::vector<RowEvent> selected;
  for (const auto& event : events) {
    if (event.envelope.source.commit_lsn == commit_lsn) selected.push_back(event);
  }
  return selected;
}

json parse_json(const CtlResult& result) {
  try {
    return json::parse(result.out);
  } catch (const json::exception&) {
    ADD_FAILURE() << "not JSON: " << result.describe();
    return json::object();
  }
}

// The producer's commit LSN of the latest change of row `id` in `events`.
Lsn latest_commit_of(const std::vector<RowEvent>& events, const std::string& key) {
  Lsn latest;
  for (const auto& event : events) {
    if (event.record.key == key && !event.envelope.source.snapshot) {
      latest = std::max(latest, event.envelope.source.commit_lsn);
    }
  }
  return latest;
}

TEST_F(CtlSnapshot, republishes_every_row_once_as_op_r_like_the_producer_at_the_snapshot_position) {
  const std::string table = unique_name("snap_rows");
  ProducerHarness producer("ctl_snap_rows", fmt::format("  capture: [public.{}]\n", table));
  auto& write = producer.write_db();
  ScratchTable scratch(
      write, table,
      "id bigint PRIMARY KEY, name text, price numeric(10,2), created timestamptz, data bytea, "
      "tags text[], doc jsonb");
  write.exec(fmt::format(
      "INSERT INTO public.{} SELECT g, 'row ' || g, g / 4.0, timestamptz '2026-11-22 10:00:00.123+00' + g * "
      "interval '1 second', decode(lpad(to_hex(g), 8, '0'), 'hex'), ARRAY['a', g::text], "
      "jsonb_build_object('g', g) "
      "FROM generate_series(1, 2500) g",
      table));
  // The producer's initial snapshot publishes the same rows: the reference for the mapping.
  ASSERT_TRUE(start_streaming(producer));
  const std::string topic = producer.row_topic("public", table);
  auto before = read_row_events(topic, 2500);
  ASSERT_EQ(before.size(), 2500U);
  // A live change before the snapshot: the snapshot must contain it and sit above it.
  write.exec(fmt::format("UPDATE public.{} SET name = 'changed before' WHERE id = 1", table));
  ASSERT_TRUE(poll_until([&] { return read_row_events(topic, 2501, 5s).size() >= 2501; }, 60s,
                         "the live update of row 1 published"));

  ConfigFile config(ctl_config_yaml(producer, {"public." + table}));
  const auto run = run_ctl({"--config", config.path(), "resync", "snapshot", "--table", "public." + table,
                            "--chunk-rows", "1000", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  const json summary = parse_json(run);
  EXPECT_EQ(summary.value("table", ""), "public." + table);
  EXPECT_EQ(summary.value("rows", 0), 2500);
  EXPECT_EQ(summary.value("deletes", -1), 0);
  EXPECT_EQ(summary.value("chunks", 0), 3);  // 1000 + 1000 + 500
  EXPECT_FALSE(summary.value("resumed", true));
  EXPECT_TRUE(summary.contains("seconds"));
  const Lsn position = Lsn::from_string(summary.value("snapshot_lsn", "0/0"));

  // A live change after the snapshot: it must sit above the snapshot's events.
  write.exec(fmt::format("UPDATE public.{} SET name = 'changed after' WHERE id = 2", table));
  const auto events = read_row_events(topic, 2500 + 2501 + 1);
  const auto snapshot_events = at_position(events, position);
  ASSERT_EQ(snapshot_events.size(), 2500U);
  EXPECT_LT(latest_commit_of(events, R"({"id":1})"), position);
  EXPECT_GT(latest_commit_of(events, R"({"id":2})"), position);

  std::map<std::string, const RowEvent*> reference;  // the producer's initial snapshot, by key
  for (const auto& event : before) reference[*event.record.key] = &event;
  std::set<std::string> keys;
  std::set<std::uint64_t> seqs;
  for (const auto& event : snapshot_events) {
    const auto& envelope = event.envelope;
    ASSERT_TRUE(event.record.key.has_value());
    EXPECT_TRUE(keys.insert(*event.record.key).second) << "published twice: " << *event.record.key;
    EXPECT_TRUE(seqs.insert(envelope.source.seq).second);
    EXPECT_EQ(envelope.op, Op::read);
    EXPECT_TRUE(envelope.source.snapshot);
    EXPECT_EQ(envelope.source.lsn, position);
    EXPECT_EQ(envelope.type, fmt::format("public.{}.r", table));
    EXPECT_EQ(header_of(event.record, kafka_header::event_id), envelope.id);
    EXPECT_EQ(header_of(event.record, kafka_header::event_type), envelope.type);
    EXPECT_EQ(header_of(event.record, kafka_header::commit_lsn), position.to_string());
    const auto it = reference.find(*event.record.key);
    ASSERT_NE(it, reference.end()) << *event.record.key;
    const auto& expected = it->second->envelope;
    EXPECT_EQ(envelope.aggregate_type, expected.aggregate_type);
    EXPECT_EQ(envelope.aggregate_id, expected.aggregate_id);
    EXPECT_EQ(envelope.source.db, expected.source.db);
    EXPECT_EQ(envelope.source.schema, expected.source.schema);
    EXPECT_EQ(envelope.source.table, expected.source.table);
    EXPECT_EQ(event.record.partition, it->second->record.partition) << "same key, same partition";
    if (*event.record.key == R"({"id":1})") {
      EXPECT_EQ(envelope.after->at("name"), "changed before");
    } else {
      EXPECT_EQ(envelope.after, expected.after) << "the producer's value mapping";
    }
  }
  EXPECT_EQ(keys.size(), 2500U);
  EXPECT_EQ(*seqs.begin(), 1U);
  EXPECT_EQ(*seqs.rbegin(), 2500U);

  // --where: only the matching rows, under a progress key of its own.
  const auto subset = run_ctl({"--config", config.path(), "resync", "snapshot", "--table", "public." + table,
                               "--where", "id % 10 = 0 AND name <> 'x'", "--json"});
  ASSERT_EQ(subset.exit_code, 0) << subset.describe();
  const json subset_summary = parse_json(subset);
  EXPECT_EQ(subset_summary.value("rows", 0), 250);
  EXPECT_FALSE(subset_summary.value("restarted_after_done", true));
  const Lsn subset_position = Lsn::from_string(subset_summary.value("snapshot_lsn", "0/0"));
  const auto subset_events = at_position(read_row_events(topic, 2500 + 2502 + 250), subset_position);
  ASSERT_EQ(subset_events.size(), 250U);
  for (const auto& event : subset_events) {
    EXPECT_EQ(event.envelope.after->at("id").get<std::int64_t>() % 10, 0) << *event.record.key;
  }

  // The same table and predicate again: the last run finished, so it starts over and says so.
  const auto again = run_ctl({"--config", config.path(), "resync", "snapshot", "--table", "public." + table});
  ASSERT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_NE(again.err.find("started over"), std::string::npos) << again.describe();
  EXPECT_NE(again.out.find("public." + table), std::string::npos) << again.describe();

  // A table the producer does not capture is refused, naming the setting.
  const auto refused =
      run_ctl({"--config", config.path(), "resync", "snapshot", "--table", "public.not_captured"});
  EXPECT_EQ(refused.exit_code, 2) << refused.describe();
  EXPECT_NE(refused.err.find("not captured by the producer"), std::string::npos) << refused.describe();
  EXPECT_NE(refused.err.find("producer.capture"), std::string::npos) << refused.describe();
  EXPECT_EQ(producer.stop(), 0);
}

TEST_F(CtlSnapshot, targeted_keys_publish_existing_rows_and_deletes_shaped_like_the_producers) {
  const std::string table = unique_name("snap_keys");
  ProducerHarness producer("ctl_snap_keys",
                           fmt::format("  snapshot: never\n  capture: [public.{}]\n", table));
  auto& write = producer.write_db();
  ScratchTable scratch(write, table, "id bigint PRIMARY KEY, name text");
  ASSERT_TRUE(start_streaming(producer));
  write.exec(fmt::format("INSERT INTO public.{} SELECT g, 'row ' || g FROM generate_series(1, 10) g", table));
  write.exec(fmt::format("DELETE FROM public.{} WHERE id = 7", table));  // the producer's own delete
  const std::string topic = producer.row_topic("public", table);
  ASSERT_EQ(read_row_events(topic, 11).size(), 11U);

  const Config config = config_from_string(ctl_config_yaml(producer, {"public." + table}), "test");
  ctl::SnapshotRequest request{.table = {"public", table},
                               .where = {},
                               .keys = std::vector<json>{{{"id", 5}}, {{"id", 7}}, {{"id", 5}}, {{"id", 99}}},
                               .chunk_rows = 2,
                               .restart = false};
  const auto result = ctl::publish_snapshot(config, request, nullptr);
  EXPECT_EQ(result.rows, 1U);     // 5
  EXPECT_EQ(result.deletes, 2U);  // 7 and 99 do not exist; the duplicate 5 is published once
  EXPECT_EQ(result.chunks, 2U);

  const auto events = read_row_events(topic, 14);
  const auto snapshot_events = at_position(events, result.snapshot_lsn);
  ASSERT_EQ(snapshot_events.size(), 3U);
  const RowEvent* producer_delete = nullptr;
  for (const auto& event : events) {
    if (!event.envelope.source.snapshot && event.envelope.op == Op::remove) producer_delete = &event;
  }
  ASSERT_NE(producer_delete, nullptr);
  for (const auto& event : snapshot_events) {
    const auto& envelope = event.envelope;
    EXPECT_TRUE(envelope.source.snapshot);
    if (*event.record.key == R"({"id":5})") {
      EXPECT_EQ(envelope.op, Op::read);
      EXPECT_EQ(envelope.after->at("name"), "row 5");
      continue;
    }
    // Shaped like the producer's delete: op d, before = the key columns, no after, same type.
    EXPECT_EQ(envelope.op, Op::remove) << *event.record.key;
    EXPECT_FALSE(envelope.after.has_value());
    ASSERT_TRUE(envelope.before.has_value());
    EXPECT_EQ(envelope.before->dump(), *event.record.key);
    EXPECT_EQ(envelope.type, producer_delete->envelope.type);
    EXPECT_EQ(envelope.aggregate_id, *event.record.key);
    EXPECT_EQ(header_of(event.record, kafka_header::event_type), producer_delete->envelope.type);
  }

  // A key that lacks a key column is an error naming the column, before anything is published.
  request.keys = std::vector<json>{{{"name", "x"}}};
  EXPECT_THROW(ctl::publish_snapshot(config, request, nullptr), std::invalid_argument);
  EXPECT_EQ(producer.stop(), 0);
}

// Polls the progress topic until a run whose snapshot is not `other_run` has committed at least
// `rows` rows (over every run) and is not done; `last` receives that record.
::testing::AssertionResult await_progress(const std::string& topic, const std::string& key,
                                          std::uint64_t rows, Lsn other_run,
                                          ctl::SnapshotProgressRecord& last) {
  return poll_until(
      [&] {
        std::optional<ctl::SnapshotProgressRecord> latest;
        for (const auto& record : read_committed_records({topic}, 1, 2s)) {
          if (record.key == key) latest = ctl::decode_progress(record.value);
        }
        if (!latest || latest->done || latest->rows < rows || latest->snapshot_lsn == other_run) return false;
        last = *latest;
        return true;
      },
      60s, fmt::format("{} row(s) committed in the progress of {}", rows, key));
}

TEST_F(CtlSnapshot, an_interrupted_run_resumes_after_its_last_committed_chunk_and_publishes_every_row_once) {
  const std::string table = unique_name("snap_resume");
  ProducerHarness producer("ctl_snap_resume",
                           fmt::format("  snapshot: never\n  capture: [public.{}]\n", table));
  auto& write = producer.write_db();
  ScratchTable scratch(write, table, "region text, id int, payload text, PRIMARY KEY (region, id)");
  constexpr int kRows = 30000;  // 1,500 chunks of 20: long enough to interrupt twice
  write.exec(fmt::format(
      "INSERT INTO public.{} SELECT CASE WHEN g % 3 = 0 THEN 'eu' WHEN g % 3 = 1 THEN 'us' ELSE 'ap' END, g, "
      "repeat('x', 100) FROM generate_series(1, {}) g",
      table, kRows));
  ConfigFile config(ctl_config_yaml(producer, {"public." + table}));
  const std::vector<std::string> args{"--config",        config.path(),  "resync", "snapshot", "--table",
                                      "public." + table, "--chunk-rows", "20",     "--json"};
  const std::string progress_topic = ctl::snapshot_progress_topic(producer.prefix());
  const std::string progress_key = ctl::snapshot_progress_key({"public", table}, "");

  ctl::SnapshotProgressRecord progress;
  // SIGINT: the open chunk is aborted, the progress kept, exit 2 with how to resume.
  {
    CtlProcess first(args);
    first.start();
    ASSERT_TRUE(await_progress(progress_topic, progress_key, 400, Lsn(), progress)) << first.err_so_far();
    const auto stopped = first.stop(SIGINT, 60s);
    EXPECT_EQ(stopped.exit_code, 2) << stopped.describe();
    EXPECT_NE(stopped.err.find("interrupted"), std::string::npos) << stopped.describe();
    EXPECT_NE(stopped.err.find("To resume: syncline-ctl --config"), std::string::npos) << stopped.describe();
  }
  // kill -9 of the resumed run: its open Kafka transaction is left for the next run to fence.
  {
    CtlProcess second(args);
    second.start();
    // Its own chunks, not only the first run's record: the first run went on until the signal arrived.
    const Lsn first_run = progress.snapshot_lsn;
    ASSERT_TRUE(await_progress(progress_topic, progress_key, 0, first_run, progress)) << second.err_so_far();
    const auto killed = second.stop(SIGKILL, 30s);
    EXPECT_EQ(killed.exit_code, 128 + SIGKILL) << killed.describe();
  }
  const auto last = run_ctl(args);
  ASSERT_EQ(last.exit_code, 0) << last.describe();
  const json summary = parse_json(last);
  EXPECT_TRUE(summary.value("resumed", false));
  EXPECT_GE(summary.value("previous_rows", 0), 400);
  EXPECT_EQ(summary.value("previous_rows", 0) + summary.value("rows", 0), kRows);

  // Every row exactly once over the three runs (read_committed: the killed chunk is not there).
  std::map<std::string, int> seen;
  std::set<Lsn> positions;
  const auto events = read_row_events(producer.row_topic("public", table), kRows);
  for (const auto& event : events) {
    EXPECT_EQ(event.envelope.op, Op::read);
    ++seen[*event.record.key];
    positions.insert(event.envelope.source.commit_lsn);
  }
  EXPECT_EQ(events.size(), static_cast<std::size_t>(kRows));
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kRows));
  for (const auto& [key, count] : seen) EXPECT_EQ(count, 1) << key;
  EXPECT_EQ(positions.size(), 3U) << "each run reads its own snapshot";
}

// The mirror table's rows (or the write table's) as text lines, in key order; none while the
// projector has not created the table yet.
std::vector<std::string> rows_of(pg::PgConnection& db, const std::string& qualified_table) {
  if (db.exec("SELECT to_regclass($1) IS NULL", {qualified_table}).value(0, 0) == "t") return {};
  const auto result =
      db.exec(fmt::format("SELECT id::text || '|' || coalesce(name, 'NULL') || '|' || coalesce(n::text, "
                          "'NULL') FROM {} ORDER BY id",
                          qualified_table));
  std::vector<std::string> rows;
  for (int row = 0; row < result.rows(); ++row) rows.emplace_back(result.value(row, 0));
  return rows;
}

TEST_F(CtlSnapshot,
       restores_an_exact_mirror_from_a_topic_whose_early_history_was_deleted_while_the_producer_streams) {
  ASSERT_TRUE(require_read_pg());
  const std::string table = unique_name("snap_history");
  ProducerHarness producer("ctl_snap_history",
                           fmt::format("  snapshot: never\n  capture: [public.{}]\n", table));
  auto& write = producer.write_db();
  ScratchTable scratch(write, table, "id bigint PRIMARY KEY, name text, n int");
  const std::string topic = producer.row_topic("public", table);
  // A delete-policy topic, so that its early records can be deleted (Kafka refuses DeleteRecords on a
  // compacted topic); the producer uses an existing topic as it is.
  kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
  admin.create_topics({kafka::NewTopic{.name = topic,
                                       .partitions = 3,
                                       .replication_factor = -1,
                                       .config = {{"cleanup.policy", "delete"}, {"retention.ms", "-1"}}}},
                      30s);
  ASSERT_TRUE(start_streaming(producer));
  write.exec(
      fmt::format("INSERT INTO public.{} SELECT g, 'row ' || g, 0 FROM generate_series(1, 1500) g", table));
  write.exec(fmt::format("UPDATE public.{} SET n = n + 1 WHERE id % 7 = 0", table));
  write.exec(fmt::format("DELETE FROM public.{} WHERE id % 11 = 0", table));

  const std::string schema_a = unique_name("mirror_a");
  const std::string schema_b = unique_name("mirror_b");
  // Dropped however the test ends.
  struct DropSchemas {
    std::vector<std::string> names;
    ~DropSchemas() {
      try {
        pg::PgConnection db(stack_env().read_pg_dsn);
        for (const auto& name : names) db.exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", name));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "dropping the mirror schemas failed: " << e.what();
      }
    }
  } drop_schemas{{schema_a, schema_b}};
  PgProjectorHarness first(
      "ctl_snap_a", producer.prefix(),
      fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", schema_a, table));
  first.start();
  ASSERT_TRUE(first.wait_ready());
  auto& read = first.read_db();
  const std::string source = "public." + table;
  ASSERT_TRUE(poll_until([&] { return rows_of(read, schema_a + "." + table) == rows_of(write, source); }, 90s,
                         "the first mirror equal to the write table"));
  EXPECT_EQ(first.stop(), 0);

  // The topic loses its early history.
  const auto info = admin.describe_topic(topic, 10s);
  ASSERT_TRUE(info.has_value());
  std::vector<kafka::TopicPartitionOffset> ends;
  for (const auto& partition : info->partitions) {
    ends.push_back({topic, partition.id, admin.watermark_offsets(topic, partition.id, 10s).high});
  }
  admin.delete_records(ends, 30s);
  // Changes after the loss are still in the topic.
  write.exec(fmt::format("UPDATE public.{} SET name = 'late', n = n + 10 WHERE id % 50 = 1", table));
  write.exec(fmt::format(
      "INSERT INTO public.{} SELECT g, 'late row ' || g, 1 FROM generate_series(1501, 1520) g", table));
  write.exec(fmt::format("DELETE FROM public.{} WHERE id % 100 = 3", table));

  // A replay (a fresh group and schema) sees only what is left: an incomplete model.
  PgProjectorHarness second(
      "ctl_snap_b", producer.prefix(),
      fmt::format("  mirror:\n    schema: {}\n    tables: [public.{}]\n", schema_b, table));
  second.start();
  ASSERT_TRUE(second.wait_ready());
  const std::string mirror = schema_b + "." + table;
  ASSERT_TRUE(poll_until([&] { return rows_of(second.read_db(), mirror).size() >= 20 && second.caught_up(); },
                         90s, "the second mirror caught up with what is left"));
  ASSERT_LT(rows_of(second.read_db(), mirror).size(), rows_of(write, source).size())
      << "the model is incomplete";

  // The first mirror's projector comes back: the live projection that `resync replay` rebuilds below.
  first.start();
  ASSERT_TRUE(first.wait_ready());

  // resync snapshot while the application keeps changing the table (the producer streams it).
  std::atomic<bool> stop_workload{false};
  std::atomic<int> workload_changes{0};
  std::thread workload([&] {
    pg::PgConnection db(stack_env().write_pg_dsn);
    std::mt19937 random(42);
    std::uniform_int_distribution<int> id(1, 1600);
    while (!stop_workload) {
      const int row = id(random);
      switch (row % 3) {
        case 0:
          db.exec(fmt::format("UPDATE public.{} SET n = n + 1, name = 'live' WHERE id = $1", table),
                  {std::to_string(row)});
          break;
        case 1:
          db.exec(fmt::format(
                      "INSERT INTO public.{} AS cur VALUES ($1, 'live insert', 7) ON CONFLICT (id) DO UPDATE "
                      "SET n = cur.n + 100",
                      table),
                  {std::to_string(row)});
          break;
        default:
          db.exec(fmt::format("DELETE FROM public.{} WHERE id = $1", table), {std::to_string(row)});
      }
      ++workload_changes;
    }
  });
  ConfigFile config(ctl_config_yaml(producer, {source}));
  const auto run =
      run_ctl({"--config", config.path(), "resync", "snapshot", "--table", source, "--chunk-rows", "25"});
  stop_workload = true;
  workload.join();
  ASSERT_EQ(run.exit_code, 0) << run.describe();
  // Enough live changes during the snapshot for rows touched by both to be the rule, not luck.
  EXPECT_GT(workload_changes.load(), 50);
  RecordProperty("live_changes_during_snapshot", workload_changes.load());
  EXPECT_NE(run.out.find(source), std::string::npos) << run.describe();

  // The rebuilt mirror equals the write table exactly: snapshot rows where nothing newer came, the
  // live stream's changes where both touched a row.
  std::vector<std::string> expected;
  std::vector<std::string> actual;
  const bool equal = poll_until(
      [&] {
        expected = rows_of(write, source);
        actual = rows_of(second.read_db(), mirror);
        return actual == expected;
      },
      120s, "the second mirror equal to the write table");
  ASSERT_TRUE(equal) << "write " << expected.size() << " rows, mirror " << actual.size() << " rows\n"
                     << second.process().log_tail();

  // Snapshot plus replay: the live mirror rebuilt from what the topic holds now (the late history
  // and the snapshot's rows) while its projector runs, swapped in, equals the write table exactly.
  ConfigFile replay_config(ctl_config_yaml(producer, {source}) +
                           fmt::format("read_db:\n  dsn: {}\npg_projector:\n  group_id: {}\n  mirror:\n"
                                       "    schema: {}\n    tables: [{}]\n",
                                       stack_env().read_pg_dsn, first.name(), schema_a, source));
  const auto replay = run_ctl({"--config", replay_config.path(), "resync", "replay", "--projection", "mirror",
                               "--grace", "0", "--json"},
                              240s);
  ASSERT_EQ(replay.exit_code, 0) << replay.describe();
  EXPECT_EQ(json::parse(replay.out)["new_target"], schema_a) << replay.out;
  EXPECT_GT(json::parse(replay.out)["events"].get<std::int64_t>(), 0) << replay.out;
  ASSERT_TRUE(poll_until([&] { return rows_of(read, schema_a + "." + table) == rows_of(write, source); }, 120s,
                         "the replayed live mirror equal to the write table"));
  EXPECT_EQ(first.stop(), 0);

  // A row the mirror has but the write table does not (a targeted key run, as verify --repair does).
  second.read_db().exec(fmt::format(
      "INSERT INTO {} (id, name, n, _syncline_lsn, _syncline_seq) VALUES (999999, 'extra', 0, '0/1', 1)",
      mirror));
  const Config parsed = config_from_string(ctl_config_yaml(producer, {source}), "test");
  const auto repaired =
      ctl::publish_snapshot(parsed,
                            ctl::SnapshotRequest{.table = {"public", table},
                                                 .where = {},
                                                 .keys = std::vector<json>{{{"id", 999999}}},
                                                 .chunk_rows = 100,
                                                 .restart = false},
                            nullptr);
  EXPECT_EQ(repaired.deletes, 1U);
  EXPECT_TRUE(poll_until([&] { return rows_of(second.read_db(), mirror) == rows_of(write, source); }, 60s,
                         "the extra row deleted from the mirror"));

  EXPECT_EQ(second.stop(), 0);
  EXPECT_EQ(producer.stop(), 0);
}

}  // namespace
}  // namespace syncline::test
