// publish_snapshot: a temporary slot's exported snapshot read in primary-key chunks, each chunk routed
// by the producer's own EventRouter and committed to Kafka in one transaction with its progress
// record (see snapshot.hpp).
#include "tools/ctl/snapshot.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <unordered_set>

#include "common/envelope.hpp"
#include "common/failpoint.hpp"
#include "common/kafka.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"
#include "common/pg_types.hpp"
#include "common/shutdown.hpp"
#include "common/topic_names.hpp"
#include "producer/event_router.hpp"
#include "producer/pg_timestamp.hpp"
#include "producer/position_reader.hpp"
#include "producer/producer_service.hpp"
#include "producer/replication_connection.hpp"
#include "producer/slot_manager.hpp"
#include "producer/snapshot_reader.hpp"
#include "producer/source_change.hpp"
#include "producer/table_keys.hpp"
#include "producer/topic_plan.hpp"
#include "tools/ctl/command.hpp"

namespace syncline::ctl {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kKafkaTimeout = std::chrono::seconds(30);
// A killed run leaves its chunk's transaction open, and read_committed consumers of the partitions
// it wrote wait for it (the live stream too) until the next run fences it or the broker aborts it
// after this long. A chunk's transaction lives for a few hundred milliseconds.
constexpr const char* kTransactionTimeoutMs = "20000";

std::shared_ptr<spdlog::logger> logger() { return log::get("ctl"); }

std::string now_iso8601() {
  return producer::PgTimestamp::from_sys_time(
             std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()))
      .to_iso8601();
}

std::string table_text(const TableName& table) { return table.schema + "." + table.table; }

// FNV-1a, 64 bits: stable across builds and platforms, which std::hash is not.
std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

kafka::Properties client_properties(const Config& config, bool consumer) {
  kafka::Properties properties;
  for (const auto& [key, value] : config.kafka.properties) {
    if (consumer || !kafka::is_consumer_property(key)) properties[key] = value;
  }
  properties["bootstrap.servers"] = config.kafka.bootstrap_servers;
  properties.try_emplace("client.id", config.kafka.client_id);
  return properties;
}

// A transactional producer that commits one chunk at a time. Owned by publish_snapshot's thread.
// Creating it fences an earlier run with the same transactional.id and aborts what that one left
// open, so progress read afterwards is final. Destroying it aborts an open transaction: nothing of a
// chunk that did not commit becomes visible to read_committed consumers.
class ChunkPublisher {
 public:
  ChunkPublisher(const Config& config, const std::string& transactional_id)
      : admin_(client_properties(config, false)), producer_(producer_properties(config, transactional_id)) {
    producer_.init_transactions(kKafkaTimeout);
  }
  ~ChunkPublisher() { abort(); }
  ChunkPublisher(const ChunkPublisher&) = delete;
  ChunkPublisher& operator=(const ChunkPublisher&) = delete;

  kafka::AdminClient& admin() { return admin_; }

  void begin() {
    producer_.begin_transaction();
    open_ = true;
  }
  void publish(const kafka::OutgoingMessage& message) {
    // Without the partitions of a topic new to this process, librdkafka would hold the record (and the
    // commit) until its next metadata scan.
    if (known_topics_.insert(message.topic).second)
      (void)producer_.load_topic_metadata(message.topic, std::chrono::seconds(1));
    producer_.produce(message, kKafkaTimeout);
  }
  void commit() {
    producer_.commit_transaction(kKafkaTimeout * 2);
    open_ = false;
  }
  void abort() noexcept {
    if (!open_) return;
    open_ = false;
    try {
      producer_.abort_transaction(kKafkaTimeout);
    } catch (const std::exception& error) {
      // The broker aborts it after the transaction timeout; the next run fences it at once.
      logger()->warn("aborting the open Kafka transaction failed: {}", error.what());
    }
  }

 private:
  static kafka::Properties producer_properties(const Config& config, const std::string& transactional_id) {
    auto properties = client_properties(config, false);
    properties["transactional.id"] = transactional_id;
    properties["enable.idempotence"] = "true";
    properties["transaction.timeout.ms"] = kTransactionTimeoutMs;
    properties.try_emplace("linger.ms", "20");
    properties.try_emplace("compression.type", "lz4");
    return properties;
  }

  kafka::AdminClient admin_;
  kafka::TransactionalProducer producer_;
  std::set<std::string> known_topics_;
  bool open_ = false;
};

// The last progress record of `key`, read (read_committed) from the start of the progress topic.
std::optional<SnapshotProgressRecord> read_progress(const Config& config, kafka::AdminClient& admin,
                                                    const std::string& topic, const std::string& key,
                                                    const std::string& reader_group) {
  // A topic created a moment ago may not have a leader every broker knows of yet.
  const auto give_up = Clock::now() + kKafkaTimeout;
  auto pause = std::chrono::milliseconds(50);
  kafka::WatermarkOffsets marks;
  while (true) {
    try {
      marks = admin.watermark_offsets(topic, 0, kKafkaTimeout);
      break;
    } catch (const kafka::KafkaError& error) {
      if (error.error_class() != kafka::ErrorClass::retriable || Clock::now() + pause > give_up) throw;
      logger()->debug("{}; retrying", error.what());
      if (shutdown::wait_for(pause)) throw;
      pause = std::min(pause * 2, std::chrono::milliseconds(1000));
    }
  }
  if (marks.high == marks.low) return std::nullopt;
  auto properties = client_properties(config, true);
  properties["group.id"] = reader_group;
  properties["enable.partition.eof"] = "true";
  properties["fetch.wait.max.ms"] = "10";
  kafka::Consumer consumer(properties);
  consumer.assign({kafka::TopicPartitionOffset{topic, 0, RD_KAFKA_OFFSET_BEGINNING}});
  std::optional<SnapshotProgressRecord> last;
  const auto deadline = Clock::now() + kKafkaTimeout;
  while (Clock::now() < deadline) {
    auto message = consumer.poll(std::chrono::milliseconds(200));
    if (!message) continue;
    if (message->error() == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      consumer.close();
      return last;
    }
    if (!message->ok()) {
      throw kafka::KafkaError(message->error(),
                              fmt::format("reading {}: {}", topic, message->error_message()));
    }
    const auto record_key = message->key();
    if (!record_key || *record_key != key) continue;
    if (message->value().empty()) {
      last.reset();  // a tombstone: someone deleted the progress on purpose
    } else if (auto record = decode_progress(message->value())) {
      last = std::move(record);
    } else {
      logger()->warn("ignoring an unreadable progress record at offset {} of {}", message->offset(), topic);
    }
  }
  throw kafka::RetriableKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT,
                                   fmt::format("reading the snapshot progress from {} timed out", topic));
}

// The planner's estimate of the rows to publish: cheap (no scan), good enough for a progress bar.
std::optional<std::uint64_t> estimate_rows(pg::PgConnection& sql, const TableName& table,
                                           std::string_view where) {
  // A savepoint: an estimate that fails must not abort the snapshot's transaction.
  sql.exec("SAVEPOINT syncline_estimate");
  try {
    // The dummy parameter sends it through the extended protocol, which runs one statement only.
    std::string query = "EXPLAIN (FORMAT JSON) SELECT 1 FROM " +
                        producer::quote_table({table.schema, table.table}) + " WHERE $1::int IS NOT NULL";
    if (!where.empty()) query += fmt::format(" AND ({})", where);
    const auto result = sql.exec(query, {std::string("1")});
    sql.exec("RELEASE SAVEPOINT syncline_estimate");
    const auto plan = json::parse(result.value(0, 0));
    return static_cast<std::uint64_t>(std::max(0.0, plan.at(0).at("Plan").at("Plan Rows").get<double>()));
  } catch (const pg::PgError& error) {
    sql.exec("ROLLBACK TO SAVEPOINT syncline_estimate");
    logger()->debug("no row estimate for {}: {}", table_text(table), error.what());
    return std::nullopt;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// Refuses what cannot be re-published as row changes of the producer's topics.
void check_table(const Config& config, const TableName& table) {
  const auto& producer = config.producer;
  if (producer.outbox_table && *producer.outbox_table == table) {
    throw Refused(fmt::format(
        "{} is the outbox table: its rows are domain events, published once when inserted, not row changes",
        table_text(table)));
  }
  if (std::find(producer.capture.begin(), producer.capture.end(), table) == producer.capture.end()) {
    std::vector<std::string> captured;
    for (const auto& t : producer.capture) captured.push_back(table_text(t));
    throw Refused(fmt::format(
        "{} is not captured by the producer (producer.capture in {}: {}); only a captured table has a "
        "row-change topic to re-publish into",
        table_text(table), config.source,
        captured.empty() ? std::string("none") : fmt::format("{}", fmt::join(captured, ", "))));
  }
}

std::string interrupted_message(const TableName& table, std::uint64_t rows, std::uint64_t chunks,
                                bool keyed) {
  if (keyed) {
    return fmt::format(
        "interrupted: {} row(s) of {} re-published in {} committed chunk(s); the open chunk was rolled back. "
        "A targeted key run is not resumable: run it again",
        rows, table_text(table), chunks);
  }
  return fmt::format(
      "interrupted: {} row(s) of {} re-published in {} committed chunk(s); the open chunk was rolled back "
      "and "
      "the progress is kept. Run the same command (same --table and --where) again to resume after the last "
      "committed key, or add --restart to start over",
      rows, table_text(table), chunks);
}

// One row of a result as a pgoutput tuple: text or null, in the relation's column order.
void fill_tuple(const pg::Result& result, int row, std::size_t columns, producer::TupleData& tuple) {
  tuple.resize(columns);
  for (std::size_t column = 0; column < columns; ++column) {
    auto& cell = tuple[column];
    const int index = static_cast<int>(column);
    cell.kind = result.is_null(row, index) ? producer::ColumnKind::null : producer::ColumnKind::text;
    cell.value.assign(result.value(row, index));
  }
}

std::size_t column_index(const producer::RelationInfo& relation, const std::string& name) {
  for (std::size_t i = 0; i < relation.columns.size(); ++i) {
    if (relation.columns[i].name == name) return i;
  }
  throw std::runtime_error(fmt::format("{}.{} has no column {}", relation.schema, relation.table, name));
}

std::string quoted_column_list(const std::vector<std::string>& names, std::string_view qualifier = {}) {
  std::string list;
  for (const auto& name : names) {
    if (!list.empty()) list += ", ";
    if (!qualifier.empty()) list += std::string(qualifier) + ".";
    list += producer::quote_identifier(name);
  }
  return list;
}

// The value of key field `column` of the JSON key `k.v` as the column's type: bytea arrives base64,
// json/jsonb as embedded JSON, everything else as text PostgreSQL's input function reads.
std::string key_field_sql(const producer::RelationColumn& column, const std::string& type) {
  const std::string field = producer::quote_literal(column.name);
  if (column.type_oid == pg::type_oid::kBytea) return fmt::format("decode(k.v ->> {}, 'base64')", field);
  if (column.type_oid == pg::type_oid::kJson || column.type_oid == pg::type_oid::kJsonb) {
    return fmt::format("(k.v -> {})::{}", field, type);
  }
  return fmt::format("(k.v ->> {})::{}", field, type);
}

// Everything one run needs once the snapshot is open.
struct RunContext {
  const SnapshotRequest& request;
  ChunkPublisher& publisher;
  producer::EventRouter& router;
  const producer::RelationInfo& relation;
  std::unique_ptr<producer::SnapshotSession>& session;  // renewed every snapshot_max_age (snapshot.hpp)
  const std::string& dsn;
  std::chrono::milliseconds max_age;
  producer::TransactionInfo txn;
  Progress* progress;
  SnapshotResult& result;
  std::uint64_t seq = 0;
  std::uint64_t committed = 0;  // events of this run in committed chunks
};

// Routes one change with the producer's router and publishes its records.
void publish_change(RunContext& run, producer::SourceChange& change) {
  change.txn = &run.txn;
  change.lsn = run.txn.commit_lsn;  // as the producer's initial snapshot does
  change.seq = ++run.seq;
  for (const auto& record : run.router.route(change)) {
    run.publisher.publish(record.message);
    if (record.kind == producer::RecordKind::dead_letter) ++run.result.dead_letters;
  }
}

void check_interrupt(RunContext& run) {
  if (!shutdown::requested()) return;
  run.publisher.abort();
  throw SnapshotInterrupted(interrupted_message(run.request.table, run.result.previous_rows + run.committed,
                                                run.result.chunks, run.request.keys.has_value()));
}

// The whole table (or the rows matching `where`), in key order, one Kafka transaction per chunk with
// the progress record that lets a later run continue after the chunk's last key.
void publish_rows(RunContext& run, const std::vector<std::string>& order_columns,
                  SnapshotProgressRecord record, const std::string& progress_topic,
                  const std::string& progress_key) {
  const auto& relation = run.relation;
  const auto& request = run.request;
  const std::size_t chunk_rows = std::max<std::size_t>(request.chunk_rows, 1);
  std::vector<std::string> names;
  for (const auto& column : relation.columns) names.push_back(column.name);
  const auto key_types = run.session->reader->column_types(relation, order_columns);
  const TableName& table = request.table;
  const std::string first_sql =
      keyset_chunk_sql({table.schema, table.table}, names, order_columns, key_types, request.where, false);
  const std::string next_sql = keyset_chunk_sql({table.schema, table.table}, names, order_columns, key_types, request.where, true);
  std::vector<std::size_t> order_index;
  for (const auto& column : order_columns) order_index.push_back(column_index(relation, column));

  const auto estimate = estimate_rows(run.session->sql, table, request.where);
  const std::uint64_t previous = run.result.previous_rows;
  producer::TupleData tuple;
  while (true) {
    check_interrupt(run);
    if (Clock::now() - run.session->taken >= run.max_age) {
      // A row must not reach the sinks long after it was read: older than their delete horizon, it
      // could bring back a row deleted since. The next chunks come from a new snapshot, at its position.
      run.session->reader->finish();
      run.session = producer::open_snapshot_session(run.dsn, "syncline_ctl_snapshot");
      run.txn.commit_lsn = snapshot_event_position(run.session->consistent_point);
      run.seq = 0;
      run.result.snapshot_lsn = run.txn.commit_lsn;
      logger()->info("{}: a new snapshot at {} for the rows after {}", table_text(table),
                     run.session->consistent_point, record.last_key.dump());
    }
    pg::PgConnection& sql = run.session->sql;
    std::vector<pg::Param> params;
    if (record.last_key.is_object()) {
      for (const auto& column : order_columns)
        params.emplace_back(record.last_key.at(column).get<std::string>());
    }
    params.emplace_back(std::to_string(chunk_rows));
    const pg::Result chunk = sql.exec(record.last_key.is_object() ? next_sql : first_sql, params);

    run.publisher.begin();
    for (int row = 0; row < chunk.rows(); ++row) {
      fill_tuple(chunk, row, relation.columns.size(), tuple);
      producer::SourceChange change;
      change.kind = producer::ChangeKind::insert;
      change.relation = &relation;
      change.new_tuple = tuple;
      publish_change(run, change);
      ++run.result.rows;
      check_interrupt(run);
    }
    if (chunk.rows() > 0) {
      json last_key = json::object();
      for (std::size_t i = 0; i < order_columns.size(); ++i) {
        last_key[order_columns[i]] =
            std::string(chunk.value(chunk.rows() - 1, static_cast<int>(order_index[i])));
      }
      record.last_key = std::move(last_key);
    }
    record.rows = previous + run.result.rows;
    record.chunks += 1;
    record.done = static_cast<std::size_t>(chunk.rows()) < chunk_rows;
    record.updated_at = now_iso8601();
    record.snapshot_lsn = run.txn.commit_lsn;
    run.publisher.publish(kafka::OutgoingMessage{.topic = progress_topic,
                                                 .partition = 0,
                                                 .key = progress_key,
                                                 .value = encode_progress(record),
                                                 .headers = {}});
    run.publisher.commit();
    failpoint::hit("ctl.snapshot_chunk_committed");
    ++run.result.chunks;
    run.committed = run.result.rows;
    logger()->debug("{}: chunk {} committed, {} row(s) so far", table_text(table), record.chunks,
                    record.rows);
    if (run.progress != nullptr) {
      const std::uint64_t total = estimate ? std::max(*estimate, record.rows) : record.rows;
      run.progress->update(run.result.rows,
                           total > previous ? std::optional<std::uint64_t>(total - previous) : std::nullopt);
    }
    if (record.done) break;
  }
}

// Exactly `keys`: existing rows as op "r", missing ones as op "d" with the key as `before`, as the
// producer publishes a delete of a table keyed by its replica identity.
void publish_keys(RunContext& run, const std::vector<std::string>& key_columns) {
  pg::PgConnection& sql = run.session->sql;
  const auto& relation = run.relation;
  const auto& request = run.request;
  const std::size_t chunk_rows = std::max<std::size_t>(request.chunk_rows, 1);

  // The keys, each reduced to the key columns, without duplicates.
  std::vector<json> keys;
  std::unordered_set<std::string> seen;
  for (const auto& key : *request.keys) {
    if (!key.is_object()) {
      throw std::invalid_argument(
          fmt::format("key {} of {} is not a JSON object", key.dump(), table_text(request.table)));
    }
    json reduced = json::object();
    for (const auto& column : key_columns) {
      const auto it = key.find(column);
      if (it == key.end() || it->is_null()) {
        throw std::invalid_argument(fmt::format("key {} lacks column '{}' of the key ({}) of {}", key.dump(),
                                                column, fmt::join(key_columns, ", "),
                                                table_text(request.table)));
      }
      reduced[column] = *it;
    }
    if (seen.insert(canonical_json(reduced)).second) keys.push_back(std::move(reduced));
  }

  std::vector<std::string> names;
  for (const auto& column : relation.columns) names.push_back(column.name);
  const auto key_types = run.session->reader->column_types(relation, key_columns);
  std::vector<std::size_t> key_index;
  std::string join;
  std::string key_texts;
  for (std::size_t i = 0; i < key_columns.size(); ++i) {
    key_index.push_back(column_index(relation, key_columns[i]));
    const std::string value = key_field_sql(relation.columns[key_index.back()], key_types[i]);
    join +=
        fmt::format("{}t.{} = {}", i == 0 ? "" : " AND ", producer::quote_identifier(key_columns[i]), value);
    key_texts += fmt::format(", ({})::text", value);
  }
  const std::string lookup = fmt::format(
      "SELECT {}, t.{} IS NOT NULL{} FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(v, ord) "
      "LEFT JOIN {} AS t ON {} ORDER BY k.ord",
      quoted_column_list(names, "t"), producer::quote_identifier(key_columns.front()), key_texts,
      producer::quote_table({request.table.schema, request.table.table}), join);

  // A delete names the row by its key columns only, like pgoutput's key tuple of a delete.
  producer::RelationInfo key_relation = relation;
  for (auto& column : key_relation.columns) {
    column.is_key = std::find(key_columns.begin(), key_columns.end(), column.name) != key_columns.end();
  }

  const std::size_t width = relation.columns.size();
  producer::TupleData tuple;
  for (std::size_t start = 0; start < keys.size(); start += chunk_rows) {
    check_interrupt(run);
    const std::size_t end = std::min(keys.size(), start + chunk_rows);
    json batch = json::array();
    for (std::size_t i = start; i < end; ++i) batch.push_back(keys[i]);
    const pg::Result rows = sql.exec(lookup, {batch.dump()});
    run.publisher.begin();
    for (int row = 0; row < rows.rows(); ++row) {
      producer::SourceChange change;
      if (rows.value(row, static_cast<int>(width)) == "t") {
        fill_tuple(rows, row, width, tuple);
        change.kind = producer::ChangeKind::insert;
        change.relation = &relation;
        change.new_tuple = tuple;
        publish_change(run, change);
        ++run.result.rows;
      } else {
        producer::OldTuple old{producer::OldTupleKind::key, producer::TupleData(width)};
        for (std::size_t i = 0; i < key_index.size(); ++i) {
          auto& cell = old.columns[key_index[i]];
          cell.kind = producer::ColumnKind::text;
          cell.value.assign(rows.value(row, static_cast<int>(width + 1 + i)));
        }
        change.kind = producer::ChangeKind::remove;
        change.relation = &key_relation;
        change.old_tuple = std::move(old);
        publish_change(run, change);
        ++run.result.deletes;
      }
      check_interrupt(run);
    }
    run.publisher.commit();
    failpoint::hit("ctl.snapshot_chunk_committed");
    ++run.result.chunks;
    run.committed = run.result.rows + run.result.deletes;
    if (run.progress != nullptr) run.progress->update(end, keys.size());
  }
}

}  // namespace

std::string snapshot_progress_topic(std::string_view topic_prefix) {
  return fmt::format("{}.ctl.snapshots", topic_prefix);
}

std::string snapshot_progress_key(const TableName& table, std::string_view where) {
  if (where.empty()) return table_text(table);
  return fmt::format("{}#{:016x}", table_text(table), fnv1a(where));
}

std::string snapshot_transactional_id(std::string_view topic_prefix, const TableName& table,
                                      std::string_view where, bool targeted_keys) {
  if (targeted_keys) return fmt::format("{}-ctl-snapshot-{}-keys", topic_prefix, table_text(table));
  return fmt::format("{}-ctl-snapshot-{}", topic_prefix, snapshot_progress_key(table, where));
}

std::string encode_progress(const SnapshotProgressRecord& record) {
  return json{{"table", record.table},
              {"where", record.where},
              {"last_key", record.last_key},
              {"rows", record.rows},
              {"chunks", record.chunks},
              {"done", record.done},
              {"started_at", record.started_at},
              {"updated_at", record.updated_at},
              {"snapshot_lsn", record.snapshot_lsn.to_string()}}
      .dump();
}

std::optional<SnapshotProgressRecord> decode_progress(std::string_view text) {
  try {
    const auto value = json::parse(text);
    if (!value.is_object()) return std::nullopt;
    SnapshotProgressRecord record;
    record.table = value.value("table", "");
    record.where = value.value("where", "");
    record.last_key = value.contains("last_key") ? value.at("last_key") : json();
    if (!record.last_key.is_null() && !record.last_key.is_object()) return std::nullopt;
    for (const auto& [column, key] : record.last_key.items()) {
      if (!key.is_string()) return std::nullopt;
    }
    record.rows = value.at("rows").get<std::uint64_t>();
    record.chunks = value.value("chunks", std::uint64_t{0});
    record.done = value.at("done").get<bool>();
    record.started_at = value.value("started_at", "");
    record.updated_at = value.value("updated_at", "");
    record.snapshot_lsn = Lsn::parse(value.value("snapshot_lsn", "0/0")).value_or(Lsn());
    return record;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

void check_snapshot_table(const Config& config, const TableName& table) { check_table(config, table); }

SnapshotResult publish_snapshot(const Config& config, const SnapshotRequest& request, Progress* progress) {
  const auto started = Clock::now();
  check_table(config, request.table);
  if (request.keys && !request.where.empty()) {
    throw std::invalid_argument("a targeted key snapshot takes no --where predicate");
  }
  const std::string& dsn = config.require_write_db().dsn;
  const std::string& prefix = config.kafka.topic_prefix;
  const bool targeted = request.keys.has_value();
  SnapshotResult result;

  // Kafka first: the new producer fences a killed earlier run, so the progress read next is final.
  const std::string transactional_id =
      snapshot_transactional_id(prefix, request.table, request.where, targeted);
  ChunkPublisher publisher(config, transactional_id);
  const std::string progress_topic = snapshot_progress_topic(prefix);
  const std::string progress_key = snapshot_progress_key(request.table, request.where);
  SnapshotProgressRecord record{.table = table_text(request.table),
                                .where = request.where,
                                .last_key = nullptr,
                                .rows = 0,
                                .chunks = 0,
                                .done = false,
                                .started_at = now_iso8601(),
                                .updated_at = {},
                                .snapshot_lsn = Lsn()};
  if (!targeted) {
    publisher.admin().create_topics({kafka::NewTopic{.name = progress_topic,
                                                     .partitions = 1,
                                                     .replication_factor = config.producer.replication_factor,
                                                     .config = {{"cleanup.policy", "compact"}}}},
                                    kKafkaTimeout);
    const auto stored = read_progress(config, publisher.admin(), progress_topic, progress_key,
                                      transactional_id + "-progress");
    if (stored && stored->done) {
      result.restarted_after_done = true;
      logger()->info("the last snapshot of {} finished at {}: starting over", record.table,
                     stored->updated_at);
    } else if (stored && !request.restart && stored->last_key.is_object()) {
      record = *stored;
      result.resumed = true;
      result.previous_rows = stored->rows;
    }
  }

  auto session = producer::open_snapshot_session(dsn, "syncline_ctl_snapshot");
  pg::PgConnection& sql = session->sql;
  result.consistent_point = session->consistent_point;
  result.snapshot_lsn = snapshot_event_position(session->consistent_point);
  const producer::RelationInfo relation =
      session->reader->describe({request.table.schema, request.table.table});
  auto router_options =
      producer::router_options_for(config, std::string(sql.exec("SELECT current_database()").value(0, 0)));
  // The producer's source epoch: re-published rows must rank like the live stream's.
  if (const auto stored = producer::read_stored_position(client_properties(config, true),
                                                         producer::position_topics_for(config), kKafkaTimeout)) {
    router_options.epoch = stored->epoch;
  }
  router_options.primary_keys =
      producer::read_primary_keys(sql, {{request.table.schema, request.table.table}});
  producer::EventRouter router(router_options);
  const auto key_columns = router.row_key_columns(relation);
  const auto order_columns = session->reader->key_order(relation);
  if (result.resumed &&
      !std::all_of(order_columns.begin(), order_columns.end(), [&](const std::string& column) {
        const auto it = record.last_key.find(column);
        return it != record.last_key.end() && it->is_string();
      })) {
    // The key changed since the interrupted run: its last key means nothing in today's order.
    logger()->warn("the progress of {} names another key ({}): starting over", record.table,
                   record.last_key.dump());
    record = SnapshotProgressRecord{.table = record.table,
                                    .where = request.where,
                                    .last_key = nullptr,
                                    .rows = 0,
                                    .chunks = 0,
                                    .done = false,
                                    .started_at = now_iso8601(),
                                    .updated_at = {},
                                    .snapshot_lsn = Lsn()};
    result.resumed = false;
    result.previous_rows = 0;
  }
  if (key_columns.empty() || order_columns.empty()) {
    throw Refused(
        fmt::format("{} has no primary key (nor replica identity index): its row-change topic is an "
                    "append-only log without keys, and re-published rows would be added again instead "
                    "of replacing the old ones",
                    record.table));
  }
  result.topic = row_change_topic_name(prefix, request.table.schema, request.table.table);
  {
    // The producer creates these at start; ensured here for a table it has not streamed yet.
    std::vector<kafka::NewTopic> topics;
    const auto dead_letters = dead_letter_topic_name(prefix);
    for (auto& topic : producer::plan_topics(
             router_options,
             {config.producer.partitions, config.producer.replication_factor, config.producer.slot})) {
      if (topic.name == result.topic || topic.name == dead_letters) topics.push_back(std::move(topic));
    }
    publisher.admin().create_topics(topics, kKafkaTimeout);
  }

  RunContext run{.request = request,
                 .publisher = publisher,
                 .router = router,
                 .relation = relation,
                 .session = session,
                 .dsn = dsn,
                 .max_age = config.producer.snapshot_max_age,
                 .txn = producer::TransactionInfo{result.snapshot_lsn, now_iso8601(), 0, true},
                 .progress = progress,
                 .result = result,
                 .seq = 0,
                 .committed = 0};
  if (targeted) {
    publish_keys(run, key_columns);
  } else {
    publish_rows(run, order_columns, record, progress_topic, progress_key);
  }
  session->reader->finish();
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  logger()->info("snapshot of {}: {} row(s), {} delete(s) in {} chunk(s) at {}", table_text(request.table),
                 result.rows, result.deletes, result.chunks, result.snapshot_lsn);
  return result;
}

}  // namespace syncline::ctl
