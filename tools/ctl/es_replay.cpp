// syncline-ctl resync replay of a search-index projection (see es_replay.hpp).
//
// Index names: the live projector writes through the alias <alias> -> <alias>_v<N>. A replay
// builds <alias>_v<N+1>, unaliased, with its own consumer group (shadow_group()), so that an
// interrupted run finds both again and continues. A retired index carries
// _meta.syncline_retired {retired_at, delete_after, replaced_by}; any later run deletes it once
// delete_after has passed.
#include "tools/ctl/es_replay.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <functional>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/backoff.hpp"
#include "common/dead_letter.hpp"
#include "common/envelope.hpp"
#include "common/failpoint.hpp"
#include "common/iso_time.hpp"
#include "common/logging.hpp"
#include "common/shutdown.hpp"
#include "consumers/es/bulk_action.hpp"
#include "consumers/es/document_planner.hpp"
#include "tools/ctl/command.hpp"

namespace syncline::ctl {

namespace es_replay {

using nlohmann::json;

std::optional<int> index_version(std::string_view alias, std::string_view index) {
  if (index.size() <= alias.size() + 2 || !index.starts_with(alias) || index.substr(alias.size(), 2) != "_v")
    return std::nullopt;
  const std::string_view digits = index.substr(alias.size() + 2);
  if (digits.empty() || digits.size() > 9 || digits.front() == '0' ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int version = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), version);
  return version;
}

std::string versioned_index(std::string_view alias, int version) {
  return fmt::format("{}_v{}", alias, version);
}

std::string shadow_group(std::string_view live_group, std::string_view alias, int version) {
  return fmt::format("{}.resync.{}.v{}", live_group, alias, version);
}

json retirement_meta(const Retirement& retirement) {
  return {{std::string(kRetiredMeta),
           {{"retired_at", retirement.retired_at},
            {"delete_after", retirement.delete_after ? json(*retirement.delete_after) : json(nullptr)},
            {"replaced_by", retirement.replaced_by}}}};
}

std::optional<Retirement> retirement_of(const json& meta) {
  if (!meta.is_object()) return std::nullopt;
  const auto found = meta.find(std::string(kRetiredMeta));
  if (found == meta.end() || !found->is_object()) return std::nullopt;
  Retirement retirement;
  retirement.retired_at = found->value("retired_at", "");
  if (const auto after = found->find("delete_after"); after != found->end() && after->is_string())
    retirement.delete_after = after->get<std::string>();
  retirement.replaced_by = found->value("replaced_by", "");
  return retirement;
}

Layout plan_layout(std::string_view alias, const std::string& live,
                   const std::vector<es_projector::IndexInfo>& indices,
                   std::chrono::system_clock::time_point now) {
  Layout layout;
  layout.live = live;
  const int live_version = index_version(alias, live).value_or(0);
  const std::string alias_name(alias);
  int highest = live_version;
  const es_projector::IndexInfo* highest_index = nullptr;
  for (const auto& index : indices) {
    const bool aliased =
        std::find(index.aliases.begin(), index.aliases.end(), alias_name) != index.aliases.end();
    if (aliased && index.name != live) {
      throw std::runtime_error(fmt::format(
          "alias {} points to {} and to {}: a swap is half done by hand; make it point to one index", alias,
          live, index.name));
    }
    const auto version = index_version(alias, index.name);
    if (!version) continue;
    if (*version > highest) {
      highest = *version;
      highest_index = &index;
    }
    if (*version >= live_version || aliased) continue;
    const auto retirement = retirement_of(index.meta);
    if (!retirement) {
      layout.mark_retired.push_back(index.name);
    } else if (retirement->delete_after) {
      const auto after = parse_iso_utc(*retirement->delete_after);
      if (after && *after <= now) layout.delete_now.push_back(index.name);
    }
  }
  if (highest_index != nullptr) {
    // An unaliased index above the live one: the shadow an interrupted run was building.
    layout.resume = true;
    layout.shadow = highest_index->name;
    layout.shadow_version = highest;
  } else {
    layout.shadow_version = highest + 1;
    layout.shadow = versioned_index(alias, layout.shadow_version);
  }
  return layout;
}

bool reached(const Positions& positions, const Positions& targets) {
  return std::all_of(targets.begin(), targets.end(), [&](const auto& target) {
    const auto position = positions.find(target.first);
    return position != positions.end() && position->second >= target.second;
  });
}

json result_json(const EsReplayResult& result) {
  return {{"projection", result.projection},
          {"sink", "es"},
          {"alias", result.alias},
          {"old_index", result.old_index},
          {"new_index", result.new_index},
          {"events", result.events},
          {"dead_lettered", result.dead_lettered},
          {"seconds", result.seconds},
          {"resumed", result.resumed},
          {"swapped", result.swapped},
          {"interrupted", result.interrupted},
          {"old_index_state", result.old_index_state},
          {"delete_after", result.delete_after ? json(*result.delete_after) : json(nullptr)},
          // The same keys as a read-PostgreSQL replay's result (replay.hpp), for scripts that run both.
          {"old_target", result.old_index},
          {"new_target", result.new_index},
          {"old_dropped", result.old_index_state == "deleted"}};
}

std::string result_text(const EsReplayResult& result, const Style& style) {
  std::string text;
  if (result.swapped) {
    text += fmt::format("{} replay of {}: {} now points at {} (was {}){}\n", style.green("done:"),
                        result.projection, result.alias, style.bold(result.new_index), result.old_index,
                        result.resumed ? ", resumed" : "");
  } else {
    text += fmt::format(
        "{} replay of {}: {} still points at {}; {} is unfinished, run the replay again to resume\n",
        style.yellow("interrupted:"), result.projection, result.alias, result.old_index, result.new_index);
  }
  text += fmt::format(
      "  events      {} replayed in {}{}\n", format_count(static_cast<std::int64_t>(result.events)),
      format_seconds(result.seconds),
      result.dead_lettered > 0
          ? style.yellow(fmt::format(", {} dead-lettered",
                                     format_count(static_cast<std::int64_t>(result.dead_lettered))))
          : std::string());
  if (result.swapped) {
    std::string fate;
    if (result.old_index_state == "deleted") {
      fate = "deleted";
    } else if (result.old_index_state == "kept") {
      fate = "kept (--keep-old); delete it by hand when no longer needed";
    } else {
      fate = fmt::format("retiring: the next replay deletes it after {}", result.delete_after.value_or("?"));
    }
    text += fmt::format("  old index   {} {}\n", result.old_index, fate);
  }
  return text;
}

}  // namespace es_replay

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using es_projector::BulkAction;
using es_projector::DeleteOlder;
using es_projector::DocumentLookup;
using es_projector::DocumentPlanner;
using es_projector::EsClient;
using es_projector::Event;
using es_projector::ItemOutcome;
using es_projector::ItemResult;
using es_projector::Plan;
using es_projector::SearchError;
using es_projector::SearchUnavailable;
using es_replay::Positions;
using nlohmann::json;

constexpr auto kAdminTimeout = 15s;
// _meta key on an index whose writes a replay blocked for its swap (value: the new index), so a
// later run can lift a block that a killed run left behind.
constexpr const char* kWriteBlockMarker = "syncline_write_blocked_by";

std::shared_ptr<spdlog::logger> logger() { return log::get("es-replay"); }

// Stopped by SIGINT/SIGTERM: the batch in hand is not committed (the next run applies it again,
// harmlessly: every write is versioned).
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

// The es_projector section reduced to what writes the index `alias`, so the planner plans
// nothing for the other indices that share its topics.
EsProjectorConfig config_for_index(const EsProjectorConfig& all, const std::string& alias) {
  EsProjectorConfig one = all;
  one.mirror.clear();
  one.mappings.clear();
  for (const auto& mirror : all.mirror)
    if (mirror.index == alias) one.mirror.push_back(mirror);
  for (const auto& mapping : all.mappings)
    if (mapping.index == alias) one.mappings.push_back(mapping);
  return one;
}

// Partial updates read the stored document from the shadow index, not through the alias (which
// still names the live index until the swap).
class ShadowLookup : public DocumentLookup {
 public:
  ShadowLookup(EsClient& client, std::string alias, std::string shadow)
      : client_(client), alias_(std::move(alias)), shadow_(std::move(shadow)) {}

  std::map<std::pair<std::string, std::string>, std::optional<es_projector::CurrentDocument>> fetch(
      const std::vector<std::pair<std::string, std::string>>& documents) override {
    std::vector<std::pair<std::string, std::string>> asked;
    asked.reserve(documents.size());
    for (const auto& [index, id] : documents) asked.emplace_back(index == alias_ ? shadow_ : index, id);
    auto found = client_.fetch(asked);
    std::map<std::pair<std::string, std::string>, std::optional<es_projector::CurrentDocument>> out;
    for (std::size_t i = 0; i < documents.size(); ++i) out[documents[i]] = std::move(found[asked[i]]);
    return out;
  }

 private:
  EsClient& client_;
  std::string alias_;
  std::string shadow_;
};

kafka::Properties admin_properties(const KafkaConfig& kafka) {
  kafka::Properties properties;
  for (const auto& [key, value] : kafka.properties)
    if (!kafka::is_consumer_property(key) && key != "transactional.id") properties[key] = value;
  properties["bootstrap.servers"] = kafka.bootstrap_servers;
  properties["client.id"] = kafka.client_id;
  return properties;
}

// Best effort: the shadow group's offsets are useless once the hand-over is done.
void delete_group(kafka::AdminClient& admin, const std::string& group) {
  struct QueueDeleter {
    void operator()(rd_kafka_queue_t* queue) const noexcept { rd_kafka_queue_destroy(queue); }
  };
  struct EventDeleter {
    void operator()(rd_kafka_event_t* event) const noexcept { rd_kafka_event_destroy(event); }
  };
  struct GroupDeleter {
    void operator()(rd_kafka_DeleteGroup_t* group) const noexcept { rd_kafka_DeleteGroup_destroy(group); }
  };
  const std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(admin.raw()));
  const std::unique_ptr<rd_kafka_DeleteGroup_t, GroupDeleter> request(
      rd_kafka_DeleteGroup_new(group.c_str()));
  std::array<rd_kafka_DeleteGroup_t*, 1> requests{request.get()};
  rd_kafka_DeleteGroups(admin.raw(), requests.data(), requests.size(), nullptr, queue.get());
  const std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(std::chrono::milliseconds(kAdminTimeout).count())));
  std::string problem;
  if (!event) {
    problem = "no answer";
  } else if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    problem = rd_kafka_event_error_string(event.get());
  } else if (const auto* result = rd_kafka_event_DeleteGroups_result(event.get())) {
    std::size_t count = 0;
    const auto** groups = rd_kafka_DeleteGroups_result_groups(result, &count);
    const rd_kafka_error_t* error = count == 1 ? rd_kafka_group_result_error(groups[0]) : nullptr;
    // A run that committed nothing (no topic had records) left no group behind.
    if (error != nullptr && rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
      problem = rd_kafka_error_string(error);
  }
  if (!problem.empty()) logger()->warn("deleting the consumer group {}: {}", group, problem);
}

// One run of the replay. Owned by the thread that calls run().
class EsReplay {
 public:
  EsReplay(const Config& config, const ProjectionInfo& projection, const EsReplayOptions& options,
           Progress& progress)
      : config_(config),
        options_(options),
        progress_(progress),
        alias_(projection.target.empty() ? projection.name : projection.target),
        topics_(projection.topics),
        index_config_(find_index(config, alias_)),
        es_options_(config_for_index(config.es_projector, alias_)),
        planner_(es_options_, config.kafka.topic_prefix),
        client_(config.require_search(), config.es_projector.gzip, config.es_projector.delete_retention),
        backoff_(config.es_projector.retry_max_backoff),
        admin_(admin_properties(config.kafka)) {
    result_.projection = projection.name;
    result_.alias = alias_;
  }

  EsReplayResult run();

 private:
  struct Record {
    kafka::Message message;
    std::string topic;
    std::string type;
    std::optional<json> value;
    bool wanted = false;
  };

  static const EsIndexConfig& find_index(const Config& config, const std::string& alias) {
    for (const auto& index : config.es_projector.indices)
      if (index.name == alias) return index;
    throw std::invalid_argument(fmt::format("es_projector.indices has no index {}", alias));
  }

  void note(const std::string& text) const {
    progress_.finish("");
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
  }

  void prepare_indices();
  void open_consumer(bool resume);
  // Builds the shadow up to the live position, then to the end of the topics under a write block
  // on the old index (set when it returns). Throws Interrupted, with no block left.
  void build_to_swap();
  // The hand-over's write block on the old index (see run()); marked in its _meta first.
  void block_write(const std::string& index) {
    client_.merge_meta(index, {{kWriteBlockMarker, layout_.shadow}});
    client_.set_write_block(index, true);
    write_blocked_ = true;
  }
  void lift_write_block(const std::string& index) {
    client_.set_write_block(index, false);
    client_.merge_meta(index, {{kWriteBlockMarker, nullptr}});
    write_blocked_ = false;
  }
  // Reads and applies until `finished()` (checked at most every check_interval, or when idle).
  void pump(const std::function<bool()>& finished);
  void collect(std::vector<Record>& batch);
  void apply(std::vector<Record>& batch);
  void execute(const Plan& plan, std::vector<Record>& batch);
  void send_bulk(std::vector<const BulkAction*> actions, std::vector<Record>& batch);
  void dead_letter(const Record& record, const std::string& reason);
  void commit_positions();
  Positions end_offsets();
  Positions live_targets(bool fall_back_to_end);
  void show_progress(const Positions& targets);
  // Waits `duration`; throws Interrupted when the run must stop.
  void wait(std::chrono::milliseconds duration);
  bool stopping();
  void retire_old_index();

  const Config& config_;
  const EsReplayOptions& options_;
  Progress& progress_;
  std::string alias_;
  std::vector<std::string> topics_;
  const EsIndexConfig& index_config_;
  EsProjectorConfig es_options_;
  DocumentPlanner planner_;
  EsClient client_;
  Backoff backoff_;
  kafka::AdminClient admin_;
  es_replay::Layout layout_;
  std::string group_;
  std::vector<kafka::TopicPartition> partitions_;
  Positions low_;           // log start offsets when the run began
  Positions start_;         // where this run started reading
  Positions next_;          // the next offset to read: everything before it is applied
  Positions committed_;     // the shadow group's committed offsets
  Positions last_targets_;  // what the progress bar counts towards
  bool interruptible_ = true;
  bool eager_ = false;
  bool write_blocked_ = false;  // batches without lingering (settling at the end before the swap)
  std::optional<Clock::time_point> give_up_at_;  // set by an interrupt during the hand-over
  EsReplayResult result_;
  std::unique_ptr<DeadLetterPublisher> dead_letters_;
  std::unique_ptr<kafka::Consumer> consumer_;  // last: destroyed first
};

bool EsReplay::stopping() {
  if (!shutdown::requested()) return false;
  if (interruptible_) return true;
  // After the swap, stopping would leave out what the old index got just before it: finish the
  // hand-over first, unless it takes too long.
  if (!give_up_at_) {
    give_up_at_ = Clock::now() + options_.handover_after_interrupt;
    note(fmt::format(
        "interrupt: finishing the hand-over to {} first (at most {})", layout_.shadow,
        format_seconds(std::chrono::duration<double>(options_.handover_after_interrupt).count())));
  }
  return Clock::now() >= *give_up_at_;
}

void EsReplay::wait(std::chrono::milliseconds duration) {
  if (stopping()) throw Interrupted();
  if (!shutdown::requested()) {
    if (shutdown::wait_for(duration) && stopping()) throw Interrupted();
    return;
  }
  // Interrupted, but finishing the hand-over: wait_for() no longer waits.
  std::this_thread::sleep_for(duration);
  if (stopping()) throw Interrupted();
}

void EsReplay::prepare_indices() {
  std::string live;
  try {
    live = client_.physical_index(alias_);
  } catch (const es_projector::SearchRequestError& error) {
    if (error.status() != 404) throw;
    throw std::runtime_error(
        fmt::format("the alias {} does not exist in the search engine: start the es-projector once (it "
                    "creates {}_v1 behind "
                    "the alias), then replay",
                    alias_, alias_));
  }
  layout_ =
      es_replay::plan_layout(alias_, live, client_.indices(alias_ + "_v*"), std::chrono::system_clock::now());
  result_.old_index = layout_.live;
  result_.new_index = layout_.shadow;
  for (const auto& index : client_.indices(alias_ + "_v*")) {
    // A run killed during its swap left its write block on the live index: the live projector is
    // waiting on it (retrying, nothing lost). Lift it before anything else.
    const auto marker = index.meta.find(kWriteBlockMarker);
    if (marker == index.meta.end() || !marker->is_string()) continue;
    lift_write_block(index.name);
    note(fmt::format("lifted the write block an interrupted replay left on {}", index.name));
  }
  const auto now = std::chrono::system_clock::now();
  for (const auto& name : layout_.delete_now) {
    client_.delete_index(name);
    note(fmt::format("deleted {}: retired by an earlier replay, its grace period is over", name));
  }
  for (const auto& name : layout_.mark_retired) {
    // A run stopped between its swap and marking the old index: its grace starts now.
    es_replay::Retirement retirement{format_iso_utc(now), std::nullopt, layout_.live};
    if (!options_.keep_old) retirement.delete_after = format_iso_utc(now + options_.grace);
    client_.merge_meta(name, es_replay::retirement_meta(retirement));
    note(fmt::format(
        "{} is an older index without a retirement mark: marked retired{}", name,
        retirement.delete_after ? ", deleted by a replay after " + *retirement.delete_after : ""));
  }
  if (layout_.resume) {
    result_.resumed = true;
    note(fmt::format("resuming the replay into {} (alias {} still on {})", layout_.shadow, alias_,
                     layout_.live));
  } else {
    client_.create_index(index_config_, layout_.shadow);
    note(fmt::format("replaying {} into the new index {} (alias {} stays on {} until the swap)", alias_,
                     layout_.shadow, alias_, layout_.live));
  }
}

void EsReplay::open_consumer(bool resume) {
  group_ = es_replay::shadow_group(config_.es_projector.group_id, alias_, layout_.shadow_version);
  for (const auto& topic : topics_) {
    const auto info = admin_.describe_topic(topic, kAdminTimeout);
    if (!info) {
      logger()->warn("topic {} does not exist (yet): nothing to replay from it", topic);
      continue;
    }
    for (const auto& partition : info->partitions) partitions_.push_back({topic, partition.id});
  }
  std::sort(partitions_.begin(), partitions_.end());
  for (const auto& partition : partitions_)
    low_[partition] = admin_.watermark_offsets(partition.topic, partition.partition, kAdminTimeout).low;
  start_ = low_;
  // A new shadow index starts from the beginning whatever the group holds (a deleted index's run).
  if (resume && !partitions_.empty()) {
    for (const auto& offset : admin_.group_offsets(group_, partitions_, kAdminTimeout)) {
      const kafka::TopicPartition partition{offset.topic, offset.partition};
      if (offset.offset >= 0) {
        committed_[partition] = offset.offset;
        start_[partition] = std::max(offset.offset, low_[partition]);
      }
    }
  }
  next_ = start_;

  kafka::Properties properties{{"queued.max.messages.kbytes", "16384"}};
  for (const auto& [key, value] : config_.kafka.properties) properties[key] = value;
  // Not a group member: the group only names where the offsets are committed.
  properties.erase("group.instance.id");
  properties["bootstrap.servers"] = config_.kafka.bootstrap_servers;
  properties["client.id"] = config_.kafka.client_id + "-resync";
  properties["group.id"] = group_;
  consumer_ = std::make_unique<kafka::Consumer>(properties);
  std::vector<kafka::TopicPartitionOffset> assignment;
  for (const auto& [partition, offset] : start_)
    assignment.push_back({partition.topic, partition.partition, offset});
  consumer_->assign(assignment);
  dead_letters_ = std::make_unique<DeadLetterPublisher>(config_.kafka, config_.es_projector.dead_letter_topic,
                                                        "es-resync");
}

Positions EsReplay::end_offsets() {
  // An admin client reads with isolation read_committed: the end is the last stable offset, so a
  // target never falls inside an open transaction.
  Positions ends;
  for (const auto& partition : partitions_)
    ends[partition] = admin_.watermark_offsets(partition.topic, partition.partition, kAdminTimeout).high;
  return ends;
}

Positions EsReplay::live_targets(bool fall_back_to_end) {
  Positions targets;
  if (partitions_.empty()) return targets;
  std::optional<Positions> ends;
  for (const auto& offset : admin_.group_offsets(config_.es_projector.group_id, partitions_, kAdminTimeout)) {
    const kafka::TopicPartition partition{offset.topic, offset.partition};
    if (offset.offset >= 0) {
      targets[partition] = offset.offset;
    } else if (fall_back_to_end) {
      // The live group never committed here: everything there is now.
      if (!ends) ends = end_offsets();
      targets[partition] = (*ends)[partition];
    } else {
      targets[partition] = low_[partition];
    }
  }
  return targets;
}

void EsReplay::show_progress(const Positions& targets) {
  if (&targets != &last_targets_) last_targets_ = targets;
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  for (const auto& [partition, start] : start_) {
    const std::int64_t next = next_[partition];
    const auto target = targets.find(partition);
    const std::int64_t goal = std::max(next, target == targets.end() ? next : target->second);
    done += static_cast<std::uint64_t>(std::max<std::int64_t>(0, next - start));
    total += static_cast<std::uint64_t>(std::max<std::int64_t>(0, goal - start));
  }
  progress_.update(done, total);
}

void EsReplay::collect(std::vector<Record>& batch) {
  std::size_t bytes = 0;
  const auto full = [&] {
    return batch.size() >= es_options_.bulk_max_actions || bytes >= es_options_.bulk_max_bytes;
  };
  std::optional<Clock::time_point> deadline;
  while (!full() && !stopping()) {
    const auto timeout =
        deadline
            ? std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()))
            : (eager_ ? 10ms : 100ms);
    auto message = consumer_->poll(timeout);
    if (message && message->ok()) {
      Record record{std::move(*message), {}, {}, std::nullopt, false};
      record.topic = record.message.topic();
      record.type = record.message.header(kafka_header::event_type).value_or("");
      record.wanted = planner_.wants(record.topic, record.type);
      bytes += record.message.value().size();
      batch.push_back(std::move(record));
      if (!deadline) deadline = Clock::now() + (eager_ ? 0ms : es_options_.bulk_max);
    } else if (message && message->error() != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      logger()->warn("consumer: {}", message->error_message());
    }
    // Eager: whatever was fetched already, without waiting for more.
    if (eager_ ? !message : (!deadline ? !message : Clock::now() >= *deadline)) break;
  }
}

void EsReplay::dead_letter(const Record& record, const std::string& reason) {
  auto headers = record.message.headers();
  // Tells whoever reads the dead-letter topic that a replay, not the live projector, sent it.
  headers.push_back({"syncline-dlq-resync", layout_.shadow});
  const auto key = record.message.key();
  dead_letters_->publish({record.topic, record.message.partition(), record.message.offset(),
                          key ? std::optional<std::string>(*key) : std::nullopt,
                          std::string(record.message.value()), std::move(headers), alias_,
                          reason.substr(0, 2000)});
  ++result_.dead_lettered;
}

void EsReplay::apply(std::vector<Record>& batch) {
  std::vector<Event> events;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Record& record = batch[i];
    if (!record.wanted) continue;
    if (!record.value) {
      try {
        auto value = json::parse(record.message.value());
        if (!value.is_object()) throw std::invalid_argument("it is JSON but not an object");
        record.value = std::move(value);
      } catch (const std::exception& error) {
        dead_letter(record, std::string("value is not a JSON envelope: ") + error.what());
        record.wanted = false;
        continue;
      }
    }
    events.push_back(Event{i, record.topic, record.message.partition(), record.message.offset(),
                           record.message.key(), record.type, &*record.value});
  }
  std::vector<const Event*> pointers;
  pointers.reserve(events.size());
  for (const auto& event : events) pointers.push_back(&event);

  ShadowLookup lookup(client_, alias_, layout_.shadow);
  Plan plan;
  while (true) {
    try {
      plan = planner_.plan(pointers, lookup);
      break;
    } catch (const SearchError& error) {
      if (!error.retriable()) throw;
      logger()->warn("reading stored documents of {} failed, retrying: {}", layout_.shadow, error.what());
      wait(backoff_.next());
    }
  }
  for (const auto& [index, reason] : plan.rejected) dead_letter(batch[index], reason);
  // The planner names the alias; the shadow is written directly (the alias is not its name yet).
  for (auto& step : plan.steps) {
    if (auto* action = std::get_if<BulkAction>(&step)) {
      if (action->index == alias_) action->index = layout_.shadow;
    } else if (auto* truncate = std::get_if<DeleteOlder>(&step)) {
      if (truncate->index == alias_) truncate->index = layout_.shadow;
    }
  }
  execute(plan, batch);
  // Dead letters are durable before the offsets that pass them are committed.
  while (true) {
    try {
      dead_letters_->flush(30s);
      break;
    } catch (const kafka::RetriableKafkaError& error) {
      logger()->warn("dead letters not acknowledged yet, waiting: {}", error.what());
      wait(backoff_.next());
    }
  }
  result_.events += batch.size();
  commit_positions();
  backoff_.reset();
}

void EsReplay::execute(const Plan& plan, std::vector<Record>& batch) {
  std::vector<const BulkAction*> chunk;
  const auto flush = [&] {
    if (!chunk.empty()) send_bulk(std::exchange(chunk, {}), batch);
  };
  for (const auto& step : plan.steps) {
    if (const auto* action = std::get_if<BulkAction>(&step)) {
      chunk.push_back(action);
      if (chunk.size() >= es_options_.bulk_max_actions) flush();
      continue;
    }
    flush();
    const auto& truncate = std::get<DeleteOlder>(step);
    while (true) {
      try {
        client_.delete_older(truncate);
        break;
      } catch (const SearchUnavailable& error) {
        logger()->warn("truncate of {} failed, retrying: {}", truncate.index, error.what());
        wait(backoff_.next());
      }
    }
  }
  flush();
}

void EsReplay::send_bulk(std::vector<const BulkAction*> actions, std::vector<Record>& batch) {
  while (!actions.empty()) {
    std::vector<ItemResult> results;
    try {
      results = client_.bulk(actions, /*require_alias=*/false);
    } catch (const SearchUnavailable& error) {
      results.assign(actions.size(), ItemResult{ItemOutcome::retry, 0, error.what()});
    }
    // Too large for the engine (413): resending it whole can never fit, so halve it.
    if (too_large_for_engine(actions.size(), results)) {
      const auto middle = actions.begin() + static_cast<std::ptrdiff_t>(actions.size() / 2);
      send_bulk({actions.begin(), middle}, batch);
      send_bulk({middle, actions.end()}, batch);
      return;
    }
    auto [again, reason] = sort_bulk_results(actions, results, [&](const BulkAction& action, const ItemResult& result) {
      if (result.outcome == ItemOutcome::reject) {
        dead_letter(batch[action.event],
                    fmt::format("index {} document {}: {}", action.index, action.id, result.reason));
      }
    });
    if (again.empty()) return;
    logger()->warn("{} of {} bulk item(s) to retry: {}", again.size(), actions.size(), reason);
    wait(backoff_.next());
    actions = std::move(again);
  }
}

void EsReplay::commit_positions() {
  // Everything poll() returned is applied, so the consumer's position is the resume point (past
  // transaction markers too).
  std::vector<kafka::TopicPartitionOffset> offsets;
  for (const auto& position : consumer_->position(partitions_)) {
    const kafka::TopicPartition partition{position.topic, position.partition};
    if (position.offset < 0) continue;
    next_[partition] = std::max(next_[partition], position.offset);
    const auto committed = committed_.find(partition);
    if (committed == committed_.end() || committed->second < position.offset)
      offsets.push_back({position.topic, position.partition, position.offset});
  }
  if (offsets.empty()) return;
  try {
    consumer_->commit(offsets, kafka::CommitMode::sync, 10s);
    for (const auto& offset : offsets) committed_[{offset.topic, offset.partition}] = offset.offset;
  } catch (const std::exception& error) {
    // The documents are written; a resumed run writes the same versions again.
    logger()->warn("committing the replay's offsets failed (a resumed run re-applies them): {}",
                   error.what());
  }
}

void EsReplay::pump(const std::function<bool()>& finished) {
  std::vector<Record> batch;
  std::optional<Clock::time_point> next_check;
  while (true) {
    if (stopping()) throw Interrupted();
    batch.clear();
    if (!partitions_.empty()) collect(batch);
    if (!batch.empty()) {
      apply(batch);
      show_progress(last_targets_);
    } else if (!partitions_.empty()) {
      commit_positions();  // idle: moves past trailing transaction markers
    }
    const auto now = Clock::now();
    if (!next_check || now >= *next_check || batch.empty()) {
      if (finished()) return;
      next_check = now + options_.check_interval;
    }
  }
}

void EsReplay::retire_old_index() {
  const auto now = std::chrono::system_clock::now();
  const std::string& old = layout_.live;
  es_replay::Retirement retirement{format_iso_utc(now), std::nullopt, layout_.shadow};
  if (!options_.keep_old) retirement.delete_after = format_iso_utc(now + options_.grace);
  if (options_.keep_old || options_.grace > 0ms) {
    client_.merge_meta(old, es_replay::retirement_meta(retirement));
  }
  if (options_.keep_old) {
    result_.old_index_state = "kept";
    return;
  }
  result_.old_index_state = "retiring";
  result_.delete_after = retirement.delete_after;
  if (options_.grace > 0ms) {
    note(fmt::format("keeping {} for {} (--grace) before deleting it", old,
                     format_seconds(std::chrono::duration<double>(options_.grace).count())));
    if (shutdown::wait_for(options_.grace)) {
      note(fmt::format("interrupted during the grace period: {} stays until a replay after {} deletes it",
                       old, *retirement.delete_after));
      return;
    }
  }
  client_.delete_index(old);
  result_.old_index_state = "deleted";
  result_.delete_after.reset();
}

void EsReplay::build_to_swap() {
  last_targets_ = live_targets(true);
  // Build and catch up: until the shadow has applied everything the live group has.
  pump([&] {
    const Positions targets = live_targets(true);
    show_progress(targets);
    return es_replay::reached(next_, targets);
  });
  if (stopping()) throw Interrupted();

  // The live projector's committed offsets lag what it has already written to the old index by up
  // to a batch, and a partial update it makes right after the swap reads the new index: the new
  // index must then hold everything it wrote to the old one. So writes to the old index are
  // blocked first (the live projector's bulk items wait and retry, they are not dead-lettered),
  // and the shadow applies every event up to the end offsets read after the block, which covers
  // every write the old index accepted. run() then moves the alias and lifts the block; any
  // failure before that lifts it here.
  client_.refresh(layout_.shadow);
  eager_ = true;  // batches without lingering: under a steady stream the end moves on meanwhile
  try {
    const auto settle_until = Clock::now() + 30s;
    while (true) {  // close to the end first, so the block below is short
      const Positions ends = end_offsets();
      if (es_replay::reached(next_, ends) || Clock::now() >= settle_until) break;
      pump([&] { return es_replay::reached(next_, ends); });
    }
    block_write(layout_.live);
    const Positions block_ends = end_offsets();
    pump([&] { return es_replay::reached(next_, block_ends); });
  } catch (...) {
    eager_ = false;
    if (write_blocked_) lift_write_block(layout_.live);
    throw;
  }
  eager_ = false;
}

EsReplayResult EsReplay::run() {
  const auto started = Clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };
  prepare_indices();
  open_consumer(layout_.resume);
  try {
    build_to_swap();
  } catch (const Interrupted&) {
    result_.interrupted = true;
    result_.seconds = elapsed();
    progress_.finish(fmt::format("interrupted: {} keeps pointing at {}; run the replay again to resume {}",
                                 alias_, layout_.live, layout_.shadow));
    return result_;
  }
  interruptible_ = false;
  failpoint::hit("ctl.replay_before_swap");
  try {
    client_.swap_alias(alias_, layout_.live, layout_.shadow);
  } catch (...) {
    lift_write_block(layout_.live);
    throw;
  }
  lift_write_block(layout_.live);
  result_.swapped = true;
  progress_.finish(fmt::format("alias {} moved from {} to {}", alias_, layout_.live, layout_.shadow));

  // Hand-over: what the live projector wrote to the old index just before the swap lies below
  // the end offsets of now; the shadow passes them, and so does the live group when it runs (its
  // batch in flight may have gone to the old index).
  const Positions swap_ends = end_offsets();
  try {
    pump([&] {
      show_progress(swap_ends);
      if (!es_replay::reached(next_, swap_ends)) return false;
      const auto group = admin_.describe_group(config_.es_projector.group_id, kAdminTimeout);
      if (!group || group->members.empty()) return true;
      return es_replay::reached(live_targets(false), swap_ends);
    });
  } catch (const Interrupted&) {
    result_.interrupted = true;
    result_.seconds = elapsed();
    progress_.finish(
        fmt::format("interrupted during the hand-over: {} points at {}, but events {} got just before the "
                    "swap may be missing "
                    "from it until they change again; {} is kept",
                    alias_, layout_.shadow, layout_.live, layout_.live));
    es_replay::Retirement retirement{format_iso_utc(std::chrono::system_clock::now()), std::nullopt,
                                     layout_.shadow};
    client_.merge_meta(layout_.live, es_replay::retirement_meta(retirement));
    result_.old_index_state = "kept";
    return result_;
  }
  interruptible_ = true;
  result_.seconds = elapsed();
  progress_.finish(fmt::format("{} caught up past the swap", layout_.shadow));
  try {
    consumer_->close(10s);
  } catch (const std::exception& error) {
    logger()->debug("closing the replay's consumer: {}", error.what());
  }
  consumer_.reset();
  delete_group(admin_, group_);
  retire_old_index();
  return result_;
}

}  // namespace

EsReplayResult replay_es_index(const Config& config, const ProjectionInfo& projection,
                               const EsReplayOptions& options, Progress& progress) {
  if (projection.sink != Sink::es)
    throw std::invalid_argument(
        fmt::format("projection {} is not a search index projection", projection.name));
  EsReplay replay(config, projection, options, progress);
  return replay.run();
}

int run_es_replay(const Config& config, const ProjectionInfo& projection, const EsReplayOptions& options,
                  Progress& progress) {
  const EsReplayResult result = replay_es_index(config, projection, options, progress);
  const std::string text = options.json ? es_replay::result_json(result).dump() + "\n"
                                        : es_replay::result_text(result, Style::for_stdout());
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  return result.interrupted ? kExitProblem : kExitOk;
}

}  // namespace syncline::ctl
