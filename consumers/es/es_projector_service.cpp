// EsProjectorService: batches, versioned bulk writes, item retries, dead letters and offset
// commits (see es_projector_service.hpp).
#include "consumers/es/es_projector_service.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>

#include "common/consumer_batch.hpp"
#include "common/envelope.hpp"
#include "common/failpoint.hpp"
#include "common/iso_time.hpp"
#include "common/logging.hpp"
#include "common/shutdown.hpp"

namespace syncline::es_projector {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;


std::shared_ptr<spdlog::logger> logger() { return log::get("es-projector"); }

// A shutdown while items still wait for a retry: the batch is abandoned without committing its
// offsets, and the next owner applies it again (every write is versioned, so that is harmless).
class Abandoned : public std::runtime_error {
 public:
  Abandoned() : std::runtime_error("shutdown while the batch was being retried") {}
};

}  // namespace

std::optional<std::string> commit_metadata_of(const nlohmann::json& envelope) {
  const auto source = envelope.find("source");
  if (source == envelope.end() || !source->is_object()) return std::nullopt;
  nlohmann::json metadata = nlohmann::json::object();
  for (const char* key : {"commit_lsn", "commit_ts"}) {
    const auto value = source->find(key);
    if (value != source->end() && value->is_string()) metadata[key] = *value;
  }
  if (metadata.empty()) return std::nullopt;
  return metadata.dump();
}

std::optional<CommitMetadata> parse_commit_metadata(std::string_view metadata) {
  const auto parsed = nlohmann::json::parse(metadata, nullptr, false);
  if (!parsed.is_object()) return std::nullopt;
  CommitMetadata result;
  if (const auto lsn = parsed.find("commit_lsn"); lsn != parsed.end() && lsn->is_string())
    result.commit_lsn = lsn->get<std::string>();
  if (const auto ts = parsed.find("commit_ts"); ts != parsed.end() && ts->is_string())
    result.commit_ts = ts->get<std::string>();
  if (!result.commit_lsn && !result.commit_ts) return std::nullopt;
  return result;
}

EsProjectorService::EsProjectorService(const Config& config, metrics::Registry& registry)
    : config_(config),
      options_(config.es_projector),
      registry_(registry),
      planner_(config.es_projector, config.kafka.topic_prefix),
      client_(config.require_search(), config.es_projector.gzip, config.es_projector.delete_retention),
      backoff_(config.es_projector.retry_max_backoff),
      indexed_(registry.counter("syncline_es_projector_documents_indexed_total",
                                "Documents written (index actions acknowledged).")),
      deleted_(registry.counter("syncline_es_projector_documents_deleted_total",
                                "Documents deleted (delete actions acknowledged, or already absent).")),
      stale_(registry.counter("syncline_es_projector_stale_total",
                              "Writes skipped because the engine holds a newer version (replays, resyncs).")),
      retried_(registry.counter("syncline_es_projector_retried_items_total",
                                "Bulk items sent again after 429/5xx or a transport failure.")),
      dead_lettered_(registry.counter("syncline_es_projector_dead_lettered_total",
                                      "Events sent to the dead-letter topic instead of being indexed.")),
      skipped_(registry.counter("syncline_es_projector_skipped_total",
                                "Events on the projector's topics that no mapping wants.")),
      bulk_actions_(registry.histogram("syncline_es_projector_bulk_actions", "Actions per bulk request.",
                                       metrics::exponential_buckets(1, 4, 8))),
      bulk_seconds_(registry.histogram("syncline_es_projector_bulk_seconds", "Time of one bulk request.",
                                       metrics::default_latency_buckets())),
      status_(config.es_projector.group_id, registry, "syncline_es_projector"),
      commit_to_indexed_(registry.histogram(
          "syncline_es_projector_commit_to_indexed_seconds",
          "From the write database's commit (source.commit_ts) to the bulk acknowledgement.",
          metrics::default_latency_buckets())) {
  if (planner_.topics().empty()) {
    throw std::invalid_argument("es_projector: configure mirror tables or mappings");
  }
  dead_letters_ = std::make_unique<DeadLetterPublisher>(config.kafka, options_.dead_letter_topic, "es-projector");
}

EsProjectorService::~EsProjectorService() = default;

kafka::Properties EsProjectorService::consumer_properties() const {
  kafka::Properties properties{{"queued.max.messages.kbytes", "8192"},
                               {"session.timeout.ms", "10000"},
                               {"topic.metadata.refresh.interval.ms", "5000"}};
  for (const auto& [key, value] : config_.kafka.properties) properties[key] = value;
  properties["bootstrap.servers"] = config_.kafka.bootstrap_servers;
  properties["client.id"] = config_.kafka.client_id;
  properties["group.id"] = options_.group_id;
  return properties;
}

// ---------------------------------------------------------------------------------------------
// Reading

void EsProjectorService::collect() {
  const auto accept = [&](kafka::Message message) {
    Record record{std::move(message), {}, {}, std::nullopt, false};
    record.topic = record.message.topic();
    if (!assigned_.contains({record.topic, record.message.partition()})) return;
    record.type = record.message.header(kafka_header::event_type).value_or("");
    record.wanted = planner_.wants(record.topic, record.type);
    batch_bytes_ += record.message.value().size();
    batch_.push_back(std::move(record));
  };
  collect_batch(
      *consumer_, carry_, options_.bulk_max, [&] { return batch_.size(); },
      [&] { return batch_.size() >= options_.bulk_max_actions || batch_bytes_ >= options_.bulk_max_bytes; }, accept);
}

// ---------------------------------------------------------------------------------------------
// Applying

void EsProjectorService::dead_letter(std::size_t index, const std::string& reason) {
  const Record& record = batch_[index];
  const auto key = record.message.key();
  dead_letters_->publish({record.topic, record.message.partition(), record.message.offset(),
                          key ? std::optional<std::string>(*key) : std::nullopt, std::string(record.message.value()),
                          record.message.headers(), "", reason.substr(0, 2000)});
  dead_lettered_.inc();
}

void EsProjectorService::apply() {
  std::vector<Event> events;
  std::uint64_t dead = 0;
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    Record& record = batch_[i];
    if (!record.wanted) {
      skipped_.inc();
      continue;
    }
    if (!record.value) {
      try {
        auto value = nlohmann::json::parse(record.message.value());
        if (!value.is_object()) throw std::invalid_argument("it is JSON but not an object");
        record.value = std::move(value);
      } catch (const std::exception& error) {
        dead_letter(i, std::string("value is not a JSON envelope: ") + error.what());
        ++dead;
        record.wanted = false;  // dead-lettered once, even if the batch is retried
        continue;
      }
    }
    events.push_back(Event{i, record.topic, record.message.partition(), record.message.offset(), record.message.key(),
                           record.type, &*record.value});
  }
  std::vector<const Event*> pointers;
  pointers.reserve(events.size());
  for (const auto& event : events) pointers.push_back(&event);

  const Plan plan = planner_.plan(pointers, client_);
  for (const auto& [index, reason] : plan.rejected) {
    dead_letter(index, reason);
    batch_[index].wanted = false;
    ++dead;
  }
  skipped_.inc(static_cast<double>(plan.skipped.size()));
  stale_.inc(static_cast<double>(plan.stale.size()));
  execute(plan);
  failpoint::hit("es-projector.after_bulk");  // the engine has the batch, the offsets are not committed
  // Dead letters are durable before the offsets that pass them are committed.
  dead_letters_->flush(30s);
  commit_offsets();

  const auto now = std::chrono::system_clock::now();
  for (const auto& event : events) {
    const auto source = event.value->find("source");
    if (source == event.value->end() || !source->is_object()) continue;
    const auto ts = source->find("commit_ts");
    if (ts == source->end() || !ts->is_string()) continue;
    if (const auto commit_time = parse_iso_utc(ts->get_ref<const std::string&>())) {
      commit_to_indexed_.observe(std::max(0.0, std::chrono::duration<double>(now - *commit_time).count()));
      status_.record_applied_commit(*commit_time);
    }
  }
  status_.record_batch(batch_.size(), dead);
  batch_.clear();
  batch_bytes_ = 0;
  backoff_.reset();
}

void EsProjectorService::execute(const Plan& plan) {
  std::vector<const BulkAction*> chunk;
  const auto flush = [&] {
    if (!chunk.empty()) send_bulk(std::exchange(chunk, {}));
  };
  for (const auto& step : plan.steps) {
    if (const auto* action = std::get_if<BulkAction>(&step)) {
      chunk.push_back(action);
      if (chunk.size() >= options_.bulk_max_actions) flush();
      continue;
    }
    flush();
    const auto& truncate = std::get<DeleteOlder>(step);
    while (true) {
      try {
        const auto removed = client_.delete_older(truncate);
        deleted_.inc(static_cast<double>(removed));
        break;
      } catch (const SearchUnavailable& error) {
        logger()->warn("truncate of {} failed, retrying: {}", truncate.index, error.what());
        set_state("retrying", error.what());
        if (!wait_paused(backoff_.next())) throw Abandoned();
      }
    }
  }
  flush();
}

void EsProjectorService::send_bulk(std::vector<const BulkAction*> actions) {
  while (!actions.empty()) {
    const auto started = Clock::now();
    std::vector<ItemResult> results;
    try {
      results = client_.bulk(actions);
    } catch (const SearchUnavailable& error) {
      logger()->warn("bulk request of {} action(s) failed: {}", actions.size(), error.what());
      results.assign(actions.size(), ItemResult{ItemOutcome::retry, 0, error.what()});
    }
    // Too large for the engine (413): resending it whole can never fit, so halve it.
    if (too_large_for_engine(actions.size(), results)) {
      const auto middle = actions.begin() + static_cast<std::ptrdiff_t>(actions.size() / 2);
      logger()->warn("bulk request of {} action(s) too large for the engine; splitting it", actions.size());
      send_bulk({actions.begin(), middle});
      send_bulk({middle, actions.end()});
      return;
    }
    bulk_actions_.observe(static_cast<double>(actions.size()));
    bulk_seconds_.observe(std::chrono::duration<double>(Clock::now() - started).count());
    auto [again, reason] = sort_bulk_results(actions, results, [&](const BulkAction& action, const ItemResult& result) {
      switch (result.outcome) {
        case ItemOutcome::done:
          (action.kind == BulkAction::Kind::index ? indexed_ : deleted_).inc();
          break;
        case ItemOutcome::stale:
          stale_.inc();
          break;
        case ItemOutcome::reject:
          dead_letter(action.event, fmt::format("index {} document {}: {}", action.index, action.id, result.reason));
          break;
        case ItemOutcome::retry:
          break;
      }
    });
    if (again.empty()) return;
    retried_.inc(static_cast<double>(again.size()));
    logger()->warn("{} of {} bulk item(s) to retry: {}", again.size(), actions.size(), reason);
    set_state("retrying", reason);
    if (!wait_paused(backoff_.next())) throw Abandoned();
    actions = std::move(again);
  }
}

void EsProjectorService::commit_offsets() {
  std::map<kafka::TopicPartition, std::int64_t> next;
  for (const auto& record : batch_) {
    const kafka::TopicPartition partition{record.topic, record.message.partition()};
    if (assigned_.contains(partition)) next[partition] = record.message.offset() + 1;
  }
  // Also past trailing transaction markers, when every record read from a partition is applied.
  std::vector<kafka::TopicPartition> idle;
  for (const auto& partition : assigned_) {
    const bool carried = std::any_of(carry_.begin(), carry_.end(), [&](const kafka::Message& message) {
      return message.partition() == partition.partition && message.topic() == partition.topic;
    });
    if (!carried) idle.push_back(partition);
  }
  for (const auto& position : consumer_->position(idle)) {
    const kafka::TopicPartition partition{position.topic, position.partition};
    const auto it = committed_.find(partition);
    if (position.offset >= 0 && (it == committed_.end() || position.offset > it->second) &&
        (!next.contains(partition) || position.offset > next[partition])) {
      next[partition] = position.offset;
    }
  }
  if (next.empty()) return;
  for (const auto& record : batch_) {
    if (!record.value) continue;  // not wanted, or not JSON: it positions nothing
    const kafka::TopicPartition partition{record.topic, record.message.partition()};
    if (!next.contains(partition)) continue;
    if (auto metadata = commit_metadata_of(*record.value)) commit_metadata_[partition] = std::move(*metadata);
  }
  // A partition committed with nothing applied by us yet (past transaction markers, after a
  // restart) keeps the metadata of its previous commit.
  std::vector<kafka::TopicPartition> unknown;
  for (const auto& [partition, offset] : next)
    if (!commit_metadata_.contains(partition)) unknown.push_back(partition);
  if (!unknown.empty()) {
    try {
      for (const auto& previous : consumer_->committed(unknown, 10s))
        commit_metadata_[{previous.topic, previous.partition}] = previous.metadata;
    } catch (const std::exception& error) {
      logger()->debug("reading the previous commits' metadata: {}", error.what());
    }
  }
  std::vector<kafka::TopicPartitionOffset> offsets;
  for (const auto& [partition, offset] : next) {
    const auto metadata = commit_metadata_.find(partition);
    offsets.push_back({partition.topic, partition.partition, offset,
                       metadata != commit_metadata_.end() ? metadata->second : std::string()});
  }
  try {
    consumer_->commit(offsets, kafka::CommitMode::sync, 10s);
    for (const auto& [partition, offset] : next) committed_[partition] = offset;
  } catch (const std::exception& error) {
    // The documents are written; whoever reads these records again writes the same versions.
    logger()->warn("committing offsets failed (the records will be applied again, harmlessly): {}", error.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting, indices, status

bool EsProjectorService::wait_paused(std::chrono::milliseconds duration) {
  const auto until = Clock::now() + duration;
  while (Clock::now() < until && !shutdown::requested()) {
    consumer_->pause(consumer_->assignment());
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    auto message = consumer_->poll(std::clamp(left, 0ms, 100ms));
    if (message && message->ok()) carry_.push_back(std::move(*message));
    // /status keeps telling the truth while waiting (the backlog grows).
    if (Clock::now() >= next_status_) {
      next_status_ = Clock::now() + 1s;
      update_lag();
    }
  }
  consumer_->resume(consumer_->assignment());
  return !shutdown::requested();
}

void EsProjectorService::ensure_indices() {
  for (const auto& index : options_.indices) client_.ensure_index(index);
  indices_ready_ = true;
  logger()->info("{} index alias(es) ready", options_.indices.size());
}

void EsProjectorService::update_lag() {
  std::vector<kafka::TopicPartition> owned(assigned_.begin(), assigned_.end());
  const auto positions = consumer_->position(owned);
  std::vector<PartitionProgress> progress;
  for (std::size_t i = 0; i < owned.size(); ++i) {
    const auto watermarks = consumer_->cached_watermarks(owned[i]);
    std::optional<std::int64_t> next;
    if (const auto it = committed_.find(owned[i]); it != committed_.end()) next = it->second;
    if (!next && positions[i].offset >= 0) next = positions[i].offset;
    if (!next && watermarks) next = watermarks->low;  // nothing read or committed yet
    progress.push_back({owned[i], next, watermarks});
  }
  status_.update_partitions(progress);
  status_.set("documents", {{"indexed", indexed_.value()},
                            {"deleted", deleted_.value()},
                            {"stale", stale_.value()},
                            {"retried", retried_.value()},
                            {"dead_lettered", dead_lettered_.value()},
                            {"skipped", skipped_.value()}});
}

void EsProjectorService::set_state(const std::string& state, const std::string& error) {
  status_.set_state(state, error);
}

http::Readiness EsProjectorService::readiness() const { return status_.readiness(); }

nlohmann::json EsProjectorService::status() const { return status_.snapshot(); }

// ---------------------------------------------------------------------------------------------
// The loop

int EsProjectorService::run() {
  kafka::RebalanceHooks hooks;
  // Partitions start at the group's committed offsets (auto.offset.reset when none): the versions
  // make a replay of anything between the last commit and a crash harmless.
  hooks.on_assign = [this](const std::vector<kafka::TopicPartition>& partitions) {
    assigned_.insert(partitions.begin(), partitions.end());
    return std::vector<kafka::TopicPartitionOffset>{};
  };
  hooks.on_revoke = [this](const std::vector<kafka::TopicPartition>& partitions, bool) {
    // The batch in hand is still written (harmless: versioned), but its offsets are no longer
    // ours to commit.
    for (const auto& partition : partitions) {
      assigned_.erase(partition);
      committed_.erase(partition);
      commit_metadata_.erase(partition);
      status_.forget_partition(partition);
    }
  };
  consumer_ = std::make_unique<kafka::Consumer>(consumer_properties(), hooks);
  logger()->info("group {} reading {} topic(s); dead letters to {}", options_.group_id, planner_.topics().size(),
                 options_.dead_letter_topic);
  bool subscribed = false;
  while (!shutdown::requested()) {
    try {
      if (!indices_ready_) ensure_indices();
      if (!subscribed) {
        consumer_->subscribe(planner_.topics());
        subscribed = true;
      }
      if (batch_.empty()) collect();
      if (!batch_.empty()) apply();
      set_state("ok");
      if (Clock::now() >= next_status_) {
        next_status_ = Clock::now() + 1s;
        if (batch_.empty() && carry_.empty()) commit_offsets();
        update_lag();
      }
    } catch (const Abandoned&) {
      break;
    } catch (const SearchRequestError& error) {
      // An index definition the engine refuses (bad settings or mappings): an operator must fix it.
      logger()->critical("{}", error.what());
      set_state("failed", error.what());
      return kExitFatal;
    } catch (const kafka::FatalKafkaError& error) {
      logger()->critical("Kafka: {}", error.what());
      return kExitFatal;
    } catch (const std::exception& error) {
      // The search engine or Kafka unreachable: the batch in hand is kept and applied again.
      const auto wait = backoff_.next();
      logger()->warn("transient failure, retrying in {} ms ({} record(s) held, partitions paused): {}", wait.count(),
                     batch_.size(), error.what());
      set_state("retrying", error.what());
      if (subscribed) {
        if (!wait_paused(wait)) break;
      } else {
        shutdown::wait_for(wait);
      }
    }
  }
  try {
    consumer_->close(10s);
  } catch (const std::exception& error) {
    logger()->warn("leaving the consumer group: {}", error.what());
  }
  logger()->info("stopped");
  return kExitOk;
}

}  // namespace syncline::es_projector
