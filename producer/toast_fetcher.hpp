// PgToastFetcher: the router's ToastFetcher over an SQL connection to the write database.
#pragma once

#include "common/pg.hpp"
#include "producer/event_router.hpp"

namespace syncline::producer {

// Uses a connection it does not own, on the pipeline's thread. Sets the session's DateStyle, TimeZone
// and extra_float_digits to the replication connection's, so values read here have the same text
// forms as the stream's.
class PgToastFetcher final : public ToastFetcher {
 public:
  explicit PgToastFetcher(pg::PgConnection& connection);

  std::optional<std::vector<std::optional<std::string>>> fetch(const RelationInfo& relation,
                                                               const std::vector<std::string>& key_columns,
                                                               const std::vector<std::string>& key,
                                                               const std::vector<std::string>& columns) override;

 private:
  pg::PgConnection& connection_;
};

}  // namespace syncline::producer
