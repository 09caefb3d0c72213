// Replay of a read-PostgreSQL projection into a shadow schema and the atomic swap (see pg_replay.hpp).
//
// Exactness of the hand-over: the live group's rows in syncline.offsets are shared by every pg
// projection reading a topic, and SQL projections are not idempotent (counters). The shadow
// therefore never applies past the live group's stored position, and the swap happens in one
// transaction that first locks syncline.offsets against writers (the live projector's next batch
// then waits at its advance_offset() call, which comes before its statements), brings the shadow
// exactly to the positions it read under that lock, renames the schemas and commits. The
// projector's waiting batch then runs its prepared statements, which PostgreSQL re-analyses after
// the schema rename (a pg_namespace change invalidates cached plans), so it writes into the new
// tables and goes on from exactly where the shadow stopped.
#include "tools/ctl/pg_replay.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "common/backoff.hpp"
#include "common/dead_letter.hpp"
#include "common/envelope.hpp"
#include "common/failpoint.hpp"
#include "common/kafka.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"
#include "common/shutdown.hpp"
#include "consumers/pg/mirror_projection.hpp"
#include "consumers/pg/offset_store.hpp"
#include "consumers/pg/read_db_session.hpp"
#include "consumers/pg/sql_projection.hpp"
#include "tools/ctl/command.hpp"
#include "tools/ctl/pipeline_state.hpp"

namespace syncline::ctl {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using pg_projector::OffsetAdvance;
using pg_projector::OffsetStore;
using pg_projector::mirror_sql::quote_identifier;

constexpr std::string_view kShadowSuffix = "__resync";
constexpr std::string_view kRetiredInfix = "__retired_";
constexpr std::size_t kMaxIdentifier = 63;
constexpr auto kTargetRefresh = 1s;           // how often the live group's position is re-read
constexpr auto kSwapCatchUpLimit = 10s;       // the longest the swap holds syncline.offsets locked
constexpr std::string_view kLockTimeout = "5s";  // waiting for the lock on syncline.offsets

std::shared_ptr<spdlog::logger> logger() { return log::get("ctl-replay"); }

std::string text_array(const std::vector<std::string>& items) {
  // Topic names are [A-Za-z0-9._-]: no quoting needed inside the array literal beyond the quotes.
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ',';
    out += '"' + item + '"';
  }
  return out + '}';
}

// The schema each pg projection of the config writes into (SQL projections without `schema`
// write wherever their SQL says: unknown, so not listed).
std::multimap<std::string, std::string> pg_schemas(const Config& config) {
  std::multimap<std::string, std::string> schemas;
  const auto& pg = config.pg_projector;
  if (pg.mirror && !pg.mirror->tables.empty()) schemas.emplace(pg.mirror->schema, "mirror");
  for (const auto& sql : pg.projections)
    if (!sql.schema.empty()) schemas.emplace(sql.schema, sql.name);
  return schemas;
}

const SqlProjectionConfig* sql_config(const Config& config, const std::string& name) {
  for (const auto& sql : config.pg_projector.projections)
    if (sql.name == name) return &sql;
  return nullptr;
}

bool schema_exists(pg::PgConnection& connection, const std::string& schema) {
  return connection.exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {schema}).rows() == 1;
}

void drop_schema(pg::PgConnection& connection, const std::string& schema) {
  pg::Transaction transaction(connection);
  transaction.exec("DROP SCHEMA IF EXISTS " + quote_identifier(schema) + " CASCADE");
  pg_projector::mirror_state::forget(connection, schema);
  transaction.commit();
}

// Views (or rules) outside `schema` built on its tables: dropping the schema with CASCADE would
// drop them too, so a retired schema they still use is kept.
std::vector<std::string> dependents_outside(pg::PgConnection& connection, const std::string& schema) {
  const auto rows = connection.exec(
      "SELECT DISTINCT quote_ident(vn.nspname) || '.' || quote_ident(v.relname) FROM pg_depend d "
      "JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
      "JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace "
      "JOIN pg_class t ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid "
      "JOIN pg_namespace tn ON tn.oid = t.relnamespace "
      "WHERE tn.nspname = $1 AND vn.nspname <> $1 ORDER BY 1",
      {schema});
  std::vector<std::string> names;
  for (int row = 0; row < rows.rows(); ++row) names.emplace_back(rows.value(row, 0));
  return names;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// SIGINT/SIGTERM before the swap.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown inside the swap transaction: roll it back and go on building.
class SwapAbandoned : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One run of a replay. Owned by the command's thread.
class PgReplay {
 public:
  PgReplay(const Config& config, const ProjectionInfo& info, PgReplayTarget target, const PgReplayOptions& options,
           Progress& progress)
      : config_(config),
        info_(info),
        target_(std::move(target)),
        options_(options),
        progress_(progress),
        control_(config.require_read_db().dsn),
        session_(config.require_read_db().dsn),
        live_offsets_(info.group),
        shadow_offsets_(target_.replay_group),
        backoff_(config.pg_projector.retry_max_backoff) {}

  ~PgReplay() {
    // Every message must be gone before the consumer handle: librdkafka's destroy waits for them.
    batch_.clear();
    for (auto& [partition, part] : parts_) part.held.clear();
  }
  PgReplay(const PgReplay&) = delete;
  PgReplay& operator=(const PgReplay&) = delete;

  ReplayResult run();

 private:
  using RecordKey = std::tuple<std::string, std::int32_t, std::int64_t>;
  struct Record {
    kafka::Message message;
    std::string topic;
    std::string type;
    bool wanted = false;
    std::optional<nlohmann::json> value;
  };
  struct Part {
    std::optional<std::int64_t> target;    // the live group's next_offset; nullopt: no row, not applied
    std::optional<std::int64_t> stored;    // the shadow's next_offset (G' row)
    std::optional<std::int64_t> received;  // next offset expected from Kafka; nullopt: any
    std::int64_t delivered_below = -1;     // every record below this offset has been delivered
    std::int64_t start = 0;                // where this run started, for progress
    std::deque<kafka::Message> held;       // read at or past the target: waits for the live group
    bool paused = false;
  };

  void prepare();
  void create_shadow();
  void connect_session();
  std::map<kafka::TopicPartition, std::int64_t> read_positions(pg::PgConnection& connection, const std::string& group);
  bool refresh_targets();
  void reassign();
  void route(kafka::Message message);
  void release_held();
  void to_batch(kafka::Message message);
  void apply_batch(bool inside_swap);
  std::vector<OffsetAdvance> idle_advances() const;
  void run_advances(const std::vector<OffsetAdvance>& advances, bool inside_swap);
  bool all_caught_up() const;
  void update_progress();
  void recover(const std::exception& error);
  bool try_swap();
  void sync_mirror_structure(pg::PgConnection& connection, const std::string& live);
  void retire();

  const Config& config_;
  const ProjectionInfo& info_;
  PgReplayTarget target_;
  const PgReplayOptions& options_;
  Progress& progress_;

  pg::PgConnection control_;  // advisory lock, live positions, clean-up
  pg_projector::ReadDbSession session_;  // the shadow's writes and the swap transaction
  OffsetStore live_offsets_;
  OffsetStore shadow_offsets_;
  std::unique_ptr<pg_projector::Projection> projection_;
  std::unique_ptr<kafka::AdminClient> admin_;

  std::map<kafka::TopicPartition, Part> parts_;
  std::set<kafka::TopicPartition> assigned_;
  std::vector<Record> batch_;
  Clock::time_point batch_started_{};
  std::map<RecordKey, std::string> dead_;
  std::set<RecordKey> published_;
  std::set<RecordKey> isolated_;

  Backoff backoff_;
  Clock::time_point next_refresh_{};
  std::uint64_t events_ = 0;
  bool resumed_ = false;
  std::optional<std::string> retired_;
  bool retired_dropped_ = false;

  // Last: destroyed first, while what their callbacks use still exists.
  std::unique_ptr<DeadLetterPublisher> dead_letters_;
  std::unique_ptr<kafka::Consumer> consumer_;
};

void PgReplay::prepare() {
  OffsetStore::ensure_schema(control_);
  // One replay per schema at a time; a session lock, released if this process dies.
  const auto locked = control_.exec("SELECT pg_try_advisory_lock(hashtext($1))", {"syncline.resync." + target_.schema});
  if (locked.value(0, 0) != "t") {
    throw Refused(fmt::format("another replay of schema {} is running (its advisory lock is held)", target_.schema));
  }
  // Retired schemas of earlier runs whose grace has passed.
  if (!options_.keep_old) {
    const auto retired =
        control_.exec("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY nspname",
                      {target_.schema + std::string(kRetiredInfix)});
    const auto grace = std::chrono::duration_cast<std::chrono::seconds>(options_.grace).count();
    for (int row = 0; row < retired.rows(); ++row) {
      const std::string name(retired.value(row, 0));
      const auto swapped = retired_schema_time(name, target_.schema);
      if (swapped && *swapped + grace <= unix_now()) {
        if (const auto views = dependents_outside(control_, name); !views.empty()) {
          progress_.finish(fmt::format("keeping {}: {} still use its tables (recreate them on {}, then DROP SCHEMA {} "
                                       "CASCADE)",
                                       name, fmt::join(views, ", "), target_.schema, name));
          continue;
        }
        logger()->info("dropping {}: retired by an earlier replay, its grace has passed", name);
        progress_.finish(fmt::format("dropping {} (retired by an earlier replay; grace passed)", name));
        drop_schema(control_, name);
      }
    }
  }
  const bool shadow_exists = schema_exists(control_, target_.shadow);
  const bool rows_exist =
      control_.exec("SELECT 1 FROM syncline.offsets WHERE consumer_group = $1 LIMIT 1", {target_.replay_group}).rows() >
      0;
  resumed_ = shadow_exists && rows_exist && !options_.restart;
  if (!resumed_) {
    // A shadow without rows applied nothing yet (every batch writes its rows in the same
    // transaction); rows without a shadow describe tables that are gone. Either way: start over.
    if (shadow_exists) drop_schema(control_, target_.shadow);
    control_.exec("DELETE FROM syncline.offsets WHERE consumer_group = $1", {target_.replay_group});
    pg_projector::mirror_state::forget(control_, target_.shadow);
    create_shadow();
  }
  connect_session();
}

void PgReplay::create_shadow() {
  pg::Transaction transaction(control_);
  transaction.exec("CREATE SCHEMA " + quote_identifier(target_.shadow));
  if (info_.kind == ProjectionKind::pg_mirror) {
    // A live table's column types may have been chosen by a person (numeric(10,2) rather than the
    // inferred numeric): the shadow's tables start as copies of the live ones.
    for (const auto& table : info_.tables) {
      const std::string live = quote_identifier(target_.schema) + "." + quote_identifier(table.table);
      const auto exists = transaction.exec(
          "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
          "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
          {target_.schema, table.table});
      if (exists.rows() == 0) continue;
      transaction.exec("CREATE TABLE " + quote_identifier(target_.shadow) + "." + quote_identifier(table.table) +
                       " (LIKE " + live + " INCLUDING ALL)");
    }
  }
  transaction.commit();
}

void PgReplay::connect_session() {
  session_.connect();
  session_.connection().exec("SET application_name = 'syncline-ctl resync replay'");
  projection_->reset();
  projection_->setup(session_);
}

std::map<kafka::TopicPartition, std::int64_t> PgReplay::read_positions(pg::PgConnection& connection,
                                                                      const std::string& group) {
  std::map<kafka::TopicPartition, std::int64_t> positions;
  const auto rows = connection.exec(
      "SELECT topic, partition, next_offset FROM syncline.offsets WHERE consumer_group = $1 AND topic = ANY($2::text[])",
      {group, text_array(info_.topics)});
  for (int row = 0; row < rows.rows(); ++row) {
    positions[{std::string(rows.value(row, 0)), std::stoi(std::string(rows.value(row, 1)))}] =
        std::stoll(std::string(rows.value(row, 2)));
  }
  return positions;
}

// Re-reads the live group's positions; true when the set of partitions to apply changed.
bool PgReplay::refresh_targets() {
  next_refresh_ = Clock::now() + kTargetRefresh;
  const auto live = read_positions(control_, info_.group);
  bool changed = false;
  for (auto& [partition, part] : parts_) {
    const auto it = live.find(partition);
    const std::optional<std::int64_t> target = it != live.end() ? std::optional(it->second) : std::nullopt;
    if (target.has_value() != part.target.has_value()) changed = true;
    part.target = target;
  }
  for (const auto& [partition, next] : live) {
    if (!parts_.contains(partition)) {
      parts_[partition].target = next;
      changed = true;
    }
  }
  for (const auto& [partition, part] : parts_) {
    if (part.target && part.stored && *part.stored > *part.target) {
      throw Refused(fmt::format(
          "the live group {} moved back on {}/{} (to {}, the shadow is at {}), e.g. by an offsets reset: the shadow "
          "cannot be handed over exactly; run again with --restart",
          info_.group, partition.topic, partition.partition, *part.target, *part.stored));
    }
  }
  return changed;
}

// (Re)starts reading every partition the live group has a position on, from the shadow's
// stored position (or the beginning). Drops what was read but not applied.
void PgReplay::reassign() {
  const auto stored = read_positions(session_.connection(), target_.replay_group);
  batch_.clear();
  dead_.clear();
  published_.clear();
  isolated_.clear();
  std::vector<kafka::TopicPartitionOffset> starts;
  assigned_.clear();
  for (auto& [partition, part] : parts_) {
    part.held.clear();
    part.paused = false;
    const auto it = stored.find(partition);
    part.stored = it != stored.end() ? std::optional(it->second) : std::nullopt;
    part.received = part.stored;
    part.delivered_below = part.stored.value_or(-1);
    if (!part.target) continue;
    if (!part.stored) {
      try {
        part.start = admin_->watermark_offsets(partition.topic, partition.partition, 10s).low;
      } catch (const std::exception&) {
        part.start = 0;  // only the progress estimate suffers
      }
    } else if (part.start == 0) {
      part.start = *part.stored;
    }
    assigned_.insert(partition);
    starts.push_back({partition.topic, partition.partition, part.stored.value_or(RD_KAFKA_OFFSET_BEGINNING)});
  }
  consumer_->assign(starts);
}

void PgReplay::route(kafka::Message message) {
  const kafka::TopicPartition partition{message.topic(), message.partition()};
  const auto it = parts_.find(partition);
  if (it == parts_.end() || !assigned_.contains(partition)) return;
  Part& part = it->second;
  if (!message.ok()) {
    // The end of the partition (for read_committed: the last stable offset): every record below it
    // was delivered, transaction markers included.
    if (message.error() == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (!part.received || message.offset() >= *part.received)
        part.delivered_below = std::max(part.delivered_below, message.offset());
    } else {
      logger()->warn("{}/{}: {}", partition.topic, partition.partition, message.error_message());
    }
    return;
  }
  if (part.received && message.offset() < *part.received) return;  // never twice
  part.received = message.offset() + 1;
  part.delivered_below = std::max(part.delivered_below, message.offset());
  if (part.target && message.offset() < *part.target && part.held.empty()) {
    to_batch(std::move(message));
    return;
  }
  // Past what the live group applied: wait for it (bounded: the partition is paused).
  part.held.push_back(std::move(message));
  if (!part.paused) {
    consumer_->pause({partition});
    part.paused = true;
  }
}

void PgReplay::release_held() {
  for (auto& [partition, part] : parts_) {
    while (!part.held.empty() && part.target && part.held.front().offset() < *part.target) {
      to_batch(std::move(part.held.front()));
      part.held.pop_front();
    }
    if (part.held.empty() && part.paused) {
      consumer_->resume({partition});
      part.paused = false;
    }
  }
}

void PgReplay::to_batch(kafka::Message message) {
  if (batch_.empty()) batch_started_ = Clock::now();
  Record record{std::move(message), {}, {}, false, std::nullopt};
  record.topic = record.message.topic();
  record.type = record.message.header(kafka_header::event_type).value_or("");
  record.wanted = projection_->wants(record.topic, record.type);
  if (record.wanted) {
    try {
      auto value = nlohmann::json::parse(record.message.value());
      if (!value.is_object()) throw std::invalid_argument("it is JSON but not an object");
      record.value = std::move(value);
    } catch (const std::exception& error) {
      dead_[{record.topic, record.message.partition(), record.message.offset()}] =
          std::string("value is not a JSON envelope: ") + error.what();
    }
  }
  batch_.push_back(std::move(record));
}

namespace {

class CollectingSink : public pg_projector::PlanSink {
 public:
  void add(pg_projector::Statement statement) override { statements.push_back(std::move(statement)); }
  void reject(std::size_t event_index, std::string reason) override {
    rejected.emplace_back(event_index, std::move(reason));
  }
  void skip(std::size_t /*event_index*/) override {}

  std::vector<pg_projector::Statement> statements;
  std::vector<std::pair<std::size_t, std::string>> rejected;
};

}  // namespace

// Applies the batch and advances the shadow's rows in one transaction (or, inside the swap, in
// the swap's transaction), dead-lettering what can never apply, as the projector does.
void PgReplay::apply_batch(bool inside_swap) {
  while (!batch_.empty()) {
    std::vector<RecordKey> keys;
    keys.reserve(batch_.size());
    for (const auto& record : batch_) keys.emplace_back(record.topic, record.message.partition(), record.message.offset());

    std::vector<pg_projector::Event> events;
    std::unordered_set<std::size_t> isolated;
    for (std::size_t i = 0; i < batch_.size(); ++i) {
      const Record& record = batch_[i];
      if (!record.wanted || !record.value || dead_.contains(keys[i])) continue;
      if (isolated_.contains(keys[i])) isolated.insert(i);
      events.push_back({i, record.topic, record.message.partition(), record.message.offset(), record.message.key(),
                        record.type, &*record.value});
    }
    CollectingSink sink;
    if (!events.empty()) {
      std::vector<const pg_projector::Event*> pointers;
      for (const auto& event : events) pointers.push_back(&event);
      projection_->plan(pointers, isolated, session_, sink);
    }
    for (auto& [index, reason] : sink.rejected) dead_[keys[index]] = std::move(reason);

    // Dead letters are durable before the offsets that pass them are.
    bool sent = false;
    for (const auto& [key, reason] : dead_) {
      if (published_.contains(key)) continue;
      const auto it = std::find(keys.begin(), keys.end(), key);
      if (it == keys.end()) continue;
      const Record& record = batch_[static_cast<std::size_t>(it - keys.begin())];
      if (!dead_letters_) {
        dead_letters_ = std::make_unique<DeadLetterPublisher>(config_.kafka, config_.pg_projector.dead_letter_topic,
                                                              "ctl-resync-replay");
      }
      const auto message_key = record.message.key();
      dead_letters_->publish({record.topic, record.message.partition(), record.message.offset(),
                              message_key ? std::optional<std::string>(*message_key) : std::nullopt,
                              std::string(record.message.value()), record.message.headers(), info_.name, reason});
      published_.insert(key);
      sent = true;
    }
    if (sent) dead_letters_->flush(30s);

    std::map<kafka::TopicPartition, std::pair<std::int64_t, const nlohmann::json*>> next;
    for (const auto& record : batch_) {
      auto& entry = next[{record.topic, record.message.partition()}];
      entry.first = record.message.offset() + 1;
      if (record.value) entry.second = &*record.value;
    }
    std::vector<OffsetAdvance> advances;
    for (const auto& [partition, entry] : next) {
      OffsetAdvance advance{partition, parts_[partition].stored, entry.first, std::nullopt, std::nullopt, std::nullopt};
      if (entry.second != nullptr) advance.record_source(*entry.second);
      advances.push_back(std::move(advance));
    }

    const std::string advance_name = session_.statement_name(OffsetStore::advance_sql());
    std::vector<const std::string*> names;
    for (const auto& statement : sink.statements) names.push_back(&session_.statement_name(*statement.sql));
    pg::PgConnection& connection = session_.connection();
    std::optional<pg::Pipeline::Failure> failure;
    std::size_t first_statement = 0;
    {
      pg::Pipeline pipeline(connection);
      if (!inside_swap) pipeline.send("BEGIN");
      for (const auto& advance : advances) pipeline.send_prepared(advance_name, shadow_offsets_.advance_params(advance));
      first_statement = pipeline.sent();
      for (std::size_t k = 0; k < sink.statements.size(); ++k) pipeline.send_prepared(*names[k], sink.statements[k].params);
      if (!inside_swap) pipeline.send("COMMIT");
      failure = pipeline.sync();
    }
    if (!failure) {
      for (const auto& advance : advances) {
        parts_[advance.partition].stored = advance.next_offset;
      }
      events_ += batch_.size();
      batch_.clear();
      dead_.clear();
      published_.clear();
      isolated_.clear();
      return;
    }
    projection_->reset();
    if (inside_swap) throw SwapAbandoned(std::string("applying inside the swap failed: ") + failure->error.what());
    if (PQtransactionStatus(connection.raw()) != PQTRANS_IDLE) connection.exec("ROLLBACK");
    const std::size_t at = failure->index;
    const pg::PgError& error = failure->error;
    if (at < first_statement || at >= first_statement + sink.statements.size() ||
        error.error_class() != pg::ErrorClass::permanent) {
      throw error;  // transient, or the shadow's own offsets: recovered by the caller
    }
    const auto& statement = sink.statements[at - first_statement];
    if (statement.events.size() == 1) {
      dead_[keys[statement.events.front()]] = "projection " + info_.name + ": " + error.what();
    } else {
      for (const std::size_t index : statement.events) isolated_.insert(keys[index]);
    }
  }
}

// Partitions whose every record below the target was applied, but whose stored position is
// short of it (transaction markers, or records another projection's topic filter skipped).
std::vector<OffsetAdvance> PgReplay::idle_advances() const {
  std::vector<OffsetAdvance> advances;
  if (!batch_.empty()) return advances;
  for (const auto& partition : assigned_) {
    const Part& part = parts_.at(partition);
    if (!part.target || (part.stored && *part.stored >= *part.target)) continue;
    if (part.delivered_below < *part.target && part.received.value_or(-1) < *part.target) continue;
    if (!part.held.empty() && part.held.front().offset() < *part.target) continue;
    advances.push_back({partition, part.stored, *part.target, std::nullopt, std::nullopt, std::nullopt});
  }
  return advances;
}

void PgReplay::run_advances(const std::vector<OffsetAdvance>& advances, bool inside_swap) {
  if (advances.empty()) return;
  pg::PgConnection& connection = session_.connection();
  if (inside_swap) {
    for (const auto& advance : advances) connection.exec(OffsetStore::advance_sql(), shadow_offsets_.advance_params(advance));
  } else {
    pg::Transaction transaction(connection);
    for (const auto& advance : advances)
      transaction.exec(OffsetStore::advance_sql(), shadow_offsets_.advance_params(advance));
    transaction.commit();
  }
  for (const auto& advance : advances) parts_[advance.partition].stored = advance.next_offset;
}

bool PgReplay::all_caught_up() const {
  if (!batch_.empty()) return false;
  for (const auto& [partition, part] : parts_) {
    if (part.target && part.stored != part.target) return false;
  }
  return true;
}

void PgReplay::update_progress() {
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  for (const auto& [partition, part] : parts_) {
    if (!part.target) continue;
    const std::int64_t from = std::min(part.start, *part.target);
    total += static_cast<std::uint64_t>(*part.target - from);
    done += static_cast<std::uint64_t>(std::clamp(part.stored.value_or(from), from, *part.target) - from);
  }
  progress_.update(done, total);
}

// After a failure outside the swap: a new connection, the shadow's positions as stored (a
// COMMIT whose answer was lost may or may not have happened), and reading again from there.
void PgReplay::recover(const std::exception& error) {
  const auto delay = backoff_.next();
  logger()->warn("replay: {}; retrying in {} ms", error.what(), delay.count());
  progress_.finish(fmt::format("retrying in {} ms: {}", delay.count(), error.what()));
  if (shutdown::wait_for(delay)) return;
  session_.disconnect();
  connect_session();
  reassign();
}

// The swap transaction. True when the swap is committed; false to go on building and try again.
bool PgReplay::try_swap() {
  failpoint::hit("ctl.replay_before_swap");
  pg::PgConnection& connection = session_.connection();
  const std::string& live = target_.schema;
  const std::uint64_t events_before = events_;  // what the transaction applies counts only if it commits
  try {
    connection.exec("BEGIN");
    connection.exec(fmt::format("SET LOCAL lock_timeout = '{}'", kLockTimeout));
    // Blocks every writer of syncline.offsets (readers go on): the live projector's next batch
    // waits at its first statement, advance_offset(), before it touches a read-model table. Also
    // covers a live batch inserting the first row of a partition, which row locks could not.
    connection.exec("LOCK TABLE syncline.offsets IN SHARE ROW EXCLUSIVE MODE");
    const auto positions = read_positions(connection, info_.group);
    bool changed = false;
    for (auto& [partition, part] : parts_) {
      const auto it = positions.find(partition);
      const std::optional<std::int64_t> target = it != positions.end() ? std::optional(it->second) : std::nullopt;
      if (target.has_value() != part.target.has_value()) changed = true;
      part.target = target;
    }
    for (const auto& [partition, next] : positions) {
      if (!parts_.contains(partition)) {
        parts_[partition].target = next;
        changed = true;
      }
    }
    if (changed) throw SwapAbandoned("the live group started reading another partition");
    // Bring the shadow exactly to the positions just read, inside this transaction.
    const auto deadline = Clock::now() + kSwapCatchUpLimit;
    for (;;) {
      release_held();
      apply_batch(true);
      run_advances(idle_advances(), true);
      if (all_caught_up()) break;
      if (Clock::now() > deadline) throw SwapAbandoned("the shadow did not reach the live position in time");
      if (shutdown::requested()) throw SwapAbandoned("interrupted");
      if (auto message = consumer_->poll(20ms)) route(std::move(*message));
    }
    // The shadow's rows must say what this process believes (a second writer would show here).
    const auto stored = read_positions(connection, target_.replay_group);
    for (const auto& [partition, part] : parts_) {
      if (!part.target) continue;
      const auto it = stored.find(partition);
      if (it == stored.end() || it->second != *part.target) {
        throw std::runtime_error(fmt::format("the shadow's stored position on {}/{} is not the live one ({})",
                                             partition.topic, partition.partition, *part.target));
      }
    }
    const bool live_exists = schema_exists(connection, live);
    if (live_exists && info_.kind == ProjectionKind::pg_mirror) sync_mirror_structure(connection, live);
    std::optional<std::string> retired;
    if (live_exists) {
      // Unique even when a kept retired schema of the same second exists.
      for (std::int64_t at = unix_now(); !retired || schema_exists(connection, *retired); ++at)
        retired = retired_schema_name(live, at);
      connection.exec("ALTER SCHEMA " + quote_identifier(live) + " RENAME TO " + quote_identifier(*retired));
    }
    connection.exec("ALTER SCHEMA " + quote_identifier(target_.shadow) + " RENAME TO " + quote_identifier(live));
    if (info_.kind == ProjectionKind::pg_mirror) {
      // Tombstones and truncate floors follow their tables.
      if (retired) pg_projector::mirror_state::move(connection, live, *retired);
      pg_projector::mirror_state::move(connection, target_.shadow, live);
    }
    connection.exec("DELETE FROM syncline.offsets WHERE consumer_group = $1", {target_.replay_group});
    connection.exec("COMMIT");
    retired_ = retired;
    return true;
  } catch (const SwapAbandoned& error) {
    logger()->info("swap postponed: {}", error.what());
  } catch (const pg::PgError& error) {
    // Lock timeout or deadlock with a live batch (retriable), or a lost connection: the next
    // attempt will do. Anything else is a fault to report.
    if (error.error_class() == pg::ErrorClass::permanent) throw;
    logger()->info("swap postponed: {}", error.what());
    if (!connection.is_open() || error.in_doubt()) {
      session_.disconnect();
      // A COMMIT whose answer was lost: the shadow schema is gone exactly when the swap happened.
      events_ = events_before;
      if (!schema_exists(control_, target_.shadow)) {
        const auto newest = control_.exec(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY nspname DESC LIMIT 1",
            {live + std::string(kRetiredInfix)});
        if (newest.rows() == 1) retired_ = std::string(newest.value(0, 0));
        return true;
      }
      connect_session();
      reassign();
      return false;
    }
  }
  // What this transaction applied is gone with it: continue from the stored positions.
  events_ = events_before;
  if (PQtransactionStatus(connection.raw()) != PQTRANS_IDLE) connection.exec("ROLLBACK");
  projection_->reset();
  reassign();
  return false;
}

// A live batch may have widened a live mirror table (or created one) after the shadow copied
// it: the shadow gets the same columns and tables before it becomes live, so the projector's
// cached statements find them. The SHARE locks keep the live tables' columns still until commit.
void PgReplay::sync_mirror_structure(pg::PgConnection& connection, const std::string& live) {
  for (const auto& table : info_.tables) {
    const std::string live_table = quote_identifier(live) + "." + quote_identifier(table.table);
    const std::string shadow_table = quote_identifier(target_.shadow) + "." + quote_identifier(table.table);
    const auto exists = connection.exec(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
        {live, table.table});
    if (exists.rows() == 0) continue;
    connection.exec("LOCK TABLE " + live_table + " IN SHARE MODE");
    if (connection.exec("SELECT to_regclass($1)", {shadow_table}).is_null(0, 0)) {
      connection.exec("CREATE TABLE " + shadow_table + " (LIKE " + live_table + " INCLUDING ALL)");
      continue;
    }
    const auto missing = connection.exec(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND NOT EXISTS ("
        "SELECT 1 FROM pg_attribute b WHERE b.attrelid = $2::regclass AND b.attname = a.attname "
        "AND NOT b.attisdropped) ORDER BY a.attnum",
        {live_table, shadow_table});
    for (int row = 0; row < missing.rows(); ++row) {
      connection.exec(fmt::format("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}", shadow_table,
                                  quote_identifier(missing.value(row, 0)), missing.value(row, 1)));
    }
  }
}

void PgReplay::retire() {
  if (!retired_ || options_.keep_old) return;
  if (options_.grace.count() > 0) {
    progress_.finish(fmt::format("waiting {} s before dropping {} (interrupting leaves it to a later run)",
                                 std::chrono::duration_cast<std::chrono::seconds>(options_.grace).count(), *retired_));
    if (shutdown::wait_for(options_.grace)) return;
  }
  if (const auto views = dependents_outside(control_, *retired_); !views.empty()) {
    progress_.finish(fmt::format("keeping {}: {} still use its tables (recreate them on {}, then DROP SCHEMA {} CASCADE)",
                                 *retired_, fmt::join(views, ", "), target_.schema, *retired_));
    return;
  }
  drop_schema(control_, *retired_);
  retired_dropped_ = true;
}

ReplayResult PgReplay::run() {
  const auto started = Clock::now();
  if (info_.kind == ProjectionKind::pg_mirror) {
    MirrorConfig mirror = *config_.pg_projector.mirror;
    mirror.schema = target_.shadow;
    projection_ = std::make_unique<pg_projector::MirrorProjection>(mirror, config_.kafka.topic_prefix,
                                                                   target_.replay_group);
  } else {
    SqlProjectionConfig sql = *sql_config(config_, info_.name);
    sql.schema = target_.shadow;
    projection_ = std::make_unique<pg_projector::SqlProjection>(std::move(sql));
  }
  admin_ = std::make_unique<kafka::AdminClient>(admin_properties(config_.kafka));
  prepare();
  progress_.finish(resumed_ ? fmt::format("resuming the shadow schema {} of an interrupted replay", target_.shadow)
                            : fmt::format("building the shadow schema {}", target_.shadow));

  consumer_ = std::make_unique<kafka::Consumer>(reader_properties(config_.kafka, target_.replay_group));
  refresh_targets();
  reassign();

  bool swapped = false;
  while (!swapped) {
    if (shutdown::requested()) {
      throw Interrupted(fmt::format(
          "interrupted before the swap: the live projection is untouched; the shadow {} keeps its progress: run the "
          "same command again to resume (or with --restart to start over)",
          target_.shadow));
    }
    try {
      if (Clock::now() >= next_refresh_ && refresh_targets()) reassign();
      release_held();
      if (auto message = consumer_->poll(batch_.empty() ? 100ms : 5ms)) route(std::move(*message));
      const bool full = batch_.size() >= config_.pg_projector.batch_max_events;
      const bool due = !batch_.empty() && Clock::now() - batch_started_ >= config_.pg_projector.batch_max;
      if (full || due) apply_batch(false);
      run_advances(idle_advances(), false);
      backoff_.reset();
      update_progress();
      // Caught up with the last position read: the swap reads the live one under its lock and
      // applies the little the live projector did since.
      if (all_caught_up()) swapped = try_swap();
    } catch (const Refused&) {
      throw;
    } catch (const kafka::FatalKafkaError&) {
      throw;
    } catch (const pg::PgError& error) {
      if (error.error_class() == pg::ErrorClass::permanent) throw;
      recover(error);
    } catch (const kafka::KafkaError& error) {
      recover(error);
    }
  }
  update_progress();
  progress_.finish(fmt::format("swapped: {} now holds the rebuilt projection{}", target_.schema,
                               retired_ ? fmt::format("; the old one is {}", *retired_) : std::string()));
  batch_.clear();
  for (auto& [partition, part] : parts_) part.held.clear();
  consumer_->close(10s);
  retire();

  ReplayResult result;
  result.projection = info_.name;
  result.sink = "pg";
  result.old_target = retired_;
  result.new_target = target_.schema;
  result.old_dropped = retired_dropped_;
  result.events = events_;
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.resumed = resumed_;
  return result;
}

}  // namespace

std::string shadow_schema_name(std::string_view schema) { return std::string(schema) + std::string(kShadowSuffix); }

std::string retired_schema_name(std::string_view schema, std::int64_t unix_seconds) {
  return fmt::format("{}{}{}", schema, kRetiredInfix, unix_seconds);
}

std::optional<std::int64_t> retired_schema_time(std::string_view name, std::string_view schema) {
  const std::string prefix = std::string(schema) + std::string(kRetiredInfix);
  if (!name.starts_with(prefix) || name.size() == prefix.size() || name.size() - prefix.size() > 18) return std::nullopt;
  std::int64_t value = 0;
  for (const char c : name.substr(prefix.size())) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

std::string replay_group_name(std::string_view live_group, std::string_view projection) {
  return fmt::format("{}.resync.{}", live_group, projection);
}

PgReplayTarget pg_replay_target(const Config& config, const ProjectionInfo& projection) {
  if (projection.sink != Sink::pg) throw Refused(fmt::format("projection {} is not a read-PostgreSQL one", projection.name));
  std::string schema;
  if (projection.kind == ProjectionKind::pg_mirror) {
    schema = config.pg_projector.mirror->schema;
  } else {
    const SqlProjectionConfig* sql = sql_config(config, projection.name);
    if (sql == nullptr) throw Refused(fmt::format("no SQL projection {} in the config", projection.name));
    if (sql->schema.empty()) {
      throw Refused(fmt::format(
          "SQL projection {} has no 'schema' key: a replay rebuilds a projection in a shadow schema and swaps the two "
          "by renaming them, so the projection must write into a schema of its own; add `schema: NAME` and write "
          "{{{{schema}}}} in its setup and SQL where the schema name goes",
          projection.name));
    }
    if (!pg_projector::uses_schema_placeholder(*sql)) {
      throw Refused(fmt::format(
          "SQL projection {} does not write {{{{schema}}}} in its setup or SQL: the replay could not compile it against "
          "the shadow schema; write {{{{schema}}}} where its SQL names schema {}",
          projection.name, sql->schema));
    }
    schema = sql->schema;
  }
  if (schema == "public") {
    throw Refused(fmt::format("projection {} writes into schema public, which a replay cannot swap by renaming; give it "
                              "a schema of its own",
                              projection.name));
  }
  const auto owners = pg_schemas(config);
  if (owners.count(schema) > 1) {
    std::vector<std::string> names;
    for (auto [it, end] = owners.equal_range(schema); it != end; ++it) names.push_back(it->second);
    throw Refused(fmt::format("schema {} is written by several projections ({}): a replay swaps a whole schema, so each "
                              "replayed schema must belong to one projection only",
                              schema, fmt::join(names, ", ")));
  }
  PgReplayTarget target{schema, shadow_schema_name(schema), replay_group_name(projection.group, projection.name)};
  if (retired_schema_name(schema, 0).size() + 10 > kMaxIdentifier) {
    throw Refused(fmt::format("schema name {} is too long for a replay: {} must fit in {} characters", schema,
                              retired_schema_name(schema, unix_now()), kMaxIdentifier));
  }
  return target;
}

int run_pg_replay(const Config& config, const ProjectionInfo& projection, const PgReplayOptions& options,
                  Progress& progress) {
  PgReplay replay(config, projection, pg_replay_target(config, projection), options, progress);
  try {
    const ReplayResult result = replay.run();
    print_replay_result(result, options.json);
    return kExitOk;
  } catch (const Interrupted& interrupted) {
    progress.finish("");
    std::fprintf(stderr, "syncline-ctl: %s\n", interrupted.what());
    if (options.json) {
      std::printf("%s\n", nlohmann::json{{"projection", projection.name},
                                          {"sink", "pg"},
                                          {"interrupted", true},
                                          {"shadow", shadow_schema_name(pg_replay_target(config, projection).schema)}}
                               .dump()
                               .c_str());
    }
    return kExitProblem;
  }
}

}  // namespace syncline::ctl
