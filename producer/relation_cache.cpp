// RelationCache: the table schemas pgoutput announced with Relation messages.
#include "producer/relation_cache.hpp"

#include <fmt/format.h>

namespace syncline::producer {

std::optional<std::size_t> RelationInfo::column_index(std::string_view name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return i;
  }
  return std::nullopt;
}

std::vector<std::string> RelationInfo::key_columns() const {
  std::vector<std::string> names;
  if (replica_identity == ReplicaIdentity::full) return names;
  for (const auto& column : columns) {
    if (column.is_key) names.push_back(column.name);
  }
  return names;
}

const RelationInfo& RelationCache::apply(const RelationMessage& message) {
  auto& info = relations_[message.relation_id];
  info = RelationInfo{message.relation_id, message.schema, message.table, message.replica_identity,
                      message.columns};
  return info;
}

const RelationInfo* RelationCache::find(Oid relation_id) const {
  const auto it = relations_.find(relation_id);
  return it == relations_.end() ? nullptr : &it->second;
}

const RelationInfo& RelationCache::at(Oid relation_id) const {
  if (const auto* info = find(relation_id)) return *info;
  throw UnknownRelationError(
      fmt::format("relation id {} has no Relation message on this replication connection", relation_id));
}

}  // namespace syncline::producer
