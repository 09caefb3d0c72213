// syncline-ctl resync source: shows whether the producer would accept the write database as the
// source of its stored positions, and with --new-source accepts the database as it is now as a new
// source epoch (the recovery the producer's refusals name).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/envelope.hpp"
#include "common/metrics.hpp"
#include "common/pg.hpp"
#include "producer/kafka_event_sink.hpp"
#include "producer/position_reader.hpp"
#include "producer/replication_connection.hpp"
#include "producer/slot_manager.hpp"
#include "producer/source_check.hpp"
#include "tools/ctl/command.hpp"

namespace syncline::ctl {
namespace {

constexpr auto kKafkaTimeout = std::chrono::seconds(30);

struct SourceOptions {
  bool new_source = false;
  bool json = false;
};

kafka::Properties kafka_properties(const Config& config) {
  kafka::Properties properties(config.kafka.properties.begin(), config.kafka.properties.end());
  properties["bootstrap.servers"] = config.kafka.bootstrap_servers;
  properties.try_emplace("client.id", config.kafka.client_id);
  return properties;
}

std::string describe_position(const std::optional<producer::SourcePosition>& stored) {
  if (!stored) return "none";
  if (stored->fresh) return fmt::format("a new source accepted (epoch {}), the producer has not started on it yet", stored->epoch);
  return fmt::format("commit {} (confirmed up to {}), epoch {}, system {}, timeline {}", stored->commit_lsn,
                     stored->end_lsn, stored->epoch,
                     stored->source.system_id.empty() ? "(not recorded)" : stored->source.system_id,
                     stored->source.timeline);
}

int run_source(const GlobalOptions& global, const SourceOptions& options) {
  const Config config = load_ctl_config(global);
  const ProducerConfig& producer = config.producer;
  const std::string& dsn = config.require_write_db().dsn;
  const auto properties = kafka_properties(config);
  const auto topics = producer::position_topics_for(config);

  pg::PgConnection sql(dsn);
  producer::SlotManager slots(sql);
  producer::ReplicationConnection replication(dsn);
  const producer::SystemIdentity identity = replication.identify_system();
  producer::SourceFacts facts;
  facts.now = {identity.system_id, static_cast<std::uint32_t>(identity.timeline)};
  facts.server_wal = identity.wal_flush;
  facts.slot_name = producer.slot;
  facts.slot = slots.slot_state(producer.slot);

  auto stored = producer::read_stored_position(properties, topics, kKafkaTimeout);
  if (stored && !stored->fresh && !stored->source.system_id.empty() && stored->source.timeline != facts.now.timeline &&
      identity.timeline > 1) {
    facts.history = producer::parse_timeline_history(replication.timeline_history(identity.timeline));
  }
  const auto problem = producer::source_problem(stored, facts);

  if (!options.new_source) {
    nlohmann::json report = {{"slot", producer.slot},
                             {"slot_exists", facts.slot.exists},
                             {"system_id", facts.now.system_id},
                             {"timeline", facts.now.timeline},
                             {"server_wal", facts.server_wal.to_string()},
                             {"stored", describe_position(stored)},
                             {"accepted", !problem.has_value()}};
    if (problem) report["problem"] = *problem;
    if (options.json) {
      std::fputs((report.dump(2) + "\n").c_str(), stdout);
    } else {
      std::printf("write database: system %s, timeline %u, WAL at %s\n", facts.now.system_id.c_str(),
                  facts.now.timeline, facts.server_wal.to_string().c_str());
      std::printf("slot %s: %s\n", producer.slot.c_str(), facts.slot.exists ? "exists" : "missing");
      std::printf("stored position: %s\n", describe_position(stored).c_str());
      if (problem) {
        std::printf("the producer refuses this source: %s\n", problem->c_str());
      } else {
        std::printf("the producer accepts this source: nothing to do\n");
      }
    }
    return problem ? kExitProblem : kExitOk;
  }

  if (facts.slot.active) {
    throw Refused(fmt::format("slot {} is in use (walsender pid {}): stop the producer before accepting a new source",
                              producer.slot, facts.slot.active_pid.value_or(0)));
  }
  const std::uint32_t epoch = stored ? stored->epoch + 1 : 1;
  if (epoch > kMaxSourceEpoch) {
    throw Refused(fmt::format("the source epoch would pass {}, the highest the versions can carry", kMaxSourceEpoch));
  }
  // The producer's own sink: it fences any producer instance still alive with this transactional.id.
  metrics::Registry registry;
  producer::KafkaEventSink sink(producer::KafkaSinkOptions{properties, producer.transactional_id, topics.own, topics.key,
                                                           topics.shared},
                                registry);
  sink.ensure_topics({kafka::NewTopic{.name = topics.own,
                                      .partitions = 1,
                                      .replication_factor = producer.replication_factor,
                                      .config = {{"cleanup.policy", "compact"}}}});
  if (facts.slot.exists) {
    // The operator said the stream it holds is not to be continued: a new slot starts the new epoch.
    slots.drop_slot(producer.slot);
  }
  producer::SourcePosition fresh;
  fresh.fresh = true;
  fresh.epoch = epoch;
  fresh.source = facts.now;
  sink.begin();
  sink.commit(fresh);

  std::printf("accepted the write database (system %s, timeline %u) as source epoch %u of slot %s.\n",
              facts.now.system_id.c_str(), facts.now.timeline, epoch, producer.slot.c_str());
  if (facts.slot.exists) std::printf("dropped replication slot %s.\n", producer.slot.c_str());
  std::printf("previously stored: %s\n", describe_position(stored).c_str());
  std::printf(
      "Start the producer: it creates slot %s and %s. Every event of epoch %u outranks every older one\n"
      "in both sinks. Events committed after the old stored position that the WAL no longer held are not\n"
      "recovered: check the read models (syncline-ctl verify) and the application's own records.\n",
      producer.slot.c_str(),
      producer.snapshot == SnapshotMode::initial
          ? "publishes a snapshot of every captured table, each preceded by a truncate that removes what the "
            "sinks hold from older epochs"
          : "streams without a snapshot (producer.snapshot is never): the mirrors keep rows of the old source "
            "until you run syncline-ctl resync snapshot for each captured table",
      epoch);
  return kExitOk;
}

}  // namespace

void add_source_command(CLI::App& resync, const GlobalOptions& global, int& exit_code) {
  auto options = std::make_shared<SourceOptions>();
  CLI::App* command = resync.add_subcommand(
      "source", "Check the write database against the producer's stored positions; accept it as a new source");
  command->add_flag("--new-source", options->new_source,
                    "Accept the write database as it is now as a new source epoch (drops the slot, and the "
                    "producer starts anew with a snapshot)");
  command->add_flag("--json", options->json, "Print the check as JSON (without --new-source)");
  command->footer(
      "The producer stores the write database's system identifier and timeline with its position, and\n"
      "refuses to stream (exit code 3) when the database is another system, the slot is missing while a\n"
      "position is stored, the database's WAL ends before the published position, its timeline branched\n"
      "off before it, or the slot resends another transaction than the last one published. Each of\n"
      "these means events could be lost or published twice without anyone noticing.\n"
      "\n"
      "Without --new-source this command shows what the producer would decide (exit 0: accepted,\n"
      "1: refused, with the reason). With --new-source (the producer must be stopped) it records a new\n"
      "source epoch: it drops the slot if there is one, and stores a fresh position. The producer then\n"
      "creates a new slot and takes an initial snapshot; every event of the new epoch outranks every\n"
      "older one in both sinks, and each table's snapshot starts with a truncate of what the sinks hold\n"
      "from older epochs. Events that were committed but no longer in the WAL are not recovered.\n"
      "\n"
      "Exit codes: 0 accepted (or done), 1 the producer would refuse this source, 2 it could not run\n"
      "(a service unreachable, the producer still running).\n"
      "\n"
      "Examples:\n"
      "  syncline-ctl -c syncline.yaml resync source\n"
      "  syncline-ctl -c syncline.yaml resync source --new-source");
  command->callback([&global, &exit_code, options] { exit_code = run_source(global, *options); });
}

}  // namespace syncline::ctl
