// ProducerService: the producer's sessions, timers, retry policy, metrics and status.
#include "producer/producer_service.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "common/backoff.hpp"
#include "common/kafka.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"
#include "common/shutdown.hpp"
#include "common/failpoint.hpp"
#include "producer/initial_snapshot.hpp"
#include "producer/kafka_event_sink.hpp"
#include "producer/pipeline.hpp"
#include "producer/replication_connection.hpp"
#include "producer/replication_frame.hpp"
#include "producer/slot_manager.hpp"
#include "producer/snapshot_reader.hpp"
#include "producer/source_check.hpp"
#include "producer/toast_fetcher.hpp"
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
enum class Failure { transient, fatal, fenced, refused };

Failure classify_failure(const std::exception& error) {
  if (dynamic_cast<const SourceRefused*>(&error) != nullptr) return Failure::refused;
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
        case Failure::refused:
          log->critical("refusing to stream: {}", error.what());
          set_state("refused", error.what());
          return kExitSourceRefused;
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
  TopicPlanOptions plan{options_.partitions, options_.replication_factor, options_.slot};
  kafka::Properties kafka_properties(config_.kafka.properties.begin(), config_.kafka.properties.end());
  kafka_properties["bootstrap.servers"] = config_.kafka.bootstrap_servers;
  kafka_properties.try_emplace("client.id", config_.kafka.client_id);
  const PositionTopics position_topics = position_topics_for(config_);
  KafkaEventSink sink(KafkaSinkOptions{kafka_properties, options_.transactional_id, position_topics.own,
                                       position_topics.key, position_topics.shared},
                      registry_);
  sink.ensure_topics(plan_topics(router_opts, plan));
  std::optional<SourcePosition> stored = sink.read_position();
  log->info("stored position: {}", stored ? encode_position(*stored) : std::string("none"));

  // Is this the source the stored positions came from, and can its slot continue their stream?
  ReplicationConnection replication(dsn);
  const SystemIdentity identity = replication.identify_system();
  SourceFacts facts;
  facts.now = SourceIdentity{identity.system_id, static_cast<std::uint32_t>(identity.timeline)};
  facts.server_wal = identity.wal_flush;
  facts.slot_name = options_.slot;
  facts.slot = slots.slot_state(options_.slot);
  if (stored && !stored->fresh && !stored->source.system_id.empty() &&
      stored->source.timeline != facts.now.timeline && facts.now.timeline > 1) {
    facts.history = parse_timeline_history(replication.timeline_history(identity.timeline));
  }
  if (const auto problem = source_problem(stored, facts)) throw SourceRefused(*problem);
  if (stored && !stored->source.system_id.empty() && stored->source.timeline != facts.now.timeline) {
    log->warn("the write database moved from timeline {} to {} (a promotion) after the stored position; the slot "
              "carries on, and the new timeline is recorded with the next position",
              stored->source.timeline, facts.now.timeline);
  }
  SlotState slot = facts.slot;
  if (slot.exists) slots.validate_slot(options_.slot);

  const bool want_snapshot = options_.snapshot == SnapshotMode::initial;
  const bool fresh = stored && stored->fresh;
  PositionContext context;
  context.epoch = stored ? stored->epoch : 0;
  context.source = facts.now;
  if (stored && !fresh) {
    context.snapshot = stored->snapshot;
    context.last_published = stored->last_published;
    context.expect = expected_first_transaction(stored, slot.confirmed_flush_lsn);
  }
  router_opts.epoch = context.epoch;
  if (stored && !fresh && context.snapshot.state == SnapshotProgress::State::none && want_snapshot) {
    log->warn("producer.snapshot is 'initial', but slot '{}' was started without a snapshot: the initial snapshot "
              "is taken only with a new slot. To publish the captured tables' rows now, run `syncline-ctl resync "
              "snapshot --table ...` (the slot is kept: it may hold unpublished changes)",
              options_.slot);
  }

  EventRouter router(router_opts);
  PgToastFetcher toast_fetcher(sql);
  router.set_toast_fetcher(&toast_fetcher);
  auto& latency = registry_.histogram("syncline_producer_publish_latency_seconds",
                                      "From the source commit to the Kafka commit that published it.",
                                      metrics::default_latency_buckets());
  PipelineOptions pipeline_options{options_.batch_max_events, options_.batch_max, plan,
                                   [&latency](std::chrono::duration<double> age) { latency.observe(age.count()); }};
  // A fresh (new-source) position holds nothing of the stream: nothing is skipped.
  Pipeline pipeline(router, sink, pipeline_options, ResumeFilter(stored), context, Clock::now);

  // The snapshot, if one is due: a new slot's first (from its own exported snapshot), or the rest of
  // an interrupted one, or one for a slot that exists without a stored position (a crash between
  // creating the slot and storing its first position). The slot is never dropped: it holds the WAL
  // since its consistent point, which the stream publishes after the snapshot.
  std::unique_ptr<SnapshotSession> first_snapshot;
  std::optional<SourcePosition> stream_start;
  SnapshotProgress progress = context.snapshot;
  if (!slot.exists) {
    if (!options_.create_slot) {
      throw ConfigError(fmt::format("replication slot '{}' does not exist and producer.create_slot is false",
                                    options_.slot));
    }
    const CreatedSlot created = replication.create_slot(options_.slot, want_snapshot);
    log->info("created slot '{}' at {}", options_.slot, created.consistent_point);
    failpoint::hit("producer.after_slot_created");
    if (want_snapshot) {
      // Imported before the replication connection runs another command, or the snapshot is gone.
      first_snapshot = std::make_unique<SnapshotSession>(dsn);
      first_snapshot->reader.emplace(first_snapshot->sql, created.snapshot_name.value(), options_.snapshot_chunk_rows);
      first_snapshot->consistent_point = created.consistent_point;
      first_snapshot->taken = Clock::now();
    }
    stream_start = position_before(created.consistent_point);
    progress = want_snapshot ? SnapshotProgress{SnapshotProgress::State::running, 0, std::nullopt, 0, fresh}
                             : SnapshotProgress{};
    // Stored before the snapshot starts: from here on a restart resumes it and keeps this slot.
    pipeline.set_snapshot_progress(progress);
    pipeline.store_position(*stream_start);
  } else if (!stored || fresh) {
    stream_start = position_before(slot.confirmed_flush_lsn);
    if (want_snapshot) {
      log->warn("slot '{}' exists but no position is stored in Kafka: taking the initial snapshot now (the slot "
                "streams from its confirmed position {} afterwards)",
                options_.slot, slot.confirmed_flush_lsn);
      progress = SnapshotProgress{SnapshotProgress::State::running, 0, std::nullopt, 0, fresh};
    } else {
      log->warn("slot '{}' exists but no position is stored in Kafka: streaming from the slot's confirmed "
                "position {} without a snapshot",
                options_.slot, slot.confirmed_flush_lsn);
    }
  } else if (progress.state == SnapshotProgress::State::running) {
    stream_start = *stored;
    log->info("resuming the initial snapshot of slot '{}' at table {} of {} ({} row(s) published so far)",
              options_.slot, progress.table + 1, options_.capture.size(), progress.rows);
  }
  if (progress.state == SnapshotProgress::State::running) {
    set_state("snapshot");
    pipeline.begin_snapshot(*stream_start);
    InitialSnapshotOptions snapshot_options;
    snapshot_options.dsn = dsn;
    for (const auto& table : options_.capture) snapshot_options.tables.push_back({table.schema, table.table});
    snapshot_options.slot = options_.slot;
    snapshot_options.chunk_rows = options_.snapshot_chunk_rows;
    snapshot_options.max_age = options_.snapshot_max_age;
    snapshot_options.stream_start = stream_start->end_lsn;
    snapshot_options.stop_requested = [] { return shutdown::requested(); };
    InitialSnapshot snapshot(std::move(snapshot_options), pipeline);
    progress = snapshot.run(progress, std::move(first_snapshot));
    if (progress.state != SnapshotProgress::State::done) {
      log->info("stopped during the initial snapshot: {} row(s) published; the next start resumes it", progress.rows);
      return;
    }
    log->info("initial snapshot published: {} rows", progress.rows);
  }

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
