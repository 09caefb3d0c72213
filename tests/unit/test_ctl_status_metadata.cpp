// The es-projector's offset commit metadata, which syncline-ctl status reads its freshness from.
// (Its own file: consumers/es headers and common/json_schema.hpp both define a SchemaPath.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "consumers/es/es_projector_service.hpp"

namespace syncline::es_projector {
namespace {

// ---------------------------------------------------------------------------------------------
// The es-projector's commit metadata

TEST(EsCommitMetadata, carries_the_events_commit_lsn_and_time_and_parses_back) {
  const nlohmann::json envelope{{"source", {{"commit_lsn", "0/16B3800"}, {"commit_ts", "2026-11-22T10:00:00.125Z"}}}};
  const auto metadata = commit_metadata_of(envelope);
  ASSERT_TRUE(metadata.has_value());
  EXPECT_EQ(*metadata, R"({"commit_lsn":"0/16B3800","commit_ts":"2026-11-22T10:00:00.125Z"})");
  const auto parsed = parse_commit_metadata(*metadata);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->commit_lsn, "0/16B3800");
  EXPECT_EQ(parsed->commit_ts, "2026-11-22T10:00:00.125Z");
}

TEST(EsCommitMetadata, none_without_a_source_position_and_none_from_foreign_metadata) {
  EXPECT_FALSE(commit_metadata_of(nlohmann::json{{"payload", 1}}).has_value());
  EXPECT_FALSE(parse_commit_metadata("").has_value());
  EXPECT_FALSE(parse_commit_metadata("not json").has_value());
  EXPECT_FALSE(parse_commit_metadata("{}").has_value());
}

}  // namespace
}  // namespace syncline::es_projector
