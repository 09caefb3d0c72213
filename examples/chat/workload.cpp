// syncline-chat-workload: drives the chat demo's commands (examples/chat/schema.sql) against the
// write database at a paced rate, with a realistic mix, and prints what it did.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"
#include "common/logging.hpp"
#include "common/pg.hpp"

namespace syncline::chat {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

struct Options {
  std::string dsn;
  std::string config_path;
  std::string schema = "chat";
  std::string outbox;          // empty: from --config, else public.outbox
  std::string message_prefix;  // empty: from --config, else syncline
  std::string schema_file;
  bool setup = false;
  bool setup_only = false;
  double rate = 20;
  double duration = 10;
  std::int64_t transactions = -1;
  int users = 20;
  int conversations = 5;
  std::uint64_t seed = 0;
  bool seed_given = false;
  bool json = false;
};

// Outcome counts of one command.
struct Tally {
  std::int64_t ok = 0;
  std::int64_t refused = 0;  // the command ran and changed nothing (e.g. already a participant)
  std::int64_t failed = 0;   // an error
};

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// schema.sql: --schema-file, else next to the binary (the build tree or share/syncline/chat of an
// install), else in the source tree.
std::filesystem::path find_schema_file(const Options& options, const char* argv0) {
  if (!options.schema_file.empty()) return options.schema_file;
  std::error_code ignored;
  const auto self = std::filesystem::canonical("/proc/self/exe", ignored);
  const auto dir = self.empty() ? std::filesystem::path(argv0).parent_path() : self.parent_path();
  for (const auto& candidate : {dir / "schema.sql", dir / "../share/syncline/chat/schema.sql",
                                std::filesystem::path(SYNCLINE_CHAT_SOURCE_DIR) / "schema.sql"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  throw std::runtime_error("schema.sql not found next to the binary nor in the source tree; pass --schema-file");
}

// Quoted identifiers, so a schema name is never SQL text the user can inject into.
std::string quote_ident(const std::string& name) { return "\"" + replace_all(name, "\"", "\"\"") + "\""; }
std::string quote_table(const std::string& qualified) {
  const auto dot = qualified.find('.');
  if (dot == std::string::npos) return "public." + quote_ident(qualified);
  return quote_ident(qualified.substr(0, dot)) + "." + quote_ident(qualified.substr(dot + 1));
}

void apply_schema(pg::PgConnection& db, const Options& options, const char* argv0) {
  const auto path = find_schema_file(options, argv0);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto sql = replace_all(text.str(), "{{schema}}", quote_ident(options.schema));
  sql = replace_all(sql, "{{outbox}}", quote_table(options.outbox));
  sql = replace_all(sql, "{{message_prefix}}", replace_all(options.message_prefix, "'", "''"));
  // Serialised with other set-ups (CREATE ... IF NOT EXISTS races on the catalog otherwise).
  db.exec("SELECT pg_advisory_lock(hashtext('syncline.chat.setup'))");
  try {
    db.exec(sql);
  } catch (...) {
    db.exec("SELECT pg_advisory_unlock(hashtext('syncline.chat.setup'))");
    throw;
  }
  db.exec("SELECT pg_advisory_unlock(hashtext('syncline.chat.setup'))");
}

const std::vector<std::string> kWords = {
    "hello",   "deploy",  "coffee",   "meeting", "release", "lunch",   "review", "merge",  "branch",
    "ticket",  "cluster", "kafka",    "replica", "lag",     "monday",  "friday", "budget", "design",
    "roadmap", "bug",     "fix",      "test",    "green",   "red",     "ship",   "rollback", "please",
    "thanks",  "today",   "tomorrow", "later",   "maybe",   "agreed",  "sounds", "good",   "plan",
    "index",   "search",  "latency",  "metrics", "alert",   "pager",   "oncall", "standup", "demo"};

class Workload {
 public:
  Workload(pg::PgConnection& db, const Options& options, std::string dsn)
      : db_(&db), options_(options), dsn_(std::move(dsn)), rng_(options.seed), s_(quote_ident(options.schema)) {}

  // Reads what already exists, so a second run continues the same conversations.
  void load() {
    for (const auto& [sql, target] : std::vector<std::pair<std::string, std::vector<std::int64_t>*>>{
             {"SELECT id FROM " + s_ + ".users ORDER BY id", &users_},
             {"SELECT id FROM " + s_ + ".conversations ORDER BY id", &conversations_}}) {
      const auto result = db_->exec(sql);
      for (int row = 0; row < result.rows(); ++row) target->push_back(std::stoll(std::string(result.value(row, 0))));
    }
    const auto participants = db_->exec("SELECT conversation_id, user_id FROM " + s_ + ".participants");
    for (int row = 0; row < participants.rows(); ++row) {
      participants_[std::stoll(std::string(participants.value(row, 0)))].push_back(
          std::stoll(std::string(participants.value(row, 1))));
    }
    // The newest visible messages are the ones people edit and delete.
    const auto messages = db_->exec("SELECT id, author_id FROM " + s_ +
                                    ".messages WHERE deleted_at IS NULL ORDER BY id DESC LIMIT 10000");
    for (int row = messages.rows() - 1; row >= 0; --row) {
      live_.push_back({std::stoll(std::string(messages.value(row, 0))), std::stoll(std::string(messages.value(row, 1)))});
    }
  }

  // Registers users and starts conversations up to --users / --conversations (unpaced).
  // A command that keeps failing here (a broken schema, say) ends the run instead of looping.
  void bootstrap() {
    const auto give_up_on_repeated_failure = [this] {
      if (consecutive_failures_ >= 10) {
        throw std::runtime_error("setting up users and conversations failed 10 times in a row; last error: " +
                                 last_error_);
      }
    };
    while (!g_stop && static_cast<int>(users_.size()) < options_.users) {
      run("register_user");
      give_up_on_repeated_failure();
    }
    while (!g_stop && static_cast<int>(conversations_.size()) < options_.conversations) {
      run("start_conversation");
      give_up_on_repeated_failure();
    }
  }

  // One command of the mix: mostly sends, some edits and deletes, new users and joins.
  void step() {
    const int dice = std::uniform_int_distribution<int>(0, 99)(rng_);
    const char* command = dice < 70   ? "send_message"
                          : dice < 80 ? "edit_message"
                          : dice < 85 ? "delete_message"
                          : dice < 93 ? "join_conversation"
                          : dice < 97 ? "register_user"
                                      : "start_conversation";
    run(command);
  }

  const std::map<std::string, Tally>& tallies() const { return tallies_; }
  std::int64_t transactions() const { return transactions_; }

 private:
  template <typename T>
  const T& pick(const std::vector<T>& from) {
    return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng_)];
  }

  std::string sentence(int min_words, int max_words) {
    const int words = std::uniform_int_distribution<int>(min_words, max_words)(rng_);
    std::string text;
    for (int i = 0; i < words; ++i) text += (i == 0 ? "" : " ") + pick(kWords);
    // A rare word per message, so a search can find one message among many.
    return text + fmt::format(" w{:06x}", std::uniform_int_distribution<std::uint32_t>(0, 0xffffff)(rng_));
  }

  // Runs `command`; a command that cannot apply yet (no conversation, nobody to join) becomes a send
  // or a registration, so the run always does something.
  void run(std::string command) {
    if (users_.empty()) command = "register_user";
    if (command != "register_user" && conversations_.empty()) command = "start_conversation";
    if ((command == "edit_message" || command == "delete_message") && live_.empty()) command = "send_message";
    auto& tally = tallies_[command];
    ++transactions_;
    try {
      const auto outcome = execute(command);
      (outcome ? tally.ok : tally.refused)++;
      consecutive_failures_ = 0;
    } catch (const pg::PgError& error) {
      ++tally.failed;
      ++consecutive_failures_;
      last_error_ = error.what();
      if (++errors_printed_ <= 5) std::cerr << "syncline-chat-workload: " << command << ": " << error.what() << '\n';
      if (!db_->is_open() || error.retriable() || error.in_doubt()) reconnect();
    }
  }

  bool execute(const std::string& command) {
    if (command == "register_user") {
      const auto handle = fmt::format("{}_{:06x}", pick(kWords), std::uniform_int_distribution<std::uint32_t>(0, 0xffffff)(rng_));
      const auto result = db_->exec("SELECT " + s_ + ".register_user($1, $2)", {handle, "User " + handle});
      users_.push_back(std::stoll(std::string(result.value(0, 0))));
      return true;
    }
    if (command == "start_conversation") {
      const auto creator = pick(users_);
      const auto result = db_->exec("SELECT " + s_ + ".start_conversation($1, $2)",
                                    {std::to_string(creator), "about " + sentence(1, 3)});
      const auto id = std::stoll(std::string(result.value(0, 0)));
      conversations_.push_back(id);
      participants_[id].push_back(creator);
      return true;
    }
    if (command == "join_conversation") {
      const auto conversation = pick(conversations_);
      const auto user = pick(users_);
      const auto result = db_->exec("SELECT " + s_ + ".join_conversation($1, $2)",
                                    {std::to_string(conversation), std::to_string(user)});
      if (result.value(0, 0) != "t") return false;
      participants_[conversation].push_back(user);
      return true;
    }
    if (command == "send_message") {
      const auto conversation = pick(conversations_);
      auto& members = participants_[conversation];
      if (members.empty()) return false;
      const auto author = pick(members);
      const auto result = db_->exec("SELECT " + s_ + ".send_message($1, $2, $3)",
                                    {std::to_string(conversation), std::to_string(author), sentence(3, 12)});
      live_.push_back({std::stoll(std::string(result.value(0, 0))), author});
      if (live_.size() > 10000) live_.erase(live_.begin());
      return true;
    }
    // Edits and deletes favour recent messages, as people do.
    const auto window = std::min<std::size_t>(live_.size(), 200);
    const auto index = live_.size() - 1 - std::uniform_int_distribution<std::size_t>(0, window - 1)(rng_);
    const auto [message, author] = live_[index];
    if (command == "edit_message") {
      const auto result = db_->exec("SELECT " + s_ + ".edit_message($1, $2, $3)",
                                    {std::to_string(message), std::to_string(author), "(edited) " + sentence(3, 12)});
      return result.value(0, 0) == "t";
    }
    const auto result =
        db_->exec("SELECT " + s_ + ".delete_message($1, $2)", {std::to_string(message), std::to_string(author)});
    live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(index));
    return result.value(0, 0) == "t";
  }

  void reconnect() {
    for (int attempt = 0; attempt < 30 && !g_stop; ++attempt) {
      try {
        owned_ = std::make_unique<pg::PgConnection>(dsn_);
        db_ = owned_.get();
        return;
      } catch (const pg::PgError&) {
        std::this_thread::sleep_for(std::chrono::seconds(1));  // the write database is restarting
      }
    }
  }

  pg::PgConnection* db_;
  std::unique_ptr<pg::PgConnection> owned_;
  const Options& options_;
  std::string dsn_;
  std::mt19937_64 rng_;
  std::string s_;  // the quoted domain schema
  std::vector<std::int64_t> users_;
  std::vector<std::int64_t> conversations_;
  std::unordered_map<std::int64_t, std::vector<std::int64_t>> participants_;
  std::vector<std::pair<std::int64_t, std::int64_t>> live_;  // (message id, author) not deleted
  std::map<std::string, Tally> tallies_;
  std::int64_t transactions_ = 0;
  int errors_printed_ = 0;
  int consecutive_failures_ = 0;
  std::string last_error_;
};

int run(int argc, char** argv) {
  Options options;
  CLI::App app{"syncline-chat-workload: drives the chat demo's commands against the write database."};
  app.add_option("--dsn", options.dsn, "write database DSN (default: write_db.dsn of --config)");
  app.add_option("--config", options.config_path,
                 "syncline.yaml: write_db.dsn, producer.outbox_table and producer.message_prefix");
  app.add_option("--schema", options.schema, "domain schema")->capture_default_str();
  app.add_option("--outbox", options.outbox, "outbox table (default: the config's, else public.outbox)");
  app.add_option("--message-prefix", options.message_prefix,
                 "logical message prefix (default: the config's, else syncline)");
  app.add_flag("--setup", options.setup, "apply schema.sql (idempotent) before running");
  app.add_flag("--setup-only", options.setup_only, "apply schema.sql and exit");
  app.add_option("--schema-file", options.schema_file, "schema.sql to apply (default: found next to the binary)");
  app.add_option("--rate", options.rate, "transactions per second")->capture_default_str()->check(CLI::PositiveNumber);
  auto* duration = app.add_option("--duration", options.duration, "seconds to run")->capture_default_str();
  app.add_option("--transactions", options.transactions, "stop after N transactions (instead of --duration)")
      ->excludes(duration)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--users", options.users, "users to have before the paced run")->capture_default_str();
  app.add_option("--conversations", options.conversations, "conversations to have before the paced run")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "random seed (default: random)");
  app.add_flag("--json", options.json, "print the summary as JSON");
  app.footer(
      "Examples:\n"
      "  syncline-chat-workload --config examples/chat/syncline.yaml --setup-only\n"
      "  syncline-chat-workload --config examples/chat/syncline.yaml --rate 50 --duration 60\n"
      "  syncline-chat-workload --dsn postgresql://... --schema chat --transactions 1000 --seed 7 --json\n"
      "Exit codes: 0 done, 1 some commands failed, 2 could not run.");
  CLI11_PARSE(app, argc, argv);
  options.seed_given = app.count("--seed") > 0;
  if (!options.seed_given) options.seed = std::random_device{}();

  if (!options.config_path.empty()) {
    const auto config = syncline::load_config(options.config_path);
    if (options.dsn.empty() && config.write_db) options.dsn = config.write_db->dsn;
    if (options.outbox.empty() && config.producer.outbox_table) {
      options.outbox = config.producer.outbox_table->schema + "." + config.producer.outbox_table->table;
    }
    if (options.message_prefix.empty()) options.message_prefix = config.producer.message_prefix;
  }
  if (options.dsn.empty()) throw std::runtime_error("no write database: pass --dsn or --config");
  if (options.outbox.empty()) options.outbox = "public.outbox";
  if (options.message_prefix.empty()) options.message_prefix = "syncline";

  pg::PgConnection db(options.dsn);
  if (options.setup || options.setup_only) {
    apply_schema(db, options, argv[0]);
    if (!options.json) std::cerr << "schema " << options.schema << " applied (outbox " << options.outbox << ")\n";
    if (options.setup_only) return 0;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  Workload workload(db, options, options.dsn);
  workload.load();
  const auto started = Clock::now();
  workload.bootstrap();
  // Paced: the i-th transaction starts at start + i/rate, so a slow one is caught up on, not lost.
  const auto paced_start = Clock::now();
  const auto interval = std::chrono::duration<double>(1.0 / options.rate);
  const auto deadline = paced_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.duration));
  std::int64_t paced = 0;
  while (!g_stop) {
    if (options.transactions >= 0 ? workload.transactions() >= options.transactions : Clock::now() >= deadline) break;
    std::this_thread::sleep_until(paced_start + std::chrono::duration_cast<Clock::duration>(interval * paced));
    workload.step();
    ++paced;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();

  std::int64_t failed = 0;
  nlohmann::json summary = {{"seed", options.seed},       {"schema", options.schema},
                            {"transactions", workload.transactions()}, {"seconds", elapsed},
                            {"rate", elapsed > 0 ? workload.transactions() / elapsed : 0.0},
                            {"target_rate", options.rate}, {"commands", nlohmann::json::object()}};
  for (const auto& [command, tally] : workload.tallies()) {
    summary["commands"][command] = {{"ok", tally.ok}, {"refused", tally.refused}, {"failed", tally.failed}};
    failed += tally.failed;
  }
  summary["failed"] = failed;
  if (options.json) {
    std::cout << summary.dump(2) << '\n';
  } else {
    std::cout << fmt::format("{} transactions in {:.1f} s: {:.1f}/s (target {:.1f}/s), seed {}\n",
                             workload.transactions(), elapsed, summary["rate"].get<double>(), options.rate, options.seed);
    std::cout << fmt::format("  {:<20} {:>8} {:>8} {:>8}\n", "command", "ok", "refused", "failed");
    for (const auto& [command, tally] : workload.tallies()) {
      std::cout << fmt::format("  {:<20} {:>8} {:>8} {:>8}\n", command, tally.ok, tally.refused, tally.failed);
    }
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace
}  // namespace syncline::chat

int main(int argc, char** argv) {
  try {
    return syncline::chat::run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "syncline-chat-workload: " << syncline::redact_secrets(error.what()) << '\n';
    return 2;
  }
}
