// The chat demo (examples/chat) as the end-to-end tests run it: the shipped syncline.yaml with a
// run's unique names and free ports, its read models compared with the write database's own
// aggregates, and the clean-up of everything a run's names created.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/http_client.hpp"
#include "common/pg.hpp"

namespace syncline::test {

using Rows = std::map<std::string, std::string>;  // the first column -> the others, as text

// Every row of `sql`, keyed by its first column; NULL reads "NULL".
Rows rows_of(pg::PgConnection& db, const std::string& sql);

// "" when equal, else a count and the first differences (for a failure message).
std::string differences(const Rows& expected, const Rows& actual, const std::string& what);

struct ChatDemoConfig {
  std::string name;  // the run's unique name: write schema, slot, publication, topic prefix, ...
  std::string path;  // the config file written
  int producer_port = 0;
  int pg_port = 0;
  int es_port = 0;
};

// Writes examples/chat/syncline.yaml with `name` in place of every shared name (schemas, slot,
// publication, outbox, topic prefix, groups, indices) and free HTTP ports, and exports the stack's
// addresses that the config reads (SYNCLINE_*_DSN, ...) unless they are set. A pattern the example
// no longer contains fails the test, so a changed example never runs against shared names.
ChatDemoConfig write_chat_demo_config(const std::string& name);

// Drops what a run named `name` created: slot (once inactive), publication, outbox and schemas in
// the write database; read schemas, offsets and tombstones; indices; topics. A database clean-up
// failure fails the test; an index or topic left behind harms no other run.
void drop_chat_demo(const std::string& name);

// The read models of a run named `name`, compared with the write database. The connections are
// functions so a caller may hand out one that reconnects after its server restarted.
class ChatReadModels {
 public:
  using Connection = std::function<pg::PgConnection&()>;
  ChatReadModels(std::string name, Connection write, Connection read, http::HttpClient& search);

  // Each is "" when the read model equals what the write database says; they throw on a query error.
  std::string summary_differences();   // conversation_summary, every column
  std::string activity_differences();  // user_activity, every column
  std::string mirror_differences();    // the users mirror
  std::string index_differences();     // document counts of the messages and users indices
  // All of the above; a query error is a difference ("not comparable yet: ..."), never a throw.
  std::string all_differences();

  Rows expected_users();
  Rows mirrored_users();
  std::int64_t index_count(const std::string& index);  // refreshed first; -1 if it does not answer
  std::int64_t write_count(const std::string& sql);

 private:
  std::string name_;
  Connection write_;
  Connection read_;
  http::HttpClient& search_;
};

}  // namespace syncline::test
