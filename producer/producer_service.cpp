// ProducerService: the producer's sessions, timers, retry policy, metrics and status.
#include "producer/producer_service.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/backoff.hpp"
#include "common/kafka.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"
#include "common/shutdown.hpp"
#include "producer/kafka_event_sink.hpp"
#include "producer/pipeline.hpp"
#include "producer/replication_connection.hpp"
#include "producer/replication_frame.hpp"
#include "producer/slot_manager.hpp"
#include "producer/snapshot_reader.hpp"
#include "producer/topic_plan.hpp"

namespace syncline::producer {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kFrameWait = std::chrono::milliseconds(20);
constexpr auto kSlotCheckInterval = std::chrono::seconds(10);
constexpr auto kConfirmDelay = std::chrono::milliseconds(50);

std::string now_iso8601() {
  return PgTimestamp::from_sys_time(
             std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now()))
      .to_iso8601();
}

std::vector<TableName> published_tables(const ProducerConfig& options) {
  std::vector<TableName> tables;
  for (const auto& table : options.capture) tables.push_back({table.schema, table.table});
  if (options.outbox_table) tables.push_back({options.outbox_table->schema, options.outbox_table->table});
  std::sort(tables.begin(), tables.end());
  tables.erase(std::unique(tables.begin(), tables.end()), tables.end());
  return tables;
}

// Whether retrying can help. Configuration and state problems an operator must fix are not
// retried: the process exits and says what is wrong.
enum class Failure { transient, fatal, fenced };

Failure classify_failure(const std::exception& error) {
  if (const auto* kafka_error = dynamic_cast<const kafka::KafkaError*>(&error)) {
    if (dynamic_cast<const kafka::KafkaConfigError*>(kafka_error) != nullptr) return Failure::fatal;
    if (kafka_error->code() == RD_KAFKA_RESP_ERR__FENCED ||
        kafka_error->code() == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
        kafka_error->code() == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH) {
      return Failure::fenced;
    }
    if (dynamic_cast<const kafka::FatalKafkaError*>(kafka_error) != nullptr) return Failure::fenced;
    return kafka_error->error_class() == kafka::ErrorClass::fatal ? Failure::fatal : Failure::transient;
  }
  if (const auto* pg_error = dynamic_cast<const pg::PgError*>(&error)) {
    if (pg_error->retriable() || pg_error->in_doubt()) return Failure::transient;
    // 55006 object in use: the slot is still held by an old walsender that has not noticed its
    // client died; 53300 too many connections; 57P0x shutting down: all pass by themselves.
    const auto& state = pg_error->sqlstate();
    if (state == "55006" || state == "53300" || state.rfind("57P", 0) == 0 || state.rfind("08", 0) == 0) {
      return Failure::transient;
    }
    return Failure::fatal;
  }
  if (dynamic_cast<const ConfigError*>(&error) != nullptr) return Failure::fatal;
  return Failure::transient;
}

class SessionEnded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace

ProducerService::ProducerService(const Config& config, metrics::Registry& registry)
    : config_(config), options_(config.producer), registry_(registry) {
  config_.require_write_db();
  status_ = {{"status", "starting"}, {"slot", options_.slot}, {"publication", options_.publication}};
}

http::Readiness ProducerService::readiness() const {
  if (replicating_) return {true, "replicating"};
  std::lock_guard lock(status_mutex_);
  return {false, status_.value("status", "starting")};
}

nlohmann::json ProducerService::status() const {
  std::lock_guard lock(status_mutex_);
  return status_;
}

void ProducerService::set_state(std::string state, std::string error) {
  std::lock_guard lock(status_mutex_);
  status_["status"] = std::move(state);
  if (error.empty()) {
    status_.erase("last_error");
  } else {
    status_["last_error"] = std::move(error);
  }
}

RouterOptions ProducerService::router_options(const std::string& database) const {
  return router_options_for(config_, database);
}

RouterOptions router_options_for(const Config& config, const std::string& database) {
  const ProducerConfig& options = config.producer;
  RouterOptions router;
  router.topic_prefix = config.kafka.topic_prefix;
  router.source_db = database;
  if (options.outbox_table) {
    router.outbox_schema = options.outbox_table->schema;
    router.outbox_table = options.outbox_table->table;
  } else {
    router.outbox_schema.clear();
    router.outbox_table.clear();
  }
  router.message_prefix = options.message_prefix;
  for (const auto& table : options.capture) router.captured_tables.emplace_back(table.schema, table.table);
  router.max_message_bytes = options.max_message_bytes;
  return router;
}

int ProducerService::run() {
  auto log = log::get("producer");
  auto& restarts = registry_.counter("syncline_producer_session_restarts_total",
                                     "Sessions ended by a transient error and started again.");
  Backoff backoff(options_.retry_max_backoff);
  while (!shutdown::requested()) {
    try {
      run_session();
      if (shutdown::requested()) break;
      backoff.reset();
    } catch (const std::exception& error) {
      replicating_ = false;
      registry_.gauge("syncline_producer_replicating", "1 while streaming from the slot.").set(0);
      switch (classify_failure(error)) {
        case Failure::fenced:
          log->critical("fenced: another producer with transactional.id '{}' took over ({}); exiting",
                        options_.transactional_id, error.what());
          set_state("fenced", error.what());
          return kExitFenced;
        case Failure::fatal:
          log->critical("cannot continue: {}", error.what());
          set_state("failed", error.what());
          return kExitFatal;
        case Failure::transient:
          break;
      }
      restarts.inc();
      const auto jittered = backoff.next();
      log->warn("{}; retrying in {} ms from the last confirmed position", error.what(), jittered.count());
      set_state("retrying", error.what());
      if (shutdown::wait_for(jittered)) break;
    }
  }
  log->info("stopped");
  set_state("stopped");
  return kExitOk;
}

void ProducerService::run_session() {
  auto log = log::get("producer");
  const std::string& dsn = config_.require_write_db().dsn;
  set_state("connecting");

  pg::PgConnection sql(dsn);
  SlotManager slots(sql);
  const std::string database = slots.current_database();
  const auto tables = published_tables(options_);
  slots.ensure_publication(options_.publication, tables, options_.create_publication);

  RouterOptions router_opts = router_options(database);
  // Read every session: whether a table has a primary key decides its key and its topic's policy.
  router_opts.primary_keys = read_primary_keys(sql, router_opts.captured_tables);
  const TopicPlanOptions plan{options_.partitions, options_.replication_factor};
  kafka::Properties kafka_properties(config_.kafka.properties.begin(), config_.kafka.properties.end());
  kafka_properties["bootstrap.servers"] = config_.kafka.bootstrap_servers;
  kafka_properties.try_emplace("client.id", config_.kafka.client_id);
  KafkaEventSink sink(KafkaSinkOptions{kafka_properties, options_.transactional_id,
                                       positions_topic_name(router_opts.topic_prefix), options_.slot},
                      registry_);
  sink.ensure_topics(plan_topics(router_opts, plan));
  std::optional<SourcePosition> stored = sink.read_position();
  log->info("stored position: {}", stored ? encode_position(*stored) : std::string("none"));

  const bool want_snapshot = options_.snapshot == SnapshotMode::initial;
  SlotState slot = slots.slot_state(options_.slot);
  if (slot.exists) {
    slots.validate_slot(options_.slot);
    if (want_snapshot && stored && !stored->snapshot_done) {
      log->warn("the initial snapshot of slot '{}' did not finish; dropping the slot to take it again",
                options_.slot);
      slots.drop_slot(options_.slot);
      slot.exists = false;
    } else if (!stored) {
      log->warn("slot '{}' exists but no position is stored in Kafka: streaming from the slot's confirmed "
                "position {} without a snapshot", options_.slot, slot.confirmed_flush_lsn);
    }
  }

  EventRouter router(router_opts);
  auto& latency = registry_.histogram("syncline_producer_publish_latency_seconds",
                                      "From the source commit to the Kafka commit that published it.",
                                      metrics::default_latency_buckets());
  PipelineOptions pipeline_options{options_.batch_max_events, options_.batch_max, plan,
                                   [&latency](std::chrono::duration<double> age) { latency.observe(age.count()); }};

  ReplicationConnection replication(dsn);
  if (!slot.exists) {
    if (!options_.create_slot) {
      throw ConfigError(fmt::format("replication slot '{}' does not exist and producer.create_slot is false",
                                    options_.slot));
    }
    const CreatedSlot created = replication.create_slot(options_.slot, want_snapshot);
    log->info("created slot '{}' at {}", options_.slot, created.consistent_point);
    const TransactionInfo snapshot_txn{created.consistent_point, now_iso8601(), 0, true};
    // Stored before the snapshot starts, so a crash during it is noticed and the snapshot redone.
    SourcePosition start = position_before(created.consistent_point, 0, false);
    start.complete = !want_snapshot;
    std::optional<pg::PgConnection> snapshot_connection;
    std::optional<SnapshotReader> reader;
    if (want_snapshot) {
      // Imported before the replication connection runs another command, or the snapshot is gone.
      snapshot_connection.emplace(dsn);
      reader.emplace(*snapshot_connection, created.snapshot_name.value());
    }
    sink.begin();
    sink.commit(start);
    stored = start;
    if (want_snapshot) {
      set_state("snapshot");
      Pipeline snapshot(router, sink, pipeline_options, ResumeFilter(), Clock::now);
      std::uint64_t total = 0;
      for (const auto& table : options_.capture) {
        const auto rows = reader->read_table(TableName{table.schema, table.table},
                                             [&](const RelationInfo& relation, const TupleData& row) {
                                               snapshot.on_snapshot_row(snapshot_txn, relation, row);
                                               if (shutdown::requested()) throw SessionEnded("stopped during the snapshot");
                                             });
        total += rows;
      }
      reader->finish();
      snapshot.finish_snapshot(snapshot_txn);
      stored = position_before(created.consistent_point, total, true);
      log->info("initial snapshot published: {} rows", total);
    }
  }

  Pipeline pipeline(router, sink, pipeline_options, ResumeFilter(stored), Clock::now);
  StreamOptions stream;
  stream.publications = {options_.publication};
  replication.start_replication(options_.slot, Lsn(), stream);
  replicating_ = true;
  registry_.gauge("syncline_producer_replicating", "1 while streaming from the slot.").set(1);
  set_state("replicating");
  log->info("replicating from slot '{}' (publication '{}')", options_.slot, options_.publication);

  auto& confirmed_gauge = registry_.gauge("syncline_producer_confirmed_lsn",
                                          "Last WAL position confirmed to PostgreSQL (as a number).");
  auto& retained_gauge = registry_.gauge("syncline_producer_slot_retained_bytes",
                                         "WAL bytes the replication slot keeps on the server.");
  auto& dead_letters = registry_.counter("syncline_producer_dead_letters_total",
                                         "Changes that went to the dead-letter topic.");
  Lsn written;
  Lsn confirmed;
  auto next_status = Clock::now();
  auto last_status = Clock::now();
  auto next_heartbeat = Clock::now() + options_.heartbeat_interval;
  auto next_slot_check = Clock::now();
  std::uint64_t dead_letters_seen = 0;

  while (!shutdown::requested()) {
    bool reply_requested = false;
    // Drain what is buffered before waiting, so a busy stream is never slowed by the timers.
    for (int i = 0; i < 10'000; ++i) {
      auto frame = replication.read_frame(i == 0 ? kFrameWait : std::chrono::milliseconds(0));
      if (!frame) break;
      auto decoded = decode_replication_frame(*frame);
      if (auto* data = std::get_if<XLogData>(&decoded)) {
        written = std::max(written, data->wal_end);
        pipeline.on_message(data->wal_start, data->payload);
      } else {
        const auto& keepalive = std::get<PrimaryKeepalive>(decoded);
        written = std::max(written, keepalive.wal_end);
        pipeline.on_keepalive(keepalive.wal_end);
        reply_requested = reply_requested || keepalive.reply_requested;
      }
    }
    pipeline.tick();

    const auto now = Clock::now();
    // A newly confirmable position is reported within kConfirmDelay (so the server can recycle WAL
    // promptly), otherwise a status goes out every status_interval as a keepalive answer.
    if (reply_requested || now >= next_status ||
        (pipeline.confirmable() > confirmed && now - last_status >= kConfirmDelay)) {
      confirmed = pipeline.confirmable();
      replication.send_status(std::max(written, confirmed), confirmed, confirmed);
      confirmed_gauge.set(static_cast<double>(confirmed.value()));
      last_status = now;
      next_status = now + options_.status_interval;
    }
    if (options_.heartbeat_interval.count() > 0 && now >= next_heartbeat) {
      slots.emit_heartbeat(router_opts.heartbeat_prefix, now_iso8601());
      next_heartbeat = now + options_.heartbeat_interval;
    }
    if (now >= next_slot_check) {
      slot = slots.slot_state(options_.slot);
      retained_gauge.set(static_cast<double>(slot.retained_bytes));
      if (slot.retained_bytes > options_.slot_lag_warning_bytes) {
        log->warn("slot '{}' retains {} bytes of WAL (warning threshold {})", options_.slot, slot.retained_bytes,
                  options_.slot_lag_warning_bytes);
      }
      next_slot_check = now + kSlotCheckInterval;
    }
    const auto& stats = pipeline.stats();
    if (stats.dead_letters > dead_letters_seen) {
      dead_letters.inc(static_cast<double>(stats.dead_letters - dead_letters_seen));
      dead_letters_seen = stats.dead_letters;
    }
    {
      std::lock_guard lock(status_mutex_);
      status_["confirmed_lsn"] = confirmed.to_string();
      status_["last_commit_lsn"] = stats.last_commit_lsn.to_string();
      status_["records_published"] = stats.records_published;
      status_["dead_letters"] = stats.dead_letters;
      status_["slot_retained_bytes"] = slot.retained_bytes;
      if (stats.last_commit_time) {
        status_["last_sync"] = PgTimestamp::from_sys_time(std::chrono::time_point_cast<std::chrono::microseconds>(
                                                              *stats.last_commit_time))
                                   .to_iso8601();
        status_["sync_lag_seconds"] =
            pipeline.batch_open() || pipeline.in_transaction()
                ? std::chrono::duration<double>(std::chrono::system_clock::now() - *stats.last_commit_time).count()
                : 0.0;
      }
    }
  }

  // SIGTERM: finish the open batch, commit it, confirm, and end the stream politely.
  log->info("stopping: committing the open batch");
  pipeline.flush();
  replication.send_status(std::max(written, pipeline.confirmable()), pipeline.confirmable(), pipeline.confirmable());
  replication.stop_replication();
  replicating_ = false;
}

}  // namespace syncline::producer
