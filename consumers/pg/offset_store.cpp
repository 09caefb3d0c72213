// OffsetStore: syncline.offsets in the read database (see offset_store.hpp).
#include "consumers/pg/offset_store.hpp"

namespace syncline::pg_projector {

namespace {

// Bump when the function's body changes: CREATE OR REPLACE runs only for an older version.
constexpr std::string_view kSchemaVersion = "syncline.offsets v1";

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
CREATE OR REPLACE FUNCTION syncline.advance_offset(p_group text, p_topic text, p_partition integer,
    p_expected bigint, p_next bigint, p_lsn pg_lsn, p_commit_ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_expected IS NULL THEN
    INSERT INTO syncline.offsets (consumer_group, topic, partition, next_offset, last_commit_lsn, last_commit_ts)
    VALUES (p_group, p_topic, p_partition, p_next, p_lsn, p_commit_ts)
    ON CONFLICT DO NOTHING;
  ELSE
    UPDATE syncline.offsets
       SET next_offset = p_next,
           last_commit_lsn = coalesce(p_lsn, last_commit_lsn),
           last_commit_ts = coalesce(p_commit_ts, last_commit_ts),
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
  transaction.exec(std::string("COMMENT ON FUNCTION syncline.advance_offset(text,text,integer,bigint,bigint,pg_lsn,"
                               "timestamptz) IS '") +
                   std::string(kSchemaVersion) + "'");
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
      "SELECT o.topic, o.partition, o.next_offset, o.last_commit_lsn::text FROM syncline.offsets o "
      "JOIN unnest($2::text[], $3::int[]) AS w(topic, partition) USING (topic, partition) "
      "WHERE o.consumer_group = $1",
      {group_, topics, numbers});
  for (int row = 0; row < result.rows(); ++row) {
    StoredOffset offset{std::stoll(std::string(result.value(row, 2))), std::nullopt};
    if (!result.is_null(row, 3)) offset.last_commit_lsn = Lsn::parse(result.value(row, 3));
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
  static const std::string sql = "SELECT syncline.advance_offset($1, $2, $3, $4, $5, $6, $7)";
  return sql;
}

std::vector<pg::Param> OffsetStore::advance_params(const OffsetAdvance& advance) const {
  return {group_,
          advance.partition.topic,
          std::to_string(advance.partition.partition),
          advance.expected ? pg::Param(std::to_string(*advance.expected)) : std::nullopt,
          std::to_string(advance.next_offset),
          advance.last_commit_lsn ? pg::Param(advance.last_commit_lsn->to_string()) : std::nullopt,
          advance.last_commit_ts};
}

}  // namespace syncline::pg_projector
