// syncline-producer against the real stack: while another database of the same server writes tens of
// MB of WAL and the producer's own database is idle, heartbeats keep its slot from pinning that WAL.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "common/lsn.hpp"
#include "tests/integration/producer_test_support.hpp"
#include "tests/support/producer_harness.hpp"
#include "tests/support/stack_env.hpp"

namespace syncline::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kTargetWal = 96ULL << 20;  // traffic stops here, or after kMaxTraffic
constexpr std::uint64_t kMinWal = 32ULL << 20;     // less would not show a pinned slot clearly
constexpr auto kMaxTraffic = 60s;

// The same server and credentials, another database: a URI's path is replaced, a key/value DSN
// gets a later dbname (libpq lets the last one win).
std::string dsn_for_database(const std::string& dsn, const std::string& database) {
  const auto scheme = dsn.find("://");
  if (scheme == std::string::npos) return fmt::format("{} dbname={}", dsn, database);
  const auto path = dsn.find('/', scheme + 3);
  const auto query = dsn.find('?', scheme + 3);
  const auto host_end = std::min(path, query);
  const std::string rest = query == std::string::npos ? "" : dsn.substr(query);
  return fmt::format("{}/{}{}", dsn.substr(0, host_end), database, rest);
}

struct SlotSample {
  Lsn current;    // pg_current_wal_lsn()
  Lsn confirmed;  // confirmed_flush_lsn
  std::uint64_t retained = 0;  // current - restart_lsn: WAL the server keeps for this slot
};

SlotSample sample_slot(pg::PgConnection& db, const std::string& slot) {
  const auto result = db.exec(
      "SELECT pg_current_wal_lsn()::text, confirmed_flush_lsn::text, "
      "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
      {slot});
  if (result.rows() != 1) throw std::runtime_error("slot " + slot + " not found");
  return {Lsn::from_string(result.value(0, 0)), Lsn::from_string(result.value(0, 1)),
          std::stoull(std::string(result.value(0, 2)))};
}

TEST(ProducerIdleSlot, heavy_writes_to_another_database_do_not_pin_wal_in_the_idle_producers_slot) {
  ASSERT_TRUE(require_producer_stack());
  // The harness's heartbeat interval (1 s; it cannot be overridden) is the short interval under test.
  ProducerHarness harness("pidle", "  snapshot: never\n");
  ASSERT_TRUE(start_streaming(harness));
  auto& own_db = harness.write_db();  // used only to watch the slot: the producer's database stays idle

  const ScratchDatabase busy(own_db, unique_name("pidle_busy"));
  pg::PgConnection busy_db(dsn_for_database(stack_env().write_pg_dsn, busy.name()));
  busy_db.exec("CREATE TABLE wide (id bigint, filler text)");

  const SlotSample start = sample_slot(own_db, harness.slot());
  SlotSample sample = start;
  int confirmed_advances = 0;
  const auto traffic_until = std::chrono::steady_clock::now() + kMaxTraffic;
  while (sample.current.value() - start.current.value() < kTargetWal &&
         std::chrono::steady_clock::now() < traffic_until) {
    // About 11 MB of WAL: 20,000 rows of 512 bytes that do not compress.
    busy_db.exec("INSERT INTO wide SELECT g, repeat(md5(g::text || random()::text), 16) "
                 "FROM generate_series(1, 20000) AS g");
    const auto previous = sample.confirmed;
    sample = sample_slot(own_db, harness.slot());
    if (sample.confirmed > previous) ++confirmed_advances;
  }
  const Lsn traffic_end = sample.current;
  const std::uint64_t generated = traffic_end.value() - start.current.value();
  ASSERT_GE(generated, kMinWal) << "the busy database wrote too little WAL in " << kMaxTraffic.count() << " s";
  EXPECT_GE(confirmed_advances, 3) << "confirmed_flush_lsn must keep advancing while the other database writes";

  EXPECT_TRUE(poll_until([&] { return sample_slot(own_db, harness.slot()).confirmed >= traffic_end; }, 30s,
                         "confirmed_flush_lsn past the end of the other database's traffic"))
      << "producer log:\n" << harness.process().log_tail();
  // PostgreSQL moves a logical slot's restart_lsn only at xl_running_xacts records, which the
  // background writer logs every 15 s on a busy server (and checkpoints log), and then only to the
  // previous such record: a confirmed slot still retains up to about two of those intervals of WAL.
  // A slot whose position never moved would retain all of `generated` and more, forever; a quarter
  // of it is well above what a working producer retains once those records passed, and well below
  // what a pinned slot retains.
  std::uint64_t retained = 0;
  EXPECT_TRUE(poll_until(
      [&] {
        retained = sample_slot(own_db, harness.slot()).retained;
        return retained < generated / 4;
      },
      60s, fmt::format("retained WAL below a quarter of the {} bytes generated", generated)))
      << "the slot still retains " << retained << " bytes";
  std::printf("idle slot: %llu bytes of WAL written by the other database, confirmed_flush_lsn advanced %d times "
              "during it, %llu bytes retained afterwards\n",
              static_cast<unsigned long long>(generated), confirmed_advances,
              static_cast<unsigned long long>(retained));

  // The gauge is refreshed every 10 s from the same view; it must report the bounded value too.
  std::optional<double> retained_metric;
  EXPECT_TRUE(poll_until(
      [&] {
        retained_metric = metric_value(scrape_metrics(harness.http_port()), "syncline_producer_slot_retained_bytes");
        return retained_metric && *retained_metric < static_cast<double>(generated / 4);
      },
      30s, "syncline_producer_slot_retained_bytes on /metrics below a quarter of the WAL generated"))
      << "last value: " << (retained_metric ? std::to_string(*retained_metric) : "absent");
}

}  // namespace
}  // namespace syncline::test
