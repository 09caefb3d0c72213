// SlotManager: the publication and replication slot the producer streams from, checked and managed
// over an ordinary SQL connection to the write database.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/lsn.hpp"
#include "common/pg.hpp"

namespace syncline::producer {

// A captured table of the write database.
struct TableName {
  std::string schema;
  std::string table;
  std::string to_string() const { return schema + "." + table; }  // for messages, not SQL
  friend auto operator<=>(const TableName&, const TableName&) = default;
};

// `name` as a double-quoted SQL identifier ("my""table"), safe to splice into any statement.
std::string quote_identifier(std::string_view name);
// `text` as a single-quoted literal ('it''s'). Backslashes stay as they are, which is right for
// SQL with standard_conforming_strings (the default) and for the replication command grammar.
std::string quote_literal(std::string_view text);
// "schema"."table"
std::string quote_table(const TableName& table);

struct SlotState {
  bool exists = false;
  std::string slot_type;  // "logical" or "physical"
  std::string plugin;     // empty for a physical slot
  std::string database;   // empty for a physical slot
  bool active = false;
  std::optional<int> active_pid;
  Lsn restart_lsn;                   // the oldest WAL the slot keeps
  Lsn confirmed_flush_lsn;           // what the consumer confirmed; streaming resumes after it
  std::uint64_t retained_bytes = 0;  // pg_current_wal_lsn() - restart_lsn: WAL pinned on disk
  std::string wal_status;            // "reserved", "extended", "unreserved" or "lost" (the slot is unusable)
};

// Why `state` cannot serve a pgoutput stream of `database`, or nullopt when it can (or does not
// exist yet). Pure, so the rules are easy to read and to test.
std::optional<std::string> slot_problem(const SlotState& state, std::string_view slot_name,
                                        std::string_view database);

// Uses a non-replication connection it does not own; one thread at a time, like the connection.
// Errors are pg::PgError: configuration mismatches are permanent (the operator must act), a lost
// connection is retriable.
class SlotManager {
 public:
  explicit SlotManager(pg::PgConnection& connection) : connection_(connection) {}

  // Makes sure publication `name` publishes exactly `tables` (an empty list is fine when only
  // pg_logical_emit_message events are captured) for inserts, updates, deletes and truncates.
  // Absent: created when `create_if_missing`, else an error. Present with another table set: an
  // error naming the missing and extra tables, never a silent ALTER — rows of a newly added table
  // that existed before would never be streamed, so adding one calls for a snapshot resync.
  void ensure_publication(const std::string& name, const std::vector<TableName>& tables,
                          bool create_if_missing);
  // Returns whether a publication was dropped.
  bool drop_publication(const std::string& name);

  SlotState slot_state(const std::string& slot_name);
  // slot_state(), throwing a permanent PgError saying what is wrong when slot_problem() finds
  // something: a physical slot, another plugin, another database, or WAL already removed.
  SlotState validate_slot(const std::string& slot_name);
  // Returns whether a slot was dropped; an absent slot is not an error. Throws PgError (55006)
  // while a walsender still uses the slot.
  bool drop_slot(const std::string& slot_name);

  // A transactional pg_logical_emit_message: commits on its own, so the server flushes WAL, and an
  // idle database's slot can confirm a newer position (the WAL it pinned gets recycled). Returns
  // the message's LSN.
  Lsn emit_heartbeat(const std::string& prefix, const std::string& content);

  std::string current_database();

 private:
  pg::PgConnection& connection_;
};

}  // namespace syncline::producer
