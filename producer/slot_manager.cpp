// SlotManager: publication and slot checks over SQL (see slot_manager.hpp).
#include "producer/slot_manager.hpp"

#include <algorithm>
#include <array>
#include <iterator>
#include <set>
#include <utility>

#include "common/logging.hpp"

namespace syncline::producer {
namespace {

constexpr std::string_view kUndefinedObject = "42704";
constexpr std::string_view kDuplicateObject = "42710";
constexpr std::string_view kWrongState = "55000";  // object_not_in_prerequisite_state

std::string join(const std::set<TableName>& tables) {
  std::string text;
  for (const auto& table : tables) text += (text.empty() ? "" : ", ") + table.to_string();
  return text;
}

std::set<TableName> difference(const std::set<TableName>& a, const std::set<TableName>& b) {
  std::set<TableName> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

Lsn optional_lsn(const pg::Result& result, std::string_view column) {
  const auto text = result.get(0, column);
  return text ? Lsn::from_string(*text) : Lsn{};
}

}  // namespace

namespace {

// SQL's one escape inside quotes: the quote character doubled.
std::string quoted(std::string_view text, char quote) {
  std::string out(1, quote);
  for (const char c : text) {
    out += c;
    if (c == quote) out += quote;
  }
  return out + quote;
}

}  // namespace

std::string quote_identifier(std::string_view name) { return quoted(name, '"'); }

std::string quote_literal(std::string_view text) { return quoted(text, '\''); }

std::string quote_table(const TableName& table) {
  return quote_identifier(table.schema) + "." + quote_identifier(table.table);
}

std::optional<std::string> slot_problem(const SlotState& state, std::string_view slot_name,
                                        std::string_view database) {
  if (!state.exists) return std::nullopt;
  const std::string slot = "replication slot \"" + std::string(slot_name) + "\"";
  if (state.slot_type != "logical") {
    return slot + " is a " + state.slot_type +
           " slot; the producer needs a logical slot with the pgoutput plugin";
  }
  if (state.plugin != "pgoutput") {
    return slot + " uses the output plugin \"" + state.plugin +
           "\", not pgoutput; drop it or configure another slot name";
  }
  if (state.database != database) {
    return slot + " belongs to database \"" + state.database + "\", not \"" + std::string(database) +
           "\"; slot names are cluster-wide, so configure another slot name";
  }
  if (state.wal_status == "lost") {
    return slot + " has lost WAL it needed (wal_status lost, see max_slot_wal_keep_size); drop it and " +
           "resync the read models from a new snapshot";
  }
  return std::nullopt;
}

void SlotManager::ensure_publication(const std::string& name, const std::vector<TableName>& tables,
                                     bool create_if_missing) {
  const std::string publication = "publication \"" + name + "\"";
  const auto read_publication = [&] {
    return connection_.exec(
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, puballtables FROM pg_publication "
        "WHERE pubname = $1",
        {name});
  };
  pg::Result found = read_publication();
  if (found.rows() == 0) {
    if (!create_if_missing) {
      throw pg::PgError(std::string(kUndefinedObject),
                        publication +
                            " does not exist and creating it is not allowed; create it with "
                            "CREATE PUBLICATION or allow the producer to create it");
    }
    std::string sql = "CREATE PUBLICATION " + quote_identifier(name);
    for (std::size_t i = 0; i < tables.size(); ++i)
      sql += (i == 0 ? " FOR TABLE " : ", ") + quote_table(tables[i]);
    sql += " WITH (publish = 'insert, update, delete, truncate')";
    try {
      connection_.exec(sql);
      log::get("producer")->info("created {} for {} table(s)", publication, tables.size());
      return;
    } catch (const pg::PgError& e) {
      // Another producer created it first: check theirs like any existing publication.
      if (e.sqlstate() != kDuplicateObject) throw;
      found = read_publication();
    }
  }

  std::string missing_operations;
  const std::array<std::pair<const char*, const char*>, 4> operations{{{"pubinsert", "insert"},
                                                                       {"pubupdate", "update"},
                                                                       {"pubdelete", "delete"},
                                                                       {"pubtruncate", "truncate"}}};
  for (const auto& [column, operation] : operations) {
    if (found.get(0, column) != "t")
      missing_operations += (missing_operations.empty() ? "" : ", ") + std::string(operation);
  }
  if (!missing_operations.empty()) {
    throw pg::PgError(std::string(kWrongState),
                      publication + " does not publish " + missing_operations +
                          "; without them the read models miss changes. Run ALTER PUBLICATION " +
                          quote_identifier(name) + " SET (publish = 'insert, update, delete, truncate')");
  }

  const pg::Result published =
      connection_.exec("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", {name});
  std::set<TableName> actual;
  for (int row = 0; row < published.rows(); ++row) {
    actual.insert({std::string(published.value(row, 0)), std::string(published.value(row, 1))});
  }
  const std::set<TableName> wanted(tables.begin(), tables.end());
  const auto missing = difference(wanted, actual);
  const auto extra = difference(actual, wanted);
  if (missing.empty() && extra.empty()) return;
  std::string message = publication + " does not publish the configured tables:";
  if (!missing.empty()) message += " missing " + join(missing) + ";";
  if (!extra.empty()) {
    message +=
        " extra " + join(extra) + (found.get(0, "puballtables") == "t" ? " (it is FOR ALL TABLES);" : ";");
  }
  message +=
      " change the publication or the configuration (a table added to a running pipeline needs a "
      "snapshot resync)";
  throw pg::PgError(std::string(kWrongState), message);
}

bool SlotManager::drop_publication(const std::string& name) {
  const bool exists = connection_.exec("SELECT 1 FROM pg_publication WHERE pubname = $1", {name}).rows() == 1;
  if (exists) connection_.exec("DROP PUBLICATION IF EXISTS " + quote_identifier(name));
  return exists;
}

SlotState SlotManager::slot_state(const std::string& slot_name) {
  const pg::Result result = connection_.exec(
      "SELECT slot_type, plugin, database, active, active_pid, restart_lsn, confirmed_flush_lsn, "
      "GREATEST(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint AS retained_bytes, "
      "wal_status FROM pg_replication_slots WHERE slot_name = $1",
      {slot_name});
  SlotState state;
  if (result.rows() == 0) return state;
  state.exists = true;
  state.slot_type = result.get(0, "slot_type").value_or("");
  state.plugin = result.get(0, "plugin").value_or("");
  state.database = result.get(0, "database").value_or("");
  state.active = result.get(0, "active") == "t";
  if (const auto pid = result.get(0, "active_pid")) state.active_pid = std::stoi(*pid);
  state.restart_lsn = optional_lsn(result, "restart_lsn");
  state.confirmed_flush_lsn = optional_lsn(result, "confirmed_flush_lsn");
  if (const auto bytes = result.get(0, "retained_bytes")) state.retained_bytes = std::stoull(*bytes);
  state.wal_status = result.get(0, "wal_status").value_or("");
  return state;
}

SlotState SlotManager::validate_slot(const std::string& slot_name) {
  SlotState state = slot_state(slot_name);
  if (const auto problem = slot_problem(state, slot_name, current_database())) {
    throw pg::PgError(std::string(kWrongState), *problem);
  }
  return state;
}

bool SlotManager::drop_slot(const std::string& slot_name) {
  const pg::Result dropped = connection_.exec(
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
      {slot_name});
  if (dropped.rows() > 0) log::get("producer")->info("dropped replication slot {}", slot_name);
  return dropped.rows() > 0;
}

Lsn SlotManager::emit_heartbeat(const std::string& prefix, const std::string& content) {
  const pg::Result result =
      connection_.exec("SELECT pg_logical_emit_message(true, $1, $2)", {prefix, content});
  return Lsn::from_string(result.value(0, 0));
}

std::string SlotManager::current_database() {
  return std::string(connection_.exec("SELECT current_database()").value(0, 0));
}

}  // namespace syncline::producer
