// OffsetStore: syncline.offsets in the read database (see offset_store.hpp).
#include "consumers/pg/offset_store.hpp"

namespace syncline::pg_projector {

namespace {

// Bump when the function's body changes: CREATE OR REPLACE runs only for an older version.
constexpr std::string_view kSchemaVersion = "syncline.offsets v2";

// The function's signature, for COMMENT ON (and the one v1 had, dropped by the migration).
constexpr std::string_view kAdvanceSignature =
    "syncline.advance_offset(text,text,integer,bigint,bigint,pg_lsn,timestamptz,bigint,text)";

constexpr const char* kSchemaSql = R"sql(
CREATE SCHEMA IF NOT EXISTS syncline;
CREATE TABLE IF NOT EXISTS syncline.offsets (
  consumer_group  text        NOT NULL,
  topic           text        NOT NULL,
  partition       integer     NOT NULL,
  next_offset     bigint      NOT NULL,
  last_commit_lsn pg_lsn,
  last_commit_ts  timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
-- v2: the fingerprint of the topic (the last applied record's offset and event id).
ALTER TABLE syncline.offsets ADD COLUMN IF NOT EXISTS last_offset bigint,
                             ADD COLUMN IF NOT EXISTS last_event_id text;
DROP FUNCTION IF EXISTS syncline.advance_offset(text, text, integer, bigint, bigint, pg_lsn, timestamptz);
CREATE OR REPLACE FUNCTION syncline.advance_offset(p_group text, p_topic text, p_partition integer,
    p_expected bigint, p_next bigint, p_lsn pg_lsn, p_commit_ts timestamptz,
    p_last_offset bigint, p_last_event_id text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_expected IS NULL THEN
    INSERT INTO syncline.offsets (consumer_group, topic, partition, next_offset, last_commit_lsn, last_commit_ts,
                                  last_offset, last_event_id)
    VALUES (p_group, p_topic, p_partition, p_next, p_lsn, p_commit_ts, p_last_offset, p_last_event_id)
    ON CONFLICT DO NOTHING;
  ELSE
    UPDATE syncline.offsets
       SET next_offset = p_next,
           last_commit_lsn = coalesce(p_lsn, last_commit_lsn),
           last_commit_ts = coalesce(p_commit_ts, last_commit_ts),
           -- Offset and id go together: both new, or both kept.
           last_event_id = CASE WHEN p_last_offset IS NULL THEN last_event_id ELSE p_last_event_id END,
           last_offset = coalesce(p_last_offset, last_offset),
           updated_at = now()
     WHERE consumer_group = p_group AND topic = p_topic AND partition = p_partition
       AND next_offset = p_expected;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stored offset of group %, topic %, partition % is no longer %: another instance applied these events',
      p_group, p_topic, p_partition, coalesce(p_expected::text, '(none)')
      USING ERRCODE = 'SL001';
  END IF;
END
$fn$;
)sql";

}  // namespace

void OffsetStore::ensure_schema(pg::PgConnection& connection) {
  // Fast path without locks: the right version is already there.
  const auto current = connection.exec(
      "SELECT obj_description(p.oid, 'pg_proc') FROM pg_namespace n JOIN pg_proc p ON p.pronamespace = n.oid "
      "WHERE n.nspname = 'syncline' AND p.proname = 'advance_offset'");
  if (current.rows() == 1 && current.value(0, 0) == kSchemaVersion) return;
  pg::Transaction transaction(connection);
  // Concurrent CREATE ... IF NOT EXISTS / OR REPLACE can fail on catalog races: one at a time.
  transaction.exec("SELECT pg_advisory_xact_lock(hashtext('syncline.schema'))");
  transaction.exec(kSchemaSql);
  transaction.exec("COMMENT ON FUNCTION " + std::string(kAdvanceSignature) + " IS '" + std::string(kSchemaVersion) +
                   "'");
  transaction.commit();
}

std::map<kafka::TopicPartition, StoredOffset> OffsetStore::load(
    pg::PgConnection& connection, const std::vector<kafka::TopicPartition>& partitions) const {
  std::map<kafka::TopicPartition, StoredOffset> stored;
  if (partitions.empty()) return stored;
  std::string topics = "{";
  std::string numbers = "{";
  for (const auto& partition : partitions) {
    if (topics.size() > 1) {
      topics += ',';
      numbers += ',';
    }
    // Topic names are [A-Za-z0-9._-]: no quoting needed inside the array literal.
    topics += '"' + partition.topic + '"';
    numbers += std::to_string(partition.partition);
  }
  topics += '}';
  numbers += '}';
  const auto result = connection.exec(
      "SELECT o.topic, o.partition, o.next_offset, o.last_commit_lsn::text, o.last_offset, o.last_event_id "
      "FROM syncline.offsets o "
      "JOIN unnest($2::text[], $3::int[]) AS w(topic, partition) USING (topic, partition) "
      "WHERE o.consumer_group = $1",
      {group_, topics, numbers});
  for (int row = 0; row < result.rows(); ++row) {
    StoredOffset offset{std::stoll(std::string(result.value(row, 2))), std::nullopt, std::nullopt};
    if (!result.is_null(row, 3)) offset.last_commit_lsn = Lsn::parse(result.value(row, 3));
    if (!result.is_null(row, 4) && !result.is_null(row, 5))
      offset.last_applied = Fingerprint{std::stoll(std::string(result.value(row, 4))), std::string(result.value(row, 5))};
    stored[{std::string(result.value(row, 0)), std::stoi(std::string(result.value(row, 1)))}] = offset;
  }
  return stored;
}

void OffsetAdvance::record_source(const nlohmann::json& envelope) {
  if (!envelope.is_object() || !envelope.contains("source")) return;
  const nlohmann::json& source = envelope.at("source");
  if (!source.is_object()) return;
  if (source.contains("commit_lsn") && source.at("commit_lsn").is_string())
    last_commit_lsn = Lsn::parse(source.at("commit_lsn").get<std::string>());
  if (source.contains("commit_ts") && source.at("commit_ts").is_string())
    last_commit_ts = source.at("commit_ts").get<std::string>();
}

const std::string& OffsetStore::advance_sql() {
  static const std::string sql = "SELECT syncline.advance_offset($1, $2, $3, $4, $5, $6, $7, $8, $9)";
  return sql;
}

const std::string& OffsetStore::reset_sql() {
  static const std::string sql =
      "INSERT INTO syncline.offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, "
      "last_commit_lsn = NULL, last_commit_ts = NULL, last_offset = NULL, last_event_id = NULL, updated_at = now()";
  return sql;
}

std::vector<pg::Param> OffsetStore::reset_params(const kafka::TopicPartition& partition,
                                                 std::int64_t next_offset) const {
  return {group_, partition.topic, std::to_string(partition.partition), std::to_string(next_offset)};
}

std::vector<pg::Param> OffsetStore::advance_params(const OffsetAdvance& advance) const {
  return {group_,
          advance.partition.topic,
          std::to_string(advance.partition.partition),
          advance.expected ? pg::Param(std::to_string(*advance.expected)) : std::nullopt,
          std::to_string(advance.next_offset),
          advance.last_commit_lsn ? pg::Param(advance.last_commit_lsn->to_string()) : std::nullopt,
          advance.last_commit_ts,
          advance.last_applied ? pg::Param(std::to_string(advance.last_applied->offset)) : std::nullopt,
          advance.last_applied ? pg::Param(advance.last_applied->event_id) : std::nullopt};
}

}  // namespace syncline::pg_projector
