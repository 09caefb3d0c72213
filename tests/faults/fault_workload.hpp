// The fault checker's write side: its own schema (keyed tables, a table without a primary key, a
// ledger of every domain event), the syncline.yaml of a run, and a seeded workload thread that
// writes outbox rows, logical messages and row changes of every kind the checker compares.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace syncline::test::faults {

// Tables of schema `name` (all captured, all mirrored into read PostgreSQL):
//   items (id PK, …, big text TOASTed, stored uncompressed) — inserts, updates that leave `big`
//         unchanged, deletes, re-inserts of deleted keys, primary-key changes; mirrored into the index
//         <name>_items too;
//   kv    (k PK, v, flag) — upserts, deletes, TRUNCATE alone and TRUNCATE + inserts in one
//         transaction; mirrored into the index <name>_mixed beside the account documents;
//   bulk  (id PK, grp, v) — `prefill_rows` rows before the producer starts (its initial snapshot),
//         then single transactions of 21,000 rows;
//   log   (no primary key: append-only) — inserts, TRUNCATE alone and TRUNCATE + inserts.
// ledger (not captured) records every domain event in the transaction that emits it: the history
// the checker counts with. The outbox is public.<name>_outbox.
void create_write_schema(const std::string& dsn, const std::string& name, int prefill_rows);

struct RunConfig {
  std::string name;
  std::string path;
  int producer_port = 0;
  int pg_port = 0;
  int es_port = 0;
};

// Writes /tmp/<name>.yaml: producer (initial snapshot, 5,000 events per Kafka transaction), the pg
// mirror of the four tables and the SQL projection `accounts` (counters and an event log with no
// unique constraint), the es mirrors and the account mapping with partial updates, and ctl.
RunConfig write_run_config(const std::string& name);

// What the workload did, by command: committed, failed (a fault interrupted it; in doubt when the
// COMMIT was lost).
struct WorkloadCounts {
  std::map<std::string, std::int64_t> ok;
  std::map<std::string, std::int64_t> failed;
  std::map<std::string, std::string> first_error;  // by command: the first failure's message
  std::int64_t reconnects = 0;
};

// Owns one thread that writes `rate` transactions per second until stop(); it reconnects by itself
// when the write database restarts. big_transaction() asks it for one 21,000-row transaction next.
class Workload {
 public:
  Workload(std::string dsn, std::string name, std::uint64_t seed, double rate, int prefill_rows);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  void start();
  void stop();
  void big_transaction() { big_requested_ = true; }
  bool big_pending() const { return big_requested_; }
  std::int64_t big_done() const { return big_done_; }
  WorkloadCounts counts() const;

 private:
  struct Model;
  void run();
  void one(Model& model);

  std::string dsn_;
  std::string name_;
  std::uint64_t seed_;
  double rate_;
  int prefill_rows_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> big_requested_{false};
  std::atomic<std::int64_t> big_done_{0};
  mutable std::mutex mutex_;
  WorkloadCounts counts_;
  std::thread thread_;
};

}  // namespace syncline::test::faults
