// The fault checker's schema, config and seeded workload (see fault_workload.hpp).
#include "tests/faults/fault_workload.hpp"

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "common/pg.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test::faults {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kBigRows = 21000;  // one PostgreSQL transaction, more than 4 Kafka transactions of 5,000
constexpr int kAccounts = 400;

}  // namespace

void create_write_schema(const std::string& dsn, const std::string& name, int prefill_rows) {
  pg::PgConnection db(dsn);
  db.exec(fmt::format(R"(
    CREATE SCHEMA {0};
    CREATE TABLE public.{0}_outbox (id uuid PRIMARY KEY, aggregate_type text, aggregate_id text,
      event_type text, payload jsonb, occurred_at timestamptz NOT NULL DEFAULT now(), headers jsonb);
    CREATE TABLE {0}.items (id bigint PRIMARY KEY, name text NOT NULL, qty integer NOT NULL,
      price numeric(12,2), updated_at timestamptz NOT NULL, tags text[], doc jsonb, big text);
    ALTER TABLE {0}.items ALTER COLUMN big SET STORAGE EXTERNAL;
    CREATE TABLE {0}.kv (k text PRIMARY KEY, v bigint NOT NULL, flag boolean);
    CREATE TABLE {0}.bulk (id bigint PRIMARY KEY, grp integer NOT NULL, v text NOT NULL);
    CREATE TABLE {0}.log (n bigint NOT NULL, note text, at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE {0}.ledger (n bigserial, event_id uuid PRIMARY KEY, aggregate_type text NOT NULL,
      aggregate_id text NOT NULL, type text NOT NULL, via text NOT NULL, account_id text NOT NULL,
      amount bigint, owner text, transfer_id text);
    INSERT INTO {0}.bulk SELECT g, g % 100, md5(g::text) FROM generate_series(1, {1}) g;
    ANALYZE {0}.bulk;
  )",
                      name, prefill_rows));
}

RunConfig write_run_config(const std::string& name) {
  const auto& env = stack_env();
  RunConfig config{.name = name, .path = fmt::format("/tmp/{}.yaml", name)};
  config.producer_port = free_port();
  config.pg_port = free_port();
  config.es_port = free_port();
  const int ctl_port = free_port();
  std::ofstream(config.path) << fmt::format(R"(# The fault checker's run {0} (tests/faults).
log:
  level: info
kafka:
  bootstrap_servers: {1}
  client_id: {0}
  topic_prefix: {0}
write_db:
  dsn: {2}
read_db:
  dsn: {3}
search:
  url: {4}
producer:
  http: {{ host: 127.0.0.1, port: {5} }}
  slot: {0}
  publication: {0}
  snapshot: initial
  outbox_table: public.{0}_outbox
  message_prefix: {0}
  capture: [{0}.items, {0}.kv, {0}.bulk, {0}.log]
  batch_max_events: 5000
  batch_max_ms: 50
  heartbeat_interval_ms: 1000
  status_interval_ms: 200
  retry_max_backoff_ms: 2000
pg_projector:
  http: {{ host: 127.0.0.1, port: {6} }}
  group_id: {0}_pg
  batch_max_ms: 20
  retry_max_backoff_ms: 2000
  mirror:
    schema: {0}_mirror
    tables: [{0}.items, {0}.kv, {0}.bulk, {0}.log]
  projections:
    - name: accounts
      schema: {0}_acct
      aggregate_types: [account, transfer]
      setup: |
        CREATE TABLE IF NOT EXISTS {{{{schema}}}}.account_totals (
          account_id text PRIMARY KEY,
          opened     bigint NOT NULL DEFAULT 0,
          deposits   bigint NOT NULL DEFAULT 0,
          deposited  bigint NOT NULL DEFAULT 0,
          renames    bigint NOT NULL DEFAULT 0,
          transfers  bigint NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS {{{{schema}}}}.event_log (event_id uuid NOT NULL, type text NOT NULL,
          aggregate_id text NOT NULL)
      events:
        - types: AccountOpened
          sql: |
            INSERT INTO {{{{schema}}}}.account_totals AS t (account_id, opened) VALUES (:payload.account_id, 1)
            ON CONFLICT (account_id) DO UPDATE SET opened = t.opened + 1
        - types: Deposited
          sql: |
            INSERT INTO {{{{schema}}}}.account_totals AS t (account_id, deposits, deposited)
            VALUES (:payload.account_id, 1, :payload.amount)
            ON CONFLICT (account_id) DO UPDATE SET deposits = t.deposits + 1, deposited = t.deposited + EXCLUDED.deposited
        - types: Renamed
          sql: |
            INSERT INTO {{{{schema}}}}.account_totals AS t (account_id, renames) VALUES (:payload.account_id, 1)
            ON CONFLICT (account_id) DO UPDATE SET renames = t.renames + 1
        - types: TransferNoted
          sql: |
            INSERT INTO {{{{schema}}}}.account_totals AS t (account_id, transfers) VALUES (:payload.account_id, 1)
            ON CONFLICT (account_id) DO UPDATE SET transfers = t.transfers + 1
        - types: [AccountOpened, Deposited, Renamed, TransferNoted]
          sql: |
            INSERT INTO {{{{schema}}}}.event_log (event_id, type, aggregate_id) VALUES (:id::uuid, :type, :aggregate_id)
es_projector:
  http: {{ host: 127.0.0.1, port: {7} }}
  group_id: {0}_es
  bulk_max_ms: 50
  retry_max_backoff_ms: 2000
  indices:
    - name: {0}_items
      settings: {{ number_of_shards: 1 }}
    - name: {0}_mixed
      settings: {{ number_of_shards: 1 }}
      mappings:
        properties:
          owner: {{ type: keyword }}
          account_id: {{ type: keyword }}
          last_deposit: {{ type: long }}
          last_transfer: {{ type: keyword }}
          k: {{ type: keyword }}
          v: {{ type: long }}
  mirror:
    - table: {0}.items
      index: {0}_items
    - table: {0}.kv
      index: {0}_mixed
  mappings:
    - index: {0}_mixed
      aggregate_types: [account, transfer]
      events:
        - types: AccountOpened
          id: payload.account_id
          fields: {{ owner: payload.owner, account_id: payload.account_id }}
        - types: Renamed
          action: update
          id: payload.account_id
          fields: {{ owner: payload.owner }}
        - types: Deposited
          action: update
          id: payload.account_id
          fields: {{ last_deposit: payload.amount }}
        - types: TransferNoted          # keyed by the transfer: another Kafka key than the account's
          action: update
          id: payload.account_id
          fields: {{ last_transfer: payload.transfer_id }}
ctl:
  http: {{ host: 127.0.0.1, port: {8} }}
)",
                                            name, env.kafka_bootstrap, env.write_pg_dsn, env.read_pg_dsn,
                                            env.search_url, config.producer_port, config.pg_port,
                                            config.es_port, ctl_port);
  return config;
}

// What the workload believes exists; reloaded from the database after every reconnect (a COMMIT
// lost with its connection leaves it in doubt).
struct Workload::Model {
  std::mt19937_64 rng;
  std::unique_ptr<pg::PgConnection> db;
  std::vector<std::string> accounts;  // opened in a committed transaction
  std::set<std::int64_t> items;
  std::set<std::int64_t> deleted_items;
  std::int64_t next_item = 1;
  std::int64_t next_bulk = 0;
  std::int64_t next_log = 1;
  std::int64_t next_transfer = 1;
  std::int64_t events = 0;

  std::int64_t uniform(std::int64_t low, std::int64_t high) {
    return std::uniform_int_distribution<std::int64_t>(low, high)(rng);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
  std::string uuid() {
    const std::uint64_t a = rng();
    const std::uint64_t b = rng();
    return fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                       0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffffULL);
  }
  template <typename Set>
  std::int64_t any_of(const Set& set) {
    auto it = set.begin();
    std::advance(it, uniform(0, static_cast<std::int64_t>(set.size()) - 1));
    return *it;
  }
};

Workload::Workload(std::string dsn, std::string name, std::uint64_t seed, double rate, int prefill_rows)
    : dsn_(std::move(dsn)), name_(std::move(name)), seed_(seed), rate_(rate), prefill_rows_(prefill_rows) {}

Workload::~Workload() { stop(); }

void Workload::start() {
  stop_ = false;
  thread_ = std::thread([this] { run(); });
}

void Workload::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

WorkloadCounts Workload::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

namespace {

// One domain event, emitted as an outbox row or a transactional logical message (seeded), and its
// ledger row, in the caller's transaction.
void emit_event(pg::Transaction& tx, const std::string& name, const std::string& via, const std::string& id,
                const std::string& aggregate_type, const std::string& aggregate_id, const std::string& type,
                const json& payload) {
  if (via == "outbox") {
    tx.exec(fmt::format("INSERT INTO public.{}_outbox (id, aggregate_type, aggregate_id, event_type, payload) "
                        "VALUES ($1, $2, $3, $4, $5)",
                        name),
            {id, aggregate_type, aggregate_id, type, payload.dump()});
  } else {
    tx.exec("SELECT pg_logical_emit_message(true, $1, json_build_object('id', $2::text, 'aggregate_type', $3::text, "
            "'aggregate_id', $4::text, 'event_type', $5::text, 'payload', $6::jsonb, 'occurred_at', now())::text)",
            {name, id, aggregate_type, aggregate_id, type, payload.dump()});
  }
  const auto text = [&](const char* key) -> pg::Param {
    if (!payload.contains(key)) return std::nullopt;
    return payload[key].is_string() ? payload[key].get<std::string>() : payload[key].dump();
  };
  tx.exec(fmt::format("INSERT INTO {}.ledger (event_id, aggregate_type, aggregate_id, type, via, account_id, amount, "
                      "owner, transfer_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                      name),
          {id, aggregate_type, aggregate_id, type, via, text("account_id"), text("amount"), text("owner"),
           text("transfer_id")});
}

}  // namespace

void Workload::run() {
  Model model;
  model.rng.seed(seed_);
  model.next_bulk = prefill_rows_ + 1;
  const auto interval = std::chrono::duration<double>(1.0 / rate_);
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    // Pacing, not waiting for a condition: the workload's rate.
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
    std::this_thread::sleep_until(next);
    if (std::chrono::steady_clock::now() - next > 2s) next = std::chrono::steady_clock::now();
    if (!model.db || !model.db->is_open()) {
      try {
        model.db = std::make_unique<pg::PgConnection>(dsn_, 2s);
        // Reload what exists: a transaction whose COMMIT was lost may or may not have happened.
        model.accounts.clear();
        model.items.clear();
        const auto accounts = model.db->exec(
            fmt::format("SELECT account_id FROM {}.ledger WHERE type = 'AccountOpened' ORDER BY 1", name_));
        for (int row = 0; row < accounts.rows(); ++row) model.accounts.emplace_back(accounts.value(row, 0));
        const auto items = model.db->exec(fmt::format("SELECT id FROM {}.items", name_));
        for (int row = 0; row < items.rows(); ++row) model.items.insert(std::stoll(std::string(items.value(row, 0))));
        for (const auto id : model.items) model.deleted_items.erase(id);
        const auto maxima = model.db->exec(fmt::format(
            "SELECT coalesce((SELECT max(id) FROM {0}.items), 0), coalesce((SELECT max(id) FROM {0}.bulk), 0), "
            "(SELECT count(*) FROM {0}.ledger WHERE type = 'TransferNoted')",
            name_));
        model.next_item = std::max<std::int64_t>(model.next_item, std::stoll(std::string(maxima.value(0, 0))) + 1);
        model.next_bulk = std::max<std::int64_t>(model.next_bulk, std::stoll(std::string(maxima.value(0, 1))) + 1);
        model.next_transfer = std::max<std::int64_t>(model.next_transfer, std::stoll(std::string(maxima.value(0, 2))) + 1);
        std::lock_guard lock(mutex_);
        ++counts_.reconnects;
      } catch (const std::exception&) {
        model.db.reset();
        continue;
      }
    }
    one(model);
  }
}

void Workload::one(Model& m) {
  std::string command;
  try {
    auto& db = *m.db;
    if (big_requested_) {
      // One transaction of 21,000 rows plus a domain event: split over several Kafka transactions.
      command = "big_transaction";
      pg::Transaction tx(db);
      if (m.chance(0.5) || m.next_bulk < kBigRows) {
        tx.exec(fmt::format("INSERT INTO {}.bulk SELECT g, g % 100, md5(g::text) FROM generate_series({}, {}) g",
                            name_, m.next_bulk, m.next_bulk + kBigRows - 1));
      } else {
        const auto from = m.uniform(1, m.next_bulk - kBigRows);
        tx.exec(fmt::format("UPDATE {}.bulk SET v = md5(v), grp = grp + 1 WHERE id BETWEEN {} AND {}", name_, from,
                            from + kBigRows - 1));
      }
      if (!m.accounts.empty()) {
        const auto account = m.accounts[m.uniform(0, static_cast<std::int64_t>(m.accounts.size()) - 1)];
        emit_event(tx, name_, "outbox", m.uuid(), "account", account, "Deposited",
                   json{{"account_id", account}, {"amount", m.uniform(1, 1000)}});
      }
      tx.commit();
      m.next_bulk += kBigRows;
      big_requested_ = false;
      ++big_done_;
    } else {
      const auto dice = m.uniform(0, 999);
      pg::Transaction tx(db);
      const std::string via = m.chance(0.5) ? "outbox" : "message";
      std::optional<std::string> opened;
      std::optional<std::int64_t> inserted_item;
      std::optional<std::int64_t> removed_item;
      std::optional<std::pair<std::int64_t, std::int64_t>> moved_item;
      if (dice < 300) {
        if (m.accounts.size() < static_cast<std::size_t>(kAccounts) && (m.accounts.size() < 20 || m.chance(0.15))) {
          // A third of the accounts open with a first transfer in the same transaction: two Kafka
          // keys writing one search document at one version, ordered only by seq.
          const bool with_transfer = m.chance(0.33);
          command = with_transfer ? "AccountOpened + TransferNoted" : "AccountOpened";
          const auto account = fmt::format("a{}", m.accounts.size() + 1 + m.uniform(0, 0));
          opened = account;
          emit_event(tx, name_, via, m.uuid(), "account", account, "AccountOpened",
                     json{{"account_id", account}, {"owner", fmt::format("owner-{}", m.uniform(1, 99999))}});
          if (with_transfer) {
            const auto transfer = fmt::format("t{}", m.next_transfer);
            emit_event(tx, name_, m.chance(0.5) ? "outbox" : "message", m.uuid(), "transfer", transfer,
                       "TransferNoted",
                       json{{"account_id", account}, {"transfer_id", transfer}, {"amount", m.uniform(1, 500)}});
          }
        } else if (m.accounts.empty()) {
          return;
        } else {
          const auto account = m.accounts[m.uniform(0, static_cast<std::int64_t>(m.accounts.size()) - 1)];
          if (dice < 200) {
            command = "Deposited";
            emit_event(tx, name_, via, m.uuid(), "account", account, command,
                       json{{"account_id", account}, {"amount", m.uniform(1, 1000)}});
          } else {
            command = "Renamed";
            emit_event(tx, name_, via, m.uuid(), "account", account, command,
                       json{{"account_id", account}, {"owner", fmt::format("owner-{}", m.uniform(1, 99999))}});
          }
        }
      } else if (dice < 360) {
        if (m.accounts.empty()) return;
        command = "TransferNoted";
        const auto account = m.accounts[m.uniform(0, static_cast<std::int64_t>(m.accounts.size()) - 1)];
        const auto transfer = fmt::format("t{}", m.next_transfer);
        emit_event(tx, name_, via, m.uuid(), "transfer", transfer, command,
                   json{{"account_id", account}, {"transfer_id", transfer}, {"amount", m.uniform(1, 500)}});
      } else if (dice < 480 || m.items.size() < 10) {
        command = m.chance(0.3) ? "item insert (TOAST)" : "item insert";
        const auto id = m.next_item;
        tx.exec(fmt::format("INSERT INTO {}.items (id, name, qty, price, updated_at, tags, doc, big) VALUES ($1::bigint, "
                            "$2::text, $3::int, $4::numeric, now(), ARRAY['t' || $3::text, 'x'], "
                            "jsonb_build_object('n', $3::int, 's', $2::text), CASE WHEN $5::boolean THEN (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 330)) "
                            "END)",
                            name_),
                {std::to_string(id), fmt::format("item {}", id), std::to_string(m.uniform(0, 1000)),
                 fmt::format("{}.{:02}", m.uniform(0, 9999), m.uniform(0, 99)),
                 command == "item insert" ? "false" : "true"});
        inserted_item = id;
      } else if (dice < 640) {
        command = "item update (big unchanged)";
        tx.exec(fmt::format("UPDATE {}.items SET name = $2, qty = qty + 1, price = price + 1, updated_at = now(), "
                            "doc = jsonb_set(doc, '{{n}}', to_jsonb(qty + 1)) WHERE id = $1",
                            name_),
                {std::to_string(m.any_of(m.items)), fmt::format("renamed {}", m.uniform(0, 99999))});
      } else if (dice < 660) {
        command = "item update big";
        tx.exec(fmt::format("UPDATE {}.items SET big = (SELECT string_agg(md5(random()::text), '') FROM "
                            "generate_series(1, 300)), updated_at = now() WHERE id = $1",
                            name_),
                {std::to_string(m.any_of(m.items))});
      } else if (dice < 700) {
        command = "item delete";
        const auto id = m.any_of(m.items);
        tx.exec(fmt::format("DELETE FROM {}.items WHERE id = $1", name_), {std::to_string(id)});
        removed_item = id;
      } else if (dice < 730) {
        if (m.deleted_items.empty()) return;
        command = "item re-insert";
        const auto id = m.any_of(m.deleted_items);
        tx.exec(fmt::format("INSERT INTO {}.items (id, name, qty, price, updated_at, tags, doc) VALUES ($1, "
                            "'back again', 1, 1.00, now(), ARRAY['again'], '{{\"n\": 1, \"s\": \"again\"}}')",
                            name_),
                {std::to_string(id)});
        inserted_item = id;
      } else if (dice < 760) {
        command = "item primary-key change";
        // Prefer rows with a TOASTed value: the new key must keep it (issue 14, point 4).
        const auto with_big = tx.exec(fmt::format(
            "SELECT id FROM {}.items WHERE big IS NOT NULL ORDER BY random() LIMIT 1", name_));
        const auto from = with_big.rows() > 0 ? std::stoll(std::string(with_big.value(0, 0))) : m.any_of(m.items);
        const auto to = m.next_item;
        tx.exec(fmt::format("UPDATE {}.items SET id = $2, updated_at = now() WHERE id = $1", name_),
                {std::to_string(from), std::to_string(to)});
        moved_item = {from, to};
      } else if (dice < 840) {
        command = "kv upsert";
        tx.exec(fmt::format("INSERT INTO {}.kv (k, v, flag) VALUES ($1, $2, $3) ON CONFLICT (k) DO UPDATE SET v = "
                            "EXCLUDED.v, flag = EXCLUDED.flag",
                            name_),
                {fmt::format("k{}", m.uniform(1, 150)), std::to_string(m.uniform(0, 1000000)),
                 m.chance(0.5) ? "true" : "false"});
      } else if (dice < 870) {
        command = "kv delete";
        tx.exec(fmt::format("DELETE FROM {}.kv WHERE k = $1", name_), {fmt::format("k{}", m.uniform(1, 150))});
      } else if (dice < 960) {
        command = "log insert";
        tx.exec(fmt::format("INSERT INTO {}.log (n, note) SELECT $1::bigint + g, 'row ' || g FROM generate_series(0, "
                            "$2::int - 1) g",
                            name_),
                {std::to_string(m.next_log), std::to_string(m.uniform(1, 5))});
        m.next_log += 5;
      } else if (dice < 970) {
        command = "log truncate";
        tx.exec(fmt::format("TRUNCATE {}.log", name_));
      } else if (dice < 980) {
        command = "log truncate + inserts";
        tx.exec(fmt::format("TRUNCATE {}.log", name_));
        tx.exec(fmt::format("INSERT INTO {}.log (n, note) SELECT $1::bigint + g, 'after truncate' FROM "
                            "generate_series(0, 49) g",
                            name_),
                {std::to_string(m.next_log)});
        m.next_log += 50;
      } else if (dice < 985) {
        command = "kv truncate";
        tx.exec(fmt::format("TRUNCATE {}.kv", name_));
      } else {
        command = "kv truncate + inserts";
        tx.exec(fmt::format("TRUNCATE {}.kv", name_));
        tx.exec(fmt::format("INSERT INTO {}.kv (k, v, flag) SELECT 'k' || g, g, g % 2 = 0 FROM generate_series(1, "
                            "$1::int) g",
                            name_),
                {std::to_string(m.uniform(5, 60))});
      }
      // A share of the row changes carries a domain event in the same transaction.
      if (command.rfind("item", 0) == 0 && !m.accounts.empty() && m.chance(0.2)) {
        const auto account = m.accounts[m.uniform(0, static_cast<std::int64_t>(m.accounts.size()) - 1)];
        emit_event(tx, name_, via, m.uuid(), "account", account, "Deposited",
                   json{{"account_id", account}, {"amount", m.uniform(1, 1000)}});
      }
      tx.commit();
      if (opened) m.accounts.push_back(*opened);
      if (command == "TransferNoted" || command == "AccountOpened + TransferNoted") ++m.next_transfer;
      if (inserted_item) {
        m.items.insert(*inserted_item);
        m.deleted_items.erase(*inserted_item);
        m.next_item = std::max(m.next_item, *inserted_item + 1);
      }
      if (removed_item) {
        m.items.erase(*removed_item);
        m.deleted_items.insert(*removed_item);
      }
      if (moved_item) {
        m.items.erase(moved_item->first);
        m.deleted_items.insert(moved_item->first);
        m.items.insert(moved_item->second);
        m.next_item = moved_item->second + 1;
      }
    }
    std::lock_guard lock(mutex_);
    ++counts_.ok[command];
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      auto& error = counts_.first_error[command.empty() ? "?" : command];
      if (error.empty()) error = e.what();
    }
    // A fault (the write database crashed, a key the model believed in is gone): count it, and
    // reconnect and reload the model when the connection is gone.
    if (m.db && !m.db->is_open()) m.db.reset();
    if (m.db) {
      try {
        m.db->exec("SELECT 1");
      } catch (const std::exception&) {
        m.db.reset();
      }
    }
    std::lock_guard lock(mutex_);
    ++counts_.failed[command.empty() ? "?" : command];
  }
}

}  // namespace syncline::test::faults
