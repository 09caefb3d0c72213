// ProjectorService: batches, transactions with stored offsets, dead letters, retries (see
// projector_service.hpp).
#include "consumers/pg/projector_service.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "common/consumer_batch.hpp"
#include "common/envelope.hpp"
#include "common/failpoint.hpp"
#include "common/iso_time.hpp"
#include "common/logging.hpp"
#include "common/shutdown.hpp"

namespace syncline::pg_projector {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kStatementsPerSync = 500;  // results read back in chunks: bounded buffers
constexpr std::size_t kNoProjection = static_cast<std::size_t>(-1);

std::shared_ptr<spdlog::logger> logger() { return log::get("pg-projector"); }

std::string truncated(std::string text, std::size_t limit = 2000) {
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

// The record's event id: the syncline-event-id header, else the envelope's `id` (parsed when
// `value` is null and `parse` is set).
std::optional<std::string> event_id_of(const kafka::Message& message, const nlohmann::json* value, bool parse) {
  if (auto header = message.header(kafka_header::event_id)) return std::string(*header);
  std::optional<nlohmann::json> parsed;
  if (value == nullptr && parse) {
    parsed = nlohmann::json::parse(message.value(), nullptr, false);
    value = &*parsed;
  }
  if (value == nullptr || !value->is_object()) return std::nullopt;
  const auto id = value->find("id");
  if (id == value->end() || !id->is_string()) return std::nullopt;
  return id->get<std::string>();
}

const nlohmann::json* source_field(const nlohmann::json& value, const char* name) {
  const auto source = value.find("source");
  if (source == value.end() || !source->is_object()) return nullptr;
  const auto field = source->find(name);
  return field != source->end() && field->is_string() ? &*field : nullptr;
}

}  // namespace

ProjectorService::ProjectorService(const Config& config, metrics::Registry& registry,
                                   std::vector<std::unique_ptr<Projection>> projections)
    : config_(config),
      options_(config.pg_projector),
      registry_(registry),
      projections_(std::move(projections)),
      offsets_(config.pg_projector.group_id),
      session_(config.require_read_db().dsn),
      backoff_(config.pg_projector.retry_max_backoff),
      unparsed_(registry.counter("syncline_pg_projector_unparsable_records_total",
                                 "Records dead-lettered because their value is not a JSON object.")),
      retries_(registry.counter("syncline_pg_projector_retries_total",
                                "Batches rolled back by a transient failure and retried after a back-off.")),
      batch_events_(registry.histogram("syncline_pg_projector_batch_events", "Records per applied batch.",
                                       metrics::exponential_buckets(1, 4, 8))),
      apply_seconds_(registry.histogram("syncline_pg_projector_apply_seconds",
                                        "Time to apply one batch: plan, statements, offsets and COMMIT.",
                                        metrics::default_latency_buckets())),
      commit_to_applied_(registry.histogram(
          "syncline_pg_projector_commit_to_applied_seconds",
          "From the write database's commit (source.commit_ts) to the read database's commit.",
          metrics::default_latency_buckets())),
      status_(config.pg_projector.group_id, registry, "syncline_pg_projector"),
      last_commit_ts_(registry.gauge("syncline_pg_projector_last_applied_commit_timestamp_seconds",
                                     "source.commit_ts of the newest applied event, as a Unix time.")) {
  for (std::size_t p = 0; p < projections_.size(); ++p) {
    const auto& projection = projections_[p];
    for (const auto& topic : projection->topics()) readers_[topic].push_back(p);
    const metrics::Labels labels{{"projection", projection->name()}};
    projection_metrics_.push_back(
        {&registry.counter("syncline_pg_projector_events_applied_total",
                           "Events applied to the read database, per projection.", labels),
         &registry.counter("syncline_pg_projector_events_skipped_total",
                           "Events on a projection's topics that it has nothing to do for.", labels),
         &registry.counter("syncline_pg_projector_events_dead_lettered_total",
                           "Events sent to the dead-letter topic instead of being applied.", labels)});
  }
  for (const auto& [topic, readers] : readers_) {
    topics_.push_back(topic);
    std::vector<std::string> names;
    for (const std::size_t p : readers) names.push_back(projections_[p]->name());
    recovery_[topic] = recovery_commands(config.pg_projector.group_id, topic, names);
  }
  const auto properties = consumer_properties();
  const auto reset = properties.find("auto.offset.reset");
  start_from_end_ = reset != properties.end() &&
                    (reset->second == "latest" || reset->second == "largest" || reset->second == "end");
  if (topics_.empty()) throw ProjectionSetupError("pg_projector: no mirror tables and no projections configured");

  dead_letters_ = std::make_unique<DeadLetterPublisher>(config.kafka, options_.dead_letter_topic, "pg-projector");
}

ProjectorService::~ProjectorService() = default;

kafka::Properties ProjectorService::consumer_properties() const {
  kafka::Properties properties{// Bounded memory while the read database is down: little is prefetched.
                               {"queued.max.messages.kbytes", "8192"},
                               // A dead instance's partitions move to the others within seconds.
                               {"session.timeout.ms", "10000"},
                               // A topic created after start (a new aggregate type) is seen soon.
                               {"topic.metadata.refresh.interval.ms", "5000"}};
  for (const auto& [key, value] : config_.kafka.properties) properties[key] = value;
  properties["bootstrap.servers"] = config_.kafka.bootstrap_servers;
  properties["client.id"] = config_.kafka.client_id;
  properties["group.id"] = options_.group_id;
  return properties;
}

// ---------------------------------------------------------------------------------------------
// Rebalance

const std::string& ProjectorService::recovery_for(const std::string& topic) const {
  static const std::string none;
  const auto it = recovery_.find(topic);
  return it != recovery_.end() ? it->second : none;
}

std::vector<kafka::TopicPartitionOffset> ProjectorService::on_assign(
    const std::vector<kafka::TopicPartition>& partitions) {
  for (const auto& partition : partitions) partitions_[partition] = Partition{};
  // If this throws, the consumer keeps the partitions paused and poll() rethrows; recover()
  // positions them once the read database answers.
  ensure_connected();
  const auto stored = offsets_.load(session_.connection(), partitions);
  std::vector<kafka::TopicPartitionOffset> starts;
  for (const auto& partition : partitions) {
    Partition& state = partitions_[partition];
    if (const auto it = stored.find(partition); it != stored.end()) {
      // Is it still the topic the position was stored from? (TopicRewritten ends the process.)
      const StartPlan plan =
          plan_start(partition, {it->second.next_offset, it->second.last_applied},
                     consumer_->query_watermarks(partition, 10s), recovery_for(partition.topic));
      state.stored = it->second.next_offset;
      state.received = it->second.next_offset;
      state.floor = plan.start;
      state.verify = plan.verify;
      starts.push_back({partition.topic, partition.partition, plan.start});
    } else {
      starts.push_back(
          {partition.topic, partition.partition, start_from_end_ ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING});
    }
    state.positioned = true;
    logger()->info("{}/{}: starting at {}{}", partition.topic, partition.partition,
                   state.stored ? std::to_string(*state.stored)
                                : std::string(start_from_end_ ? "the end" : "the beginning") + " (none stored)",
                   state.verify ? fmt::format(", reading from {} to check that event {} is still there",
                                              state.verify->expected.offset, state.verify->expected.event_id)
                                : std::string());
  }
  return starts;
}

void ProjectorService::on_revoke(const std::vector<kafka::TopicPartition>& partitions, bool lost) {
  if (!lost) commit_to_kafka();
  const std::set<kafka::TopicPartition> gone(partitions.begin(), partitions.end());
  // What was read from them but not applied is the new owner's now: it starts at the stored offset.
  std::erase_if(batch_, [&](const Record& record) {
    return gone.contains({record.topic, record.message.partition()});
  });
  std::erase_if(carry_, [&](const kafka::Message& message) {
    return gone.contains({message.topic(), message.partition()});
  });
  for (const auto& partition : partitions) {
    partitions_.erase(partition);
    to_commit_.erase(partition);
    status_.forget_partition(partition);
  }
}

// ---------------------------------------------------------------------------------------------
// Connection and positions

void ProjectorService::ensure_connected() {
  if (session_.connected()) return;
  session_.connect();
  OffsetStore::ensure_schema(session_.connection());
  // Instances starting together would race on CREATE TABLE IF NOT EXISTS (a unique violation in
  // the catalog): one set-up at a time. A session lock, released when the connection ends.
  session_.connection().exec("SELECT pg_advisory_lock(hashtext('syncline.pg-projector.setup'))");
  struct Unlock {
    ReadDbSession& session;
    ~Unlock() {
      try {
        if (session.connected())
          session.connection().exec("SELECT pg_advisory_unlock(hashtext('syncline.pg-projector.setup'))");
      } catch (const std::exception&) {
        // The lock ends with the connection anyway.
      }
    }
  } unlock{session_};
  for (const auto& projection : projections_) {
    try {
      projection->setup(session_);
    } catch (const pg::PgError& error) {
      if (error.error_class() != pg::ErrorClass::permanent) throw;
      throw ProjectionSetupError("projection " + projection->name() + ": set-up failed: " + error.what());
    } catch (const std::invalid_argument& error) {
      throw ProjectionSetupError("projection " + projection->name() + ": " + error.what());
    }
  }
  logger()->info("connected to the read database; {} projection(s) set up", projections_.size());
}

void ProjectorService::position(const std::vector<kafka::TopicPartition>& partitions, bool seek) {
  if (partitions.empty()) return;
  std::vector<kafka::TopicPartitionOffset> starts;
  for (const auto& start : on_assign(partitions)) starts.push_back(start);
  if (seek) consumer_->seek(starts, 10s);
}

void ProjectorService::reload_offsets() {
  std::set<kafka::TopicPartition> in_batch;
  for (const auto& record : batch_) in_batch.insert({record.topic, record.message.partition()});
  reload_offsets(in_batch);
}

void ProjectorService::reload_offsets(const std::set<kafka::TopicPartition>& in_batch) {
  const auto stored = offsets_.load(session_.connection(), {in_batch.begin(), in_batch.end()});
  std::vector<kafka::TopicPartitionOffset> forward;
  for (const auto& partition : in_batch) {
    Partition& state = partitions_[partition];
    const auto it = stored.find(partition);
    state.stored = it != stored.end() ? std::optional(it->second.next_offset) : std::nullopt;
    if (!state.stored) continue;
    const std::int64_t next = *state.stored;
    std::erase_if(batch_, [&](const Record& record) {
      return record.message.partition() == partition.partition && record.message.offset() < next &&
             record.topic == partition.topic;
    });
    if (!state.received || next > *state.received) {
      state.received = next;
      state.floor = next;
      forward.push_back({partition.topic, partition.partition, next});
    }
    logger()->warn("{}/{}: the stored offset is {}: another instance (or an earlier commit whose answer was "
                   "lost) applied up to there; continuing from it",
                   partition.topic, partition.partition, next);
  }
  if (!forward.empty()) consumer_->seek(forward, 10s);
}

// ---------------------------------------------------------------------------------------------
// Reading

void ProjectorService::accept(kafka::Message message, bool fresh) {
  const kafka::TopicPartition partition{message.topic(), message.partition()};
  const auto it = partitions_.find(partition);
  if (it == partitions_.end() || !it->second.positioned) return;  // no longer (or not yet) ours
  Partition& state = it->second;
  if (fresh) {
    // Never skip: a partition whose log was replaced under the stored position stops the projector.
    check_delivery(partition, state.floor, message.offset(), state.stored, recovery_for(partition.topic));
    state.floor = message.offset() + 1;
    if (state.verify && check_fingerprint(partition, *state.verify, message.offset(),
                                          event_id_of(message, nullptr, true), recovery_for(partition.topic))) {
      if (message.offset() == state.verify->expected.offset) {
        logger()->info("{}/{}: event {} is still at offset {}: the same topic", partition.topic, partition.partition,
                       state.verify->expected.event_id, message.offset());
      } else {
        logger()->info("{}/{}: the last applied record (offset {}) is no longer in the log (compacted away): its "
                       "identity cannot be checked",
                       partition.topic, partition.partition, state.verify->expected.offset);
      }
      state.verify.reset();
    }
  }
  // Exactly once: never apply an offset twice, whatever a seek or a retry left in the queue.
  if (state.received && message.offset() < *state.received) return;
  state.received = message.offset() + 1;

  Record record{std::move(message), partition.topic, {}, {}, {}, std::nullopt};
  record.type = record.message.header(kafka_header::event_type).value_or("");
  if (const auto readers = readers_.find(record.topic); readers != readers_.end()) {
    for (const std::size_t p : readers->second) {
      (projections_[p]->wants(record.topic, record.type) ? record.wanted_by : record.skipped_by).push_back(p);
    }
  }
  if (!record.wanted_by.empty()) {
    try {
      auto value = nlohmann::json::parse(record.message.value());
      if (!value.is_object()) throw std::invalid_argument("it is JSON but not an object");
      record.value = std::move(value);
    } catch (const std::exception& error) {
      const RecordKey key{partition.topic, partition.partition, record.message.offset()};
      batch_state_.dead[{kNoProjection, key}] = std::string("value is not a JSON envelope: ") + error.what();
      batch_state_.dead_for_all.insert(key);
    }
  }
  batch_.push_back(std::move(record));
}

void ProjectorService::collect() {
  collect_batch(
      *consumer_, carry_, options_.batch_max, [&] { return batch_.size(); },
      [&] { return batch_.size() >= options_.batch_max_events; },
      [&, carried = carry_.size()](kafka::Message message) mutable {
        // collect_batch hands over carry_ first, then what it polls.
        const bool fresh = carried == 0;
        if (carried > 0) --carried;
        accept(std::move(message), fresh);
      });
}

// ---------------------------------------------------------------------------------------------
// Applying

namespace {

// Collects what one projection's plan() reports.
class CollectingSink : public PlanSink {
 public:
  CollectingSink(std::size_t projection, std::vector<Statement>& statements, std::vector<std::size_t>& owners,
                 std::vector<std::pair<std::size_t, std::string>>& rejected, std::vector<std::size_t>& skipped)
      : projection_(projection), statements_(statements), owners_(owners), rejected_(rejected), skipped_(skipped) {}

  void add(Statement statement) override {
    statements_.push_back(std::move(statement));
    owners_.push_back(projection_);
  }
  void reject(std::size_t event_index, std::string reason) override {
    rejected_.emplace_back(event_index, std::move(reason));
  }
  void skip(std::size_t event_index) override { skipped_.push_back(event_index); }

 private:
  std::size_t projection_;
  std::vector<Statement>& statements_;
  std::vector<std::size_t>& owners_;
  std::vector<std::pair<std::size_t, std::string>>& rejected_;
  std::vector<std::size_t>& skipped_;
};

}  // namespace

ProjectorService::Attempt ProjectorService::apply_once() {
  const auto started = Clock::now();
  ensure_connected();
  ++attempts_;
  const auto key_of = [&](std::size_t index) {
    const auto& message = batch_[index].message;
    return RecordKey{batch_[index].topic, message.partition(), message.offset()};
  };
  std::vector<RecordKey> keys;
  keys.reserve(batch_.size());
  for (std::size_t i = 0; i < batch_.size(); ++i) keys.push_back(key_of(i));

  // Plan every projection's statements.
  std::vector<Statement> statements;
  std::vector<std::size_t> owners;
  std::vector<std::size_t> applied(projections_.size(), 0);
  std::vector<std::size_t> skipped_counts(projections_.size(), 0);
  for (std::size_t p = 0; p < projections_.size(); ++p) {
    std::vector<Event> events;
    std::unordered_set<std::size_t> isolated;
    const auto& isolated_keys = batch_state_.isolated[p];
    for (std::size_t i = 0; i < batch_.size(); ++i) {
      const Record& record = batch_[i];
      if (!record.value || std::find(record.wanted_by.begin(), record.wanted_by.end(), p) == record.wanted_by.end())
        continue;
      if (batch_state_.dead.contains({p, keys[i]})) continue;
      if (isolated_keys.contains(keys[i])) isolated.insert(i);
      events.push_back(Event{i, record.topic, record.message.partition(), record.message.offset(),
                             record.message.key(), record.type, &*record.value});
    }
    if (events.empty()) continue;
    std::vector<const Event*> pointers;
    pointers.reserve(events.size());
    for (const auto& event : events) pointers.push_back(&event);
    std::vector<std::pair<std::size_t, std::string>> rejected;
    std::vector<std::size_t> skipped;
    CollectingSink sink(p, statements, owners, rejected, skipped);
    projections_[p]->plan(pointers, isolated, session_, sink);
    for (auto& [index, reason] : rejected) {
      batch_state_.dead[{p, keys[index]}] = std::move(reason);  // the projection names itself in it
    }
    skipped_counts[p] = skipped.size();
    applied[p] = events.size() - rejected.size() - skipped.size();
  }
  // Dead letters are durable before the offsets that pass them are.
  publish_dead_letters();

  // Offsets: per partition, from the stored one to just past the batch's last record.
  std::map<kafka::TopicPartition, std::int64_t> next_offsets;
  std::map<kafka::TopicPartition, const nlohmann::json*> last_values;
  for (const auto& record : batch_) {
    const kafka::TopicPartition partition{record.topic, record.message.partition()};
    next_offsets[partition] = record.message.offset() + 1;
    if (record.value) last_values[partition] = &*record.value;
  }
  // The topic's identity, checked on assignment: per partition the last record with an event id.
  std::map<kafka::TopicPartition, Fingerprint> fingerprints;
  for (auto record = batch_.rbegin(); record != batch_.rend() && fingerprints.size() < next_offsets.size(); ++record) {
    const kafka::TopicPartition partition{record->topic, record->message.partition()};
    if (fingerprints.contains(partition)) continue;
    if (auto id = event_id_of(record->message, record->value ? &*record->value : nullptr, false))
      fingerprints[partition] = {record->message.offset(), std::move(*id)};
  }
  std::vector<OffsetAdvance> advances;
  for (const auto& [partition, next] : next_offsets) {
    OffsetAdvance advance{partition, partitions_[partition].stored, next, std::nullopt, std::nullopt, std::nullopt};
    if (const auto it = last_values.find(partition); it != last_values.end()) advance.record_source(*it->second);
    if (const auto it = fingerprints.find(partition); it != fingerprints.end()) advance.last_applied = it->second;
    advances.push_back(std::move(advance));
  }

  // Prepared before the pipeline starts: preparing is a round trip of its own.
  const std::string advance_name = session_.statement_name(OffsetStore::advance_sql());
  std::vector<const std::string*> names;
  names.reserve(statements.size());
  for (const auto& statement : statements) names.push_back(&session_.statement_name(*statement.sql));

  pg::PgConnection& connection = session_.connection();
  std::optional<pg::Pipeline::Failure> failure;
  std::size_t first_statement = 0;
  {
    pg::Pipeline pipeline(connection);
    pipeline.send("BEGIN");
    // The offsets first: their row locks make a second instance wait here, then fail its check.
    for (const auto& advance : advances) pipeline.send_prepared(advance_name, offsets_.advance_params(advance));
    first_statement = pipeline.sent();
    for (std::size_t k = 0; k < statements.size() && !failure; ++k) {
      pipeline.send_prepared(*names[k], statements[k].params);
      if ((k + 1) % kStatementsPerSync == 0) failure = pipeline.sync();
    }
    // Every statement answered before COMMIT is sent: a failure is attributed to its statement,
    // and the failpoint's moment is exact (applied, holding its locks, not committed).
    if (!failure && (statements.empty() || statements.size() % kStatementsPerSync != 0)) failure = pipeline.sync();
    if (!failure) {
      failpoint::hit("pg-projector.before_commit");
      pipeline.send("COMMIT");
      failure = pipeline.sync();
    }
  }
  if (!failure) {
    failpoint::hit("pg-projector.after_commit");
    finish_batch(next_offsets, applied, skipped_counts, started);
    return Attempt::done;
  }

  if (PQtransactionStatus(connection.raw()) != PQTRANS_IDLE) connection.exec("ROLLBACK");
  for (const auto& projection : projections_) projection->reset();
  const std::size_t at = failure->index;
  const pg::PgError& error = failure->error;
  if (at > 0 && at < first_statement && error.sqlstate() == kOffsetMovedSqlstate) {
    reload_offsets();
    return Attempt::again;
  }
  if (at < first_statement || at >= first_statement + statements.size() ||
      error.error_class() != pg::ErrorClass::permanent) {
    throw error;  // transient (or not attributable to one event): retried after a back-off
  }
  const Statement& statement = statements[at - first_statement];
  const std::size_t p = owners[at - first_statement];
  if (statement.events.size() == 1) {
    batch_state_.dead[{p, keys[statement.events.front()]}] =
        "projection " + projections_[p]->name() + ": " + error.what();
  } else {
    // Which of its events is at fault is found by applying them one statement each.
    for (const std::size_t index : statement.events) batch_state_.isolated[p].insert(keys[index]);
    logger()->info("projection {}: a statement covering {} events failed ({}); applying them one by one",
                   projections_[p]->name(), statement.events.size(), error.what());
  }
  return Attempt::again;
}

const ProjectorService::Record* ProjectorService::find_record(const RecordKey& key) const {
  const auto& [topic, partition, offset] = key;
  const auto it = std::find_if(batch_.begin(), batch_.end(), [&](const Record& r) {
    return r.message.offset() == offset && r.message.partition() == partition && r.topic == topic;
  });
  return it != batch_.end() ? &*it : nullptr;
}

void ProjectorService::publish_dead_letters() {
  // In the order the records were read, whichever projection refused them.
  std::vector<std::pair<const std::pair<std::size_t, RecordKey>*, const std::string*>> pending;
  for (const auto& [id, reason] : batch_state_.dead) {
    if (!batch_state_.published.contains(id)) pending.emplace_back(&id, &reason);
  }
  std::sort(pending.begin(), pending.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first->second, a.first->first) < std::tie(b.first->second, b.first->first);
  });
  std::vector<std::pair<std::size_t, RecordKey>> sent;
  for (const auto& [id_pointer, reason_pointer] : pending) {
    const auto& id = *id_pointer;
    const auto& reason = *reason_pointer;
    const auto& [projection, key] = id;
    const auto& [topic, partition, offset] = key;
    const Record* record = find_record(key);
    if (record == nullptr) continue;  // revoked meanwhile
    const auto message_key = record->message.key();
    dead_letters_->publish({topic, partition, offset,
                            message_key ? std::optional<std::string>(*message_key) : std::nullopt,
                            std::string(record->message.value()), record->message.headers(),
                            projection == kNoProjection ? "" : projections_[projection]->name(), truncated(reason)});
    sent.push_back(id);
  }
  if (sent.empty()) return;
  // Counted as published only once Kafka acknowledged them; a failed flush sends them again.
  dead_letters_->flush(30s);
  for (const auto& id : sent) {
    batch_state_.published.insert(id);
    const auto& [projection, key] = id;
    if (projection == kNoProjection) {
      unparsed_.inc();
      if (const Record* record = find_record(key))
        for (const std::size_t p : record->wanted_by) projection_metrics_[p].dead_lettered->inc();
    } else {
      projection_metrics_[projection].dead_lettered->inc();
    }
  }
}

void ProjectorService::finish_batch(const std::map<kafka::TopicPartition, std::int64_t>& next_offsets,
                                    const std::vector<std::size_t>& applied, const std::vector<std::size_t>& skipped,
                                    Clock::time_point started) {
  const auto now = std::chrono::system_clock::now();
  for (const auto& [partition, next] : next_offsets) {
    partitions_[partition].stored = next;
    to_commit_[partition] = next;
  }
  // Records on a projection's topics that it does not want are skipped for it.
  std::vector<std::size_t> skipped_total = skipped;
  for (const auto& record : batch_)
    for (const std::size_t p : record.skipped_by) ++skipped_total[p];
  for (std::size_t p = 0; p < projections_.size(); ++p) {
    projection_metrics_[p].applied->inc(static_cast<double>(applied[p]));
    projection_metrics_[p].skipped->inc(static_cast<double>(skipped_total[p]));
  }
  for (const auto& record : batch_) {
    if (!record.value) continue;
    if (const auto* ts = source_field(*record.value, "commit_ts")) {
      if (const auto commit_time = parse_iso_utc(ts->get_ref<const std::string&>())) {
        commit_to_applied_.observe(std::max(0.0, std::chrono::duration<double>(now - *commit_time).count()));
        const auto newest = status_.newest_applied_commit();
        if (!newest || *commit_time > *newest) {
          status_.record_applied_commit(*commit_time);
          status_.set("last_applied_commit_ts", ts->get<std::string>());
          if (const auto* lsn = source_field(*record.value, "commit_lsn")) status_.set("last_applied_commit_lsn", *lsn);
          last_commit_ts_.set(std::chrono::duration<double>(commit_time->time_since_epoch()).count());
        }
      }
    }
  }
  batch_events_.observe(static_cast<double>(batch_.size()));
  apply_seconds_.observe(std::chrono::duration<double>(Clock::now() - started).count());
  status_.record_batch(batch_.size(), batch_state_.dead.size());
  batch_.clear();
  batch_state_ = {};
}

// ---------------------------------------------------------------------------------------------
// Retrying

void ProjectorService::enter_retry(const std::string& reason) {
  const auto jittered = backoff_.next();
  retries_.inc();
  logger()->warn("transient failure, retrying in {} ms ({} record(s) held, partitions paused): {}", jittered.count(),
                 batch_.size(), reason);
  set_state("retrying", reason);
  try {
    consumer_->pause(consumer_->assignment());
  } catch (const std::exception& error) {
    logger()->warn("pausing the partitions failed: {}", error.what());
  }
  retry_at_ = Clock::now() + jittered;
}

void ProjectorService::wait_for_retry() {
  // Polling keeps the group membership and serves rebalances; partitions assigned meanwhile are
  // paused too, and what was already fetched waits in carry_ (bounded by the prefetch limit).
  const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(*retry_at_ - Clock::now());
  auto message = consumer_->poll(std::clamp(remaining, 0ms, 100ms));
  if (message && message->ok()) {
    // Checked now, as it is delivered; accept() sees it again later as not fresh.
    const kafka::TopicPartition partition{message->topic(), message->partition()};
    if (const auto it = partitions_.find(partition); it != partitions_.end() && it->second.positioned) {
      check_delivery(partition, it->second.floor, message->offset(), it->second.stored, recovery_for(partition.topic));
      it->second.floor = message->offset() + 1;
    }
    carry_.push_back(std::move(*message));
  }
  consumer_->pause(consumer_->assignment());
  // /status keeps telling the truth while waiting (the backlog grows).
  if (Clock::now() >= next_status_) {
    next_status_ = Clock::now() + 1s;
    update_lag();
  }
}

void ProjectorService::recover() {
  ensure_connected();
  std::vector<kafka::TopicPartition> unpositioned;
  for (const auto& [partition, state] : partitions_)
    if (!state.positioned) unpositioned.push_back(partition);
  position(unpositioned, true);
  consumer_->resume(consumer_->assignment());
}

void ProjectorService::advance_idle_offsets() {
  if (retry_at_ || !batch_.empty() || !carry_.empty() || partitions_.empty() || !session_.connected()) return;
  std::vector<kafka::TopicPartition> owned;
  for (const auto& [partition, state] : partitions_)
    if (state.positioned) owned.push_back(partition);
  // Every record read so far is applied; a position beyond the stored offset only skipped control
  // records (transaction markers). Storing it makes the stored lag 0 for status and lag tools.
  std::vector<OffsetAdvance> advances;
  for (const auto& position : consumer_->position(owned)) {
    const kafka::TopicPartition partition{position.topic, position.partition};
    const Partition& state = partitions_[partition];
    if (position.offset < 0 || (state.stored && position.offset <= *state.stored) ||
        (state.received && position.offset < *state.received)) {
      continue;
    }
    advances.push_back({partition, state.stored, position.offset, std::nullopt, std::nullopt, std::nullopt});
  }
  if (advances.empty()) return;
  try {
    pg::Transaction transaction(session_.connection());
    for (const auto& advance : advances) transaction.exec(OffsetStore::advance_sql(), offsets_.advance_params(advance));
    transaction.commit();
  } catch (const pg::PgError& error) {
    if (error.sqlstate() != kOffsetMovedSqlstate) throw;
    std::set<kafka::TopicPartition> moved;
    for (const auto& advance : advances) moved.insert(advance.partition);
    reload_offsets(moved);
    return;
  }
  for (const auto& advance : advances) {
    partitions_[advance.partition].stored = advance.next_offset;
    partitions_[advance.partition].received = advance.next_offset;
    to_commit_[advance.partition] = advance.next_offset;
  }
}

// ---------------------------------------------------------------------------------------------
// Kafka commits, lag, status

void ProjectorService::commit_to_kafka() {
  if (to_commit_.empty() || !consumer_) return;
  std::vector<kafka::TopicPartitionOffset> offsets;
  for (const auto& [partition, next] : to_commit_) offsets.push_back({partition.topic, partition.partition, next});
  to_commit_.clear();
  try {
    // Only for lag tools: the read database's syncline.offsets is what the projector resumes from.
    consumer_->commit(offsets, kafka::CommitMode::async);
  } catch (const std::exception& error) {
    logger()->warn("committing offsets to Kafka failed (lag tools may show an old position): {}", error.what());
  }
}

void ProjectorService::update_lag() {
  std::vector<PartitionProgress> progress;
  for (const auto& [partition, state] : partitions_) {
    const auto watermarks = consumer_->cached_watermarks(partition);
    // Nothing stored yet: the projector starts at the beginning of what the partition holds.
    const auto next = state.stored ? state.stored : (watermarks ? std::optional(watermarks->low) : std::nullopt);
    progress.push_back({partition, next, watermarks});
  }
  status_.update_partitions(progress);
  nlohmann::json projections = nlohmann::json::array();
  for (std::size_t p = 0; p < projections_.size(); ++p) {
    projections.push_back({{"name", projections_[p]->name()},
                           {"applied", projection_metrics_[p].applied->value()},
                           {"skipped", projection_metrics_[p].skipped->value()},
                           {"dead_lettered", projection_metrics_[p].dead_lettered->value()}});
  }
  status_.set("projections", std::move(projections));
}

void ProjectorService::set_state(const std::string& state, const std::string& error) {
  // A failure says what happened and what to run: kept whole.
  status_.set_state(state, truncated(error, state == "failed" ? 2000 : 500));
}

http::Readiness ProjectorService::readiness() const { return status_.readiness(); }

nlohmann::json ProjectorService::status() const { return status_.snapshot(); }

// ---------------------------------------------------------------------------------------------
// The loop

int ProjectorService::run() {
  kafka::RebalanceHooks hooks;
  hooks.on_assign = [this](const auto& partitions) { return on_assign(partitions); };
  hooks.on_revoke = [this](const auto& partitions, bool lost) { on_revoke(partitions, lost); };
  consumer_ = std::make_unique<kafka::Consumer>(consumer_properties(), hooks);
  consumer_->subscribe(topics_);
  logger()->info("group {} reading {} topic(s); dead letters to {}", options_.group_id, topics_.size(),
                 options_.dead_letter_topic);
  while (!shutdown::requested()) {
    try {
      if (retry_at_) {
        if (Clock::now() < *retry_at_) {
          wait_for_retry();
          continue;
        }
        recover();
        retry_at_.reset();
      }
      ensure_connected();  // also when no partition is assigned: an idle member is ready too
      if (batch_.empty()) collect();
      while (!batch_.empty() && apply_once() == Attempt::again) {
      }
      backoff_.reset();
      if (session_.connected()) set_state("ok");
      if (Clock::now() >= next_status_) {
        next_status_ = Clock::now() + 1s;
        advance_idle_offsets();
        commit_to_kafka();
        update_lag();
      }
    } catch (const ProjectionSetupError& error) {
      logger()->critical("{}", error.what());
      set_state("failed", error.what());
      return kExitFatal;
    } catch (const TopicRewritten& error) {
      logger()->critical("{}", error.what());
      set_state("failed", error.what());
      return kExitFatal;
    } catch (const kafka::FatalKafkaError& error) {
      logger()->critical("Kafka: {}", error.what());
      return kExitFatal;
    } catch (const pg::PgError& error) {
      if (error.error_class() != pg::ErrorClass::permanent) session_.disconnect();
      enter_retry(error.what());
    } catch (const std::exception& error) {
      enter_retry(error.what());
    }
  }
  // SIGTERM: finish the batch in hand (unless it is waiting for a retry), then leave the group.
  if (!retry_at_ && !batch_.empty()) {
    try {
      while (!batch_.empty() && apply_once() == Attempt::again) {
      }
    } catch (const std::exception& error) {
      logger()->warn("the last batch was not applied ({}); the next owner starts at the stored offset",
                     error.what());
    }
  }
  commit_to_kafka();
  try {
    consumer_->close(10s);
  } catch (const std::exception& error) {
    logger()->warn("leaving the consumer group: {}", error.what());
  }
  logger()->info("stopped");
  return kExitOk;
}

}  // namespace syncline::pg_projector
