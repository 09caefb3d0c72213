// The producer's stage boundaries: a decoded change of a committed transaction (what the WAL reader
// hands on) and a Kafka record ready to publish (what the router makes of it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "common/lsn.hpp"
#include "producer/pgoutput.hpp"
#include "producer/relation_cache.hpp"

namespace syncline::producer {

// The transaction a change belongs to. pgoutput (protocol 1) sends a transaction only once it has
// committed, and its Begin message already carries the commit LSN, time and xid.
struct TransactionInfo {
  Lsn commit_lsn;         // the position the producer stores and, once published, confirms
  std::string commit_ts;  // ISO-8601 UTC
  Xid xid = 0;
  bool snapshot = false;  // rows read from a snapshot, not from the WAL
};

enum class ChangeKind { insert, update, remove, truncate, message };

// One change, valid only during the call that receives it: the relation pointers refer into the
// RelationCache of the stream that decoded it.
struct SourceChange {
  ChangeKind kind = ChangeKind::insert;
  const TransactionInfo* txn = nullptr;
  Lsn lsn;                // WAL position of the change itself
  std::uint64_t seq = 0;  // 1-based position within its transaction, counting every change
  const RelationInfo* relation = nullptr;              // insert, update, remove
  std::vector<const RelationInfo*> truncated;          // truncate
  std::optional<OldTuple> old_tuple;                   // update (if sent), remove
  TupleData new_tuple;                                 // insert, update
  std::optional<LogicalDecodingMessage> message;       // message
};

enum class RecordKind { event, dead_letter };

// A Kafka record of the published stream, with the source position it came from.
struct OutgoingRecord {
  RecordKind kind = RecordKind::event;
  kafka::OutgoingMessage message;
  Lsn commit_lsn;
  std::uint64_t seq = 0;
  // A truncate: the sink writes one copy to every partition of the topic, so that in each partition it
  // follows every row committed before it and precedes every row committed after (message.partition
  // is ignored). docs/PRODUCER.md "TRUNCATE".
  bool every_partition = false;
};

}  // namespace syncline::producer
