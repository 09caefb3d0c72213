// EventRouter: turns each decoded change into the Kafka records of DESIGN.md "Events" — domain events
// (outbox rows, logical messages), row changes of captured tables, and dead letters for bad input.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/envelope.hpp"
#include "producer/source_change.hpp"
#include "producer/table_keys.hpp"

namespace syncline::producer {

struct RouterOptions {
  std::string topic_prefix = "syncline";
  std::string source_db = "write";  // source.db of every envelope
  std::uint32_t epoch = 0;          // source.epoch of every envelope (the stored position's)
  std::string outbox_schema = "public";
  std::string outbox_table = "outbox";
  std::string message_prefix = "syncline";              // logical messages that are domain events
  std::string heartbeat_prefix = "syncline-heartbeat";  // logical messages that only move the slot
  std::vector<std::pair<std::string, std::string>> captured_tables;  // (schema, table)
  // The captured tables' primary keys (read_primary_keys at start-up). pgoutput's key flags cannot
  // tell them for REPLICA IDENTITY FULL (every column flagged) or NOTHING (none): those tables are
  // keyed by this primary key, and are keyless without one. A table missing here counts as keyless
  // there, and plan_topics compacts only the topics of tables listed with a primary key.
  PrimaryKeys primary_keys;
  // Set below the broker's message.max.bytes: the key, headers and batch framing need room too.
  std::size_t max_message_bytes = 1000000;
  std::size_t dead_letter_value_limit = 100000;  // original bytes beyond this are cut off
};

// Why an input became a dead letter, one class per metric label.
enum class DeadLetterReason {
  not_json,       // message content, or an outbox payload/headers value, is not valid JSON
  missing_field,  // a required field is missing, null or empty
  invalid_field,  // a field has the wrong type or form (id not a UUID, occurred_at not ISO-8601 UTC)
  value_mapping,  // a column value does not parse as its PostgreSQL type (ValueMappingError)
  oversized,      // the encoded envelope is larger than max_message_bytes
  unencodable,    // the envelope or its key cannot be encoded (invalid UTF-8, key column missing)
};
inline constexpr std::size_t kDeadLetterReasonCount = 6;

std::string_view to_string(DeadLetterReason reason);

// Headers of a dead-letter record; the value is the original bytes, cut to dead_letter_value_limit.
namespace dlq_header {
inline constexpr std::string_view reason = "syncline-dlq-reason";  // a sentence naming the field/problem
inline constexpr std::string_view reason_class = "syncline-dlq-reason-class";  // to_string(DeadLetterReason)
inline constexpr std::string_view source_lsn = "syncline-dlq-source-lsn";      // of the change itself
inline constexpr std::string_view commit_lsn = "syncline-commit-lsn";          // as on every event
inline constexpr std::string_view seq = "syncline-dlq-seq";
inline constexpr std::string_view table = "syncline-dlq-table";  // "schema.table", for row-based input
inline constexpr std::string_view message_prefix = "syncline-dlq-message-prefix";  // for logical messages
inline constexpr std::string_view original_size = "syncline-dlq-original-size";    // bytes before the cut
inline constexpr std::string_view truncated = "syncline-dlq-truncated";            // "true" or "false"
}  // namespace dlq_header

// What the router made of the changes it saw; the producer exports these as metrics.
struct RouterCounters {
  std::uint64_t outbox_events = 0;
  std::uint64_t message_events = 0;
  std::uint64_t row_change_events = 0;       // one per truncated captured table for a truncate
  std::uint64_t heartbeats = 0;              // heartbeat messages, consumed without a record
  std::uint64_t ignored_outbox_changes = 0;  // updates, deletes and truncates of the outbox
  std::uint64_t ignored_messages = 0;        // logical messages with a prefix that is not ours
  std::uint64_t ignored_table_changes = 0;   // changes of tables neither captured nor the outbox
  std::array<std::uint64_t, kDeadLetterReasonCount> dead_letters{};

  std::uint64_t dead_letters_for(DeadLetterReason reason) const {
    return dead_letters[static_cast<std::size_t>(reason)];
  }
  std::uint64_t dead_letters_total() const;
};

// Reads the current values of columns a change left out (unchanged TOASTed values) from the write
// database, for an update that moved a row to another key: its create for the new key must carry the
// whole row, since no sink holds a row under that key to keep the values of. Values are PostgreSQL's
// text forms as the stream sends them, or nullopt for NULL.
class ToastFetcher {
 public:
  virtual ~ToastFetcher() = default;
  // The row of `relation` whose key columns hold `key` (text forms, in `key_columns` order), read
  // with a snapshot that sees transaction `xid` (the change's own; 0: none to wait for): `columns`'
  // values in that order, or nullopt when no such row exists any more. A commit reaches the stream
  // as soon as its WAL is flushed, which can be before other sessions see it (a synchronous standby
  // holds it there for as long as it takes to answer), so the read waits until `xid` is visible:
  // only then does "no row" mean that a later transaction deleted the row or moved it again, whose
  // change follows in the stream. Throws pg::PgError when the database fails, and another
  // std::exception when a stop was requested while waiting (the caller retries the session).
  virtual std::optional<std::vector<std::optional<std::string>>> fetch(
      const RelationInfo& relation, const std::vector<std::string>& key_columns,
      const std::vector<std::string>& key, const std::vector<std::string>& columns, Xid xid) = 0;
};

// Pure: no I/O but warning logs (and the ToastFetcher, when one is set), so every rule is unit-tested with hand-built changes. Owned by the
// producer's pipeline thread; not thread-safe. route() throws only for a caller's contract
// violation (std::invalid_argument: no transaction or relation where one is required); bad input
// becomes a dead-letter record instead, so the pipeline continues and nothing is lost silently.
class EventRouter {
 public:
  explicit EventRouter(RouterOptions options);

  // The records for one change, in the order they must be published: none (ignored or consumed),
  // one, two for an update that changes the row's key (a delete for the old key, then a create for
  // the new one), or one per truncated captured table.
  std::vector<OutgoingRecord> route(const SourceChange& change);

  const RouterCounters& counters() const { return counters_; }
  // Without one, a key change keeps its unchanged TOASTed columns in source.unchanged_toast.
  void set_toast_fetcher(ToastFetcher* fetcher) { toast_fetcher_ = fetcher; }
  // The columns of a captured table's row-change key (the Kafka key's fields); empty for a keyless
  // table. For tools that must name rows as the router keys them (syncline-ctl resync snapshot).
  std::vector<std::string> row_key_columns(const RelationInfo& relation) const {
    return key_columns_of(relation);
  }
  const RouterOptions& options() const { return options_; }

  // The aggregate types whose domain-event topic route() used for the first time since the last
  // call (one per topic name). The caller ensures those topics (topic_plan's domain_event_topic)
  // before it produces the records; if that fails it must not publish them, and a restarted
  // producer reports the types again because the router starts empty.
  std::vector<std::string> take_new_aggregate_types();

 private:
  std::vector<OutgoingRecord> route_outbox_row(const SourceChange& change);
  std::vector<OutgoingRecord> route_message(const SourceChange& change);
  std::vector<OutgoingRecord> route_row_change(const SourceChange& change);
  std::vector<OutgoingRecord> route_truncate(const SourceChange& change);
  // For the create of a key change: the values source.unchanged_toast names, from the old row when
  // PostgreSQL sent it whole, else read by the ToastFetcher.
  void fill_unchanged_toast(const SourceChange& change, const std::vector<std::string>& key_columns,
                            Envelope& envelope);
  // The domain event's record (Envelope or EnvelopeText); remembers its topic for
  // take_new_aggregate_types(). Defined and used in event_router.cpp only.
  template <typename DomainEvent>
  OutgoingRecord domain_event_record(const DomainEvent& envelope, std::uint64_t& counter);

  bool is_outbox(const RelationInfo& relation) const;
  bool is_captured(const RelationInfo& relation) const;
  // The columns of the row-change key; empty: the table is keyless and its records have no key.
  std::vector<std::string> key_columns_of(const RelationInfo& relation) const;

  RouterOptions options_;
  std::set<std::pair<std::string, std::string>> captured_;
  std::set<std::string> event_topics_seen_;
  // An aggregate type's topic name, computed once; `published` once an event of that type was.
  struct EventTopic {
    std::string name;
    bool published = false;
  };
  std::map<std::string, EventTopic, std::less<>> event_topics_;
  std::vector<std::string> new_aggregate_types_;
  RouterCounters counters_;
  ToastFetcher* toast_fetcher_ = nullptr;
};

}  // namespace syncline::producer
