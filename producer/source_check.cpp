// The source-identity rules (see source_check.hpp).
#include "producer/source_check.hpp"

#include <fmt/format.h>

#include <charconv>
#include <sstream>

namespace syncline::producer {

std::vector<TimelineSwitch> parse_timeline_history(const std::string& content) {
  std::vector<TimelineSwitch> switches;
  std::istringstream lines(content);
  std::string line;
  while (std::getline(lines, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line.substr(first));
    std::string timeline_text;
    std::string lsn_text;
    fields >> timeline_text >> lsn_text;
    std::uint32_t timeline = 0;
    const auto [end, error] =
        std::from_chars(timeline_text.data(), timeline_text.data() + timeline_text.size(), timeline);
    const auto lsn = Lsn::parse(lsn_text);
    if (error != std::errc() || end != timeline_text.data() + timeline_text.size() || !lsn) {
      throw std::invalid_argument(fmt::format("malformed timeline history line '{}'", line));
    }
    switches.push_back({timeline, *lsn});
  }
  return switches;
}

std::optional<std::string> source_problem(const std::optional<SourcePosition>& stored, const SourceFacts& facts) {
  if (!stored || stored->fresh) return std::nullopt;
  const auto& then = stored->source;
  const std::string recover = fmt::format(
      "If the read models should follow this database from now on, run `{}` (the producer then starts a "
      "new source epoch with a new slot and a full snapshot of the captured tables); events committed "
      "between the stored position and now that are no longer in the WAL cannot be recovered.",
      kNewSourceCommand);
  if (!then.system_id.empty() && then.system_id != facts.now.system_id) {
    return fmt::format(
        "the write database is another system: its system identifier is {}, but the positions stored in Kafka "
        "(up to commit {}) were published from system {}. Streaming would skip or repeat events. {}",
        facts.now.system_id, stored->commit_lsn, then.system_id, recover);
  }
  if (!facts.slot.exists) {
    return fmt::format(
        "replication slot \"{}\" is missing, but a position is stored in Kafka (commit {}, confirmed up to {}): "
        "the slot was dropped, or the database was restored or failed over to a server without it, so the WAL "
        "since that position may be gone. A new slot would silently start later. {}",
        facts.slot_name, stored->commit_lsn, stored->end_lsn, recover);
  }
  if (facts.server_wal < stored->end_lsn) {
    return fmt::format(
        "the write database's WAL ends at {}, before the position already published to Kafka ({}): the "
        "database was restored from a backup or rewound, and new transactions would be skipped as already "
        "published. {}",
        facts.server_wal, stored->end_lsn, recover);
  }
  if (!then.system_id.empty() && then.timeline != facts.now.timeline) {
    if (facts.now.timeline < then.timeline) {
      return fmt::format(
          "the write database is on timeline {}, older than timeline {} of the stored position (commit {}): it "
          "was restored from an older backup. {}",
          facts.now.timeline, then.timeline, stored->commit_lsn, recover);
    }
    const TimelineSwitch* ended = nullptr;
    for (const auto& step : facts.history)
      if (step.timeline == then.timeline) ended = &step;
    if (ended == nullptr) {
      return fmt::format(
          "the write database is on timeline {} and its history does not contain timeline {} of the stored "
          "position (commit {}). {}",
          facts.now.timeline, then.timeline, stored->commit_lsn, recover);
    }
    if (stored->end_lsn > ended->switchpoint) {
      return fmt::format(
          "the write database switched from timeline {} to {} at {}, before the position already published "
          "({}): the events after the switch point belong to a history this server does not have. {}",
          then.timeline, facts.now.timeline, ended->switchpoint, stored->end_lsn, recover);
    }
  }
  return std::nullopt;
}

std::optional<PublishedTransaction> expected_first_transaction(const std::optional<SourcePosition>& stored,
                                                               Lsn confirmed) {
  if (!stored || stored->fresh || !stored->last_published) return std::nullopt;
  // PostgreSQL skips the transactions whose commit record starts before the confirmed position, and
  // resends the others; the producer confirms commit ends, so a published transaction at or after the
  // confirmed position is resent.
  if (stored->last_published->commit_lsn < confirmed) return std::nullopt;
  return stored->last_published;
}

}  // namespace syncline::producer
