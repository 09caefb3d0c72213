// PgToastFetcher: the router's ToastFetcher over an SQL connection to the write database.
#pragma once

#include <chrono>
#include <functional>

#include "common/pg.hpp"
#include "producer/event_router.hpp"

namespace syncline::producer {

// Uses a connection it does not own, on the pipeline's thread. Sets the session's DateStyle, TimeZone
// and extra_float_digits to the replication connection's, so values read here have the same text
// forms as the stream's.
//
// Each read is one statement that also says whether its snapshot sees the change's transaction; while
// it does not, the fetcher pauses (`pause`, which returns true when a stop was requested) and reads
// again, warning every `warn_every` that it is waiting and why.
class PgToastFetcher final : public ToastFetcher {
 public:
  using Pause = std::function<bool(std::chrono::milliseconds)>;
  explicit PgToastFetcher(pg::PgConnection& connection, Pause pause = {},
                          std::chrono::milliseconds warn_every = std::chrono::seconds(10));

  std::optional<std::vector<std::optional<std::string>>> fetch(const RelationInfo& relation,
                                                               const std::vector<std::string>& key_columns,
                                                               const std::vector<std::string>& key,
                                                               const std::vector<std::string>& columns,
                                                               Xid xid) override;

 private:
  pg::PgConnection& connection_;
  Pause pause_;
  std::chrono::milliseconds warn_every_;
};

}  // namespace syncline::producer
