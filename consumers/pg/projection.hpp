// Projection: what turns consumed events into SQL statements for the read database. The service
// (projector_service.hpp) owns batching, transactions, offsets, retries and dead letters; a
// projection only says which events it wants and which statements apply them.
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/pg.hpp"

namespace syncline::pg_projector {

// One consumed Kafka record, as projections see it. Views into the batch: valid during plan().
struct Event {
  std::size_t index = 0;  // position in the batch; how statements and rejections name the event
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string_view> key;  // the Kafka key (a row change's canonical JSON primary key)
  std::string_view type;                // the syncline-event-type header ("" when absent)
  const nlohmann::json* value = nullptr;  // the parsed envelope; never null in plan()
};

// A statement to run inside the batch transaction. `sql` is owned by the projection and must stay
// valid (and unchanged) for the projection's lifetime: the executor prepares each distinct text
// once per connection and keys its cache by the text.
struct Statement {
  const std::string* sql = nullptr;
  std::vector<pg::Param> params;    // text format; nullopt is NULL
  std::vector<std::size_t> events;  // the batch indexes of the events it applies (at least one)
};

// What plan() reports back: statements in the order they must run, plus events it refuses.
class PlanSink {
 public:
  virtual ~PlanSink() = default;
  virtual void add(Statement statement) = 0;
  // The event can never be applied (missing JSON path, type mismatch, malformed row change): the
  // service dead-letters it with `reason`. No statement may cover a rejected event.
  virtual void reject(std::size_t event_index, std::string reason) = 0;
  // The projection wants the topic but nothing is to be done for this event (e.g. an update of
  // an append-only table); counted as skipped, not applied.
  virtual void skip(std::size_t event_index) = 0;
};

// The read-database session a projection plans against. No transaction is open during plan():
// what a projection runs on connection() (DDL: CREATE TABLE / ADD COLUMN IF NOT EXISTS) is
// committed at once and must be idempotent.
class Session {
 public:
  virtual ~Session() = default;
  virtual pg::PgConnection& connection() = 0;
  // The parameter types PostgreSQL inferred for `sql` (prepared on this connection, cached).
  // Throws pg::PgError when the statement does not prepare (a syntax error is permanent).
  virtual const std::vector<Oid>& parameter_types(const std::string& sql) = 0;
};

// Not thread-safe: owned and called by the service's single consumer thread.
class Projection {
 public:
  virtual ~Projection() = default;

  // The name in metrics, /status and logs ("mirror", or the configured projection name).
  virtual const std::string& name() const = 0;
  // Full Kafka topic names the projection reads.
  virtual const std::vector<std::string>& topics() const = 0;
  // Cheap filter from the record's topic and type header, before the value is parsed.
  virtual bool wants(std::string_view topic, std::string_view type) const = 0;

  // Called after every (re)connect, before the first plan(): idempotent set-up (schemas, tables,
  // the configured setup SQL). Throws pg::PgError; the service retries retriable ones.
  virtual void setup(Session& session) = 0;

  // Adds to `sink` the statements that apply `events` (those it wants, in batch order; per key in
  // commit order). Events whose index is in `isolated` must each get statements of their own:
  // a statement covering several events failed, and the service is finding the one at fault.
  // Throws pg::PgError only for a database failure during its own DDL/catalog reads.
  virtual void plan(std::span<const Event* const> events, const std::unordered_set<std::size_t>& isolated,
                    Session& session, PlanSink& sink) = 0;

  // The batch transaction was rolled back: forget anything cached about the database that the
  // failure might have invalidated (column lists, table existence).
  virtual void reset() = 0;
};

}  // namespace syncline::pg_projector
