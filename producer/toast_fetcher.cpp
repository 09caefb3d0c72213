// PgToastFetcher: one keyed SELECT per key change that left TOASTed values out, repeated until its
// snapshot sees the change's transaction (see toast_fetcher.hpp).
#include "producer/toast_fetcher.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "common/logging.hpp"
#include "common/shutdown.hpp"
#include "producer/slot_manager.hpp"

namespace syncline::producer {

PgToastFetcher::PgToastFetcher(pg::PgConnection& connection, Pause pause, std::chrono::milliseconds warn_every)
    : connection_(connection), pause_(std::move(pause)), warn_every_(warn_every) {
  if (!pause_) pause_ = [](std::chrono::milliseconds wait) { return shutdown::wait_for(wait); };
  connection_.exec("SET DateStyle = 'ISO'; SET TimeZone = 'UTC'; SET extra_float_digits = 3");
}

std::optional<std::vector<std::optional<std::string>>> PgToastFetcher::fetch(
    const RelationInfo& relation, const std::vector<std::string>& key_columns, const std::vector<std::string>& key,
    const std::vector<std::string>& columns, Xid xid) {
  // One statement, so one snapshot: whether it sees transaction `xid` (pgoutput sends the 32-bit xid;
  // the snapshot's next xid gives its epoch: a committed xid is below it), and the row as it shows it.
  // pg_current_snapshot() is the statement's own snapshot in READ COMMITTED.
  std::string sql =
      "SELECT $1::bigint = 0 OR pg_visible_in_snapshot(((s.next >> 32 << 32 | $1::bigint) - CASE WHEN $1::bigint >= "
      "(s.next & 4294967295) THEN 4294967296 ELSE 0 END)::text::xid8, s.snap), r.found IS NOT NULL";
  for (std::size_t i = 0; i < columns.size(); ++i) sql += fmt::format(", r.c{}", i);
  sql += " FROM (SELECT snap, pg_snapshot_xmax(snap)::text::bigint AS next FROM pg_current_snapshot() AS snap) AS s "
         "LEFT JOIN LATERAL (SELECT true AS found";
  for (std::size_t i = 0; i < columns.size(); ++i) sql += fmt::format(", {} AS c{}", quote_identifier(columns[i]), i);
  sql += " FROM " + quote_table({relation.schema, relation.table}) + " WHERE ";
  std::vector<pg::Param> params;
  params.emplace_back(std::to_string(xid));
  for (std::size_t i = 0; i < key_columns.size(); ++i) {
    // The parameter takes the column's type, so the stream's text form of the key reads back as it.
    sql += (i == 0 ? "" : " AND ") + quote_identifier(key_columns[i]) + " = $" + std::to_string(i + 2);
    params.emplace_back(key.at(i));
  }
  sql += ") AS r ON true";

  const auto started = std::chrono::steady_clock::now();
  auto next_warning = started + warn_every_;
  std::chrono::milliseconds wait(1);
  while (true) {
    const pg::Result result = connection_.exec(sql, params);
    if (result.value(0, 0) == "t") {
      if (result.value(0, 1) != "t") return std::nullopt;
      std::vector<std::optional<std::string>> values;
      for (int column = 2; column < result.columns(); ++column) {
        values.push_back(result.is_null(0, column) ? std::nullopt
                                                   : std::optional<std::string>(std::string(result.value(0, column))));
      }
      return values;
    }
    if (const auto now = std::chrono::steady_clock::now(); now >= next_warning) {
      log::get("producer")
          ->warn("waiting {} s for transaction {} to become visible, to read the TOASTed values its key change of "
                 "{}.{} left out: it is in the WAL but not yet visible to other sessions (a synchronous standby "
                 "has not answered; if synchronous_standby_names names this producer's slot, its commits become "
                 "visible only after the producer confirms them, which it cannot do first: take it out)",
                 std::chrono::duration_cast<std::chrono::seconds>(now - started).count(), xid, relation.schema,
                 relation.table);
      next_warning = now + warn_every_;
    }
    if (pause_(wait)) {
      throw std::runtime_error(fmt::format(
          "stopped while waiting for transaction {} to become visible (its key change is published after the restart)",
          xid));
    }
    wait = std::min(wait * 2, std::chrono::milliseconds(100));
  }
}

}  // namespace syncline::producer
