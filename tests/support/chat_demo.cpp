// The chat demo as the end-to-end tests run it (see chat_demo.hpp).
#include "tests/support/chat_demo.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "common/kafka.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

// Replaces every `from` in `text`; fails the test when there is none.
void substitute(std::string& text, const std::string& from, const std::string& to) {
  std::size_t count = 0;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()), ++count) {
    text.replace(at, from.size(), to);
  }
  if (count == 0) ADD_FAILURE() << "examples/chat/syncline.yaml no longer contains '" << from << "'";
}

}  // namespace

Rows rows_of(pg::PgConnection& db, const std::string& sql) {
  Rows rows;
  const auto result = db.exec(sql);
  for (int row = 0; row < result.rows(); ++row) {
    std::string columns;
    for (int column = 1; column < result.columns(); ++column) {
      columns += (column > 1 ? " | " : "") +
                 (result.is_null(row, column) ? std::string("NULL") : std::string(result.value(row, column)));
    }
    rows[std::string(result.value(row, 0))] = columns;
  }
  return rows;
}

std::string differences(const Rows& expected, const Rows& actual, const std::string& what) {
  std::string out;
  int shown = 0;
  for (const auto& [key, row] : expected) {
    const auto it = actual.find(key);
    if (it == actual.end()) {
      if (shown++ < 5) out += fmt::format("  {} {}: missing, expected [{}]\n", what, key, row);
    } else if (it->second != row) {
      if (shown++ < 5) out += fmt::format("  {} {}: [{}], expected [{}]\n", what, key, it->second, row);
    }
  }
  for (const auto& [key, row] : actual) {
    if (!expected.contains(key) && shown++ < 5) out += fmt::format("  {} {}: extra [{}]\n", what, key, row);
  }
  if (shown > 0) out = fmt::format("{}: {} difference(s) in {} expected rows\n", what, shown, expected.size()) + out;
  return out;
}

ChatDemoConfig write_chat_demo_config(const std::string& name) {
  const auto& env = stack_env();
  setenv("SYNCLINE_WRITE_PG_DSN", env.write_pg_dsn.c_str(), 0);
  setenv("SYNCLINE_READ_PG_DSN", env.read_pg_dsn.c_str(), 0);
  setenv("SYNCLINE_KAFKA_BOOTSTRAP", env.kafka_bootstrap.c_str(), 0);
  setenv("SYNCLINE_SEARCH_URL", env.search_url.c_str(), 0);

  std::ifstream in(std::string(SYNCLINE_SOURCE_DIR) + "/examples/chat/syncline.yaml");
  if (!in) ADD_FAILURE() << "cannot read examples/chat/syncline.yaml";
  std::stringstream text;
  text << in.rdbuf();
  auto yaml = text.str();
  ChatDemoConfig config{.name = name, .path = fmt::format("/tmp/{}.yaml", name)};
  config.producer_port = free_port();
  config.pg_port = free_port();
  config.es_port = free_port();
  substitute(yaml, "topic_prefix: chat", "topic_prefix: " + name);
  substitute(yaml, "slot: chat\n", "slot: " + name + "\n");
  substitute(yaml, "publication: chat\n", "publication: " + name + "\n");
  substitute(yaml, "message_prefix: chat", "message_prefix: " + name);
  substitute(yaml, "outbox_table: public.outbox", fmt::format("outbox_table: public.{}_outbox", name));
  substitute(yaml, "chat.users", name + ".users");
  substitute(yaml, "chat_mirror", name + "_mirror");
  substitute(yaml, "schema: chat_summary", fmt::format("schema: {}_summary", name));
  substitute(yaml, "schema: chat_activity", fmt::format("schema: {}_activity", name));
  substitute(yaml, "group_id: chat-pg-projector", fmt::format("group_id: {}_pg", name));
  substitute(yaml, "group_id: chat-es-projector", fmt::format("group_id: {}_es", name));
  substitute(yaml, "name: messages", fmt::format("name: {}_messages", name));
  substitute(yaml, "index: messages", fmt::format("index: {}_messages", name));
  substitute(yaml, "index: users", fmt::format("index: {}_users", name));
  substitute(yaml, "    port: 9631\n", fmt::format("    port: {}\n", config.producer_port));
  substitute(yaml, "    port: 9632\n", fmt::format("    port: {}\n", config.pg_port));
  substitute(yaml, "    port: 9633\n", fmt::format("    port: {}\n", config.es_port));
  substitute(yaml, "port: 9634 }", fmt::format("port: {} }}", free_port()));
  std::ofstream(config.path) << yaml;
  return config;
}

void drop_chat_demo(const std::string& name) {
  try {
    pg::PgConnection write(stack_env().write_pg_dsn);
    (void)poll_until(
        [&] {
          return write
                     .exec("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active",
                           {pg::Param(name)})
                     .get(0, 0) == "0";
        },
        30s, "slot inactive");
    write.exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
               {pg::Param(name)});
    write.exec(fmt::format("DROP PUBLICATION IF EXISTS {}", name));
    write.exec(fmt::format("DROP TABLE IF EXISTS public.{}_outbox", name));
    write.exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE", name));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "clean-up of the write database failed: " << e.what();
  }
  try {
    pg::PgConnection read(stack_env().read_pg_dsn);
    for (const char* suffix : {"_mirror", "_summary", "_activity", "_summary__resync", "_activity__resync"}) {
      read.exec(fmt::format("DROP SCHEMA IF EXISTS {}{} CASCADE", name, suffix));
    }
    read.exec("DELETE FROM syncline.offsets WHERE consumer_group IN ($1, $2)",
              {pg::Param(name + "_pg"), pg::Param(name + "_es")});
    read.exec("DELETE FROM syncline.mirror_tombstones WHERE mirror_schema = $1", {pg::Param(name + "_mirror")});
  } catch (const std::exception& e) {
    ADD_FAILURE() << "clean-up of the read database failed: " << e.what();
  }
  try {
    http::HttpClient search{http::ClientOptions{.base_url = stack_env().search_url}};
    for (const char* index : {"_messages", "_users"}) {
      for (const char* version : {"_v1", "_v2", "_v3"}) search.del(fmt::format("/{}{}{}", name, index, version));
    }
  } catch (const std::exception&) {
    // An index of a unique prefix left behind harms no other run.
  }
  try {
    kafka::AdminClient admin({{"bootstrap.servers", stack_env().kafka_bootstrap}});
    std::vector<std::string> ours;
    for (const auto& topic : admin.list_topics(10s)) {
      if (topic.name.rfind(name + ".", 0) == 0) ours.push_back(topic.name);
    }
    if (!ours.empty()) admin.delete_topics(ours, 30s);
  } catch (const std::exception&) {
    // Topics of a unique prefix left behind harm no other run.
  }
}

ChatReadModels::ChatReadModels(std::string name, Connection write, Connection read, http::HttpClient& search)
    : name_(std::move(name)), write_(std::move(write)), read_(std::move(read)), search_(search) {}

std::string ChatReadModels::summary_differences() {
  const auto expected = rows_of(write_(), fmt::format(
      "SELECT c.id, c.title, (SELECT array_agg(p.user_id ORDER BY p.user_id) FROM {0}.participants p "
      "WHERE p.conversation_id = c.id), (SELECT count(*) FROM {0}.messages m WHERE m.conversation_id = c.id "
      "AND m.deleted_at IS NULL), l.id, l.sent_at, left(l.body, 80) FROM {0}.conversations c LEFT JOIN LATERAL "
      "(SELECT id, sent_at, body FROM {0}.messages m WHERE m.conversation_id = c.id AND m.deleted_at IS NULL "
      "ORDER BY sent_at DESC, id DESC LIMIT 1) l ON true", name_));
  const auto actual = rows_of(read_(), fmt::format(
      "SELECT conversation_id, title, (SELECT array_agg(x ORDER BY x) FROM unnest(participants) x), "
      "message_count, last_message_id, last_message_at, last_message_preview "
      "FROM {}_summary.conversation_summary", name_));
  return differences(expected, actual, "conversation_summary");
}

std::string ChatReadModels::activity_differences() {
  const auto expected = rows_of(write_(), fmt::format(
      "SELECT u.id, u.handle, (SELECT count(*) FROM {0}.messages m WHERE m.author_id = u.id), "
      "(SELECT count(*) FROM {0}.participants p WHERE p.user_id = u.id), greatest(u.registered_at, "
      "(SELECT max(sent_at) FROM {0}.messages m WHERE m.author_id = u.id), "
      "(SELECT max(edited_at) FROM {0}.messages m WHERE m.author_id = u.id), "
      "(SELECT max(joined_at) FROM {0}.participants p WHERE p.user_id = u.id)) FROM {0}.users u", name_));
  const auto actual = rows_of(read_(), fmt::format("SELECT user_id, handle, messages_sent, conversations_joined, "
                                                   "last_active_at FROM {}_activity.user_activity", name_));
  return differences(expected, actual, "user_activity");
}

Rows ChatReadModels::expected_users() {
  return rows_of(write_(), fmt::format("SELECT id, handle, display_name FROM {}.users", name_));
}

Rows ChatReadModels::mirrored_users() {
  return rows_of(read_(), fmt::format("SELECT id, handle, display_name FROM {}_mirror.users", name_));
}

std::string ChatReadModels::mirror_differences() {
  return differences(expected_users(), mirrored_users(), "users mirror");
}

std::int64_t ChatReadModels::index_count(const std::string& index) {
  search_.post(fmt::format("/{}_{}/_refresh", name_, index), "");
  const auto response = search_.get(fmt::format("/{}_{}/_count", name_, index));
  return response.status == 200 ? nlohmann::json::parse(response.body)["count"].get<std::int64_t>() : -1;
}

std::int64_t ChatReadModels::write_count(const std::string& sql) {
  return std::stoll(std::string(write_().exec(sql).value(0, 0)));
}

std::string ChatReadModels::index_differences() {
  const auto messages = write_count(fmt::format("SELECT count(*) FROM {}.messages WHERE deleted_at IS NULL", name_));
  const auto users = write_count(fmt::format("SELECT count(*) FROM {}.users", name_));
  const auto indexed_messages = index_count("messages");
  const auto indexed_users = index_count("users");
  if (indexed_messages == messages && indexed_users == users) return "";
  return fmt::format("index messages: {} documents, {} visible messages; index users: {} documents, {} users\n",
                     indexed_messages, messages, indexed_users, users);
}

std::string ChatReadModels::all_differences() {
  try {
    return summary_differences() + activity_differences() + mirror_differences() + index_differences();
  } catch (const std::exception& e) {
    return std::string("not comparable yet: ") + e.what();
  }
}

}  // namespace syncline::test
