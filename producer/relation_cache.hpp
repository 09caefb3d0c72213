// RelationCache: the table schemas pgoutput announced with Relation messages, by relation id.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "producer/pgoutput.hpp"

namespace syncline::producer {

struct RelationInfo {
  Oid relation_id = 0;
  std::string schema;
  std::string table;
  ReplicaIdentity replica_identity = ReplicaIdentity::default_identity;
  std::vector<RelationColumn> columns;

  // The replica identity columns, in table order: the row-change key. Empty when there is none
  // (or the identity is FULL, where every column is flagged and the whole row is the key).
  std::vector<std::string> key_columns() const;
  // The position of column `name` in the relation's (and its tuples') column order.
  std::optional<std::size_t> column_index(std::string_view name) const;
  friend bool operator==(const RelationInfo&, const RelationInfo&) = default;
};

// A change names a relation PostgreSQL has not described on this connection: a protocol violation,
// since pgoutput always sends the Relation message first.
class UnknownRelationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owned by the replication stream reader, used on its thread. PostgreSQL sends a Relation message
// before the first change of a relation on a connection and again after its schema changes, so the
// latest message always wins. Nothing is evicted: a connection sees a bounded set of tables.
class RelationCache {
 public:
  const RelationInfo& apply(const RelationMessage& message);
  const RelationInfo* find(Oid relation_id) const;
  // Throws UnknownRelationError.
  const RelationInfo& at(Oid relation_id) const;
  std::size_t size() const { return relations_.size(); }

 private:
  std::unordered_map<Oid, RelationInfo> relations_;
};

}  // namespace syncline::producer
