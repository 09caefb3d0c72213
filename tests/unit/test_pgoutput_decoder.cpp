// Unit tests of the pgoutput decoder, replication frames and relation cache, on real captured messages.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <variant>

#include "producer/pgoutput.hpp"
#include "producer/relation_cache.hpp"
#include "producer/replication_frame.hpp"
#include "tests/unit/pgoutput_fixture.hpp"

namespace syncline::producer {
namespace {

using testing::decode_fixture;
using testing::load_fixture;

template <typename T>
const T& expect_kind(const PgoutputMessage& message) {
  if (!std::holds_alternative<T>(message)) {
    throw std::runtime_error("got a " + std::string(message_name(message)) + " message instead");
  }
  return std::get<T>(message);
}

// Big-endian field encoders for hand-made messages.
std::string be(std::uint64_t value, int size) {
  std::string out;
  for (int shift = (size - 1) * 8; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xffU);
  return out;
}
std::string cstr(const std::string& text) { return text + '\0'; }

std::string text_value(const TupleColumn& column) {
  EXPECT_EQ(column.kind, ColumnKind::text);
  return column.value;
}

// --- Decoding the captured transactions ---

TEST(PgoutputDecoder, DecodesBeginTypeRelationInsertsAndCommitOfOneTransaction) {
  const auto fixture = load_fixture("insert_all_types");
  const auto messages = decode_fixture(fixture);
  ASSERT_EQ(messages.size(), 8U);

  const auto& begin = expect_kind<BeginMessage>(messages[0]);
  const auto& type = expect_kind<TypeMessage>(messages[1]);
  const auto& relation = expect_kind<RelationMessage>(messages[2]);
  const auto& commit = expect_kind<CommitMessage>(messages[7]);
  EXPECT_EQ(begin.xid, fixture.messages[0].xid);
  EXPECT_EQ(begin.final_lsn, commit.commit_lsn);
  EXPECT_EQ(begin.commit_time, commit.commit_time);
  EXPECT_EQ(commit.end_lsn, fixture.messages[7].lsn);
  EXPECT_EQ(commit.flags, 0);
  EXPECT_LT(commit.commit_lsn, commit.end_lsn);
  // Captured in 2026 or later: a wrong epoch or byte order would be decades off.
  EXPECT_GE(commit.commit_time.to_iso8601(), "2026-");

  EXPECT_EQ(type.xid, std::nullopt);
  EXPECT_EQ(type.schema, "syncline_fixture");
  EXPECT_EQ(type.name, "mood");
  EXPECT_EQ(relation.columns.at(18).name, "c_mood");
  EXPECT_EQ(type.type_oid, relation.columns.at(18).type_oid);

  for (std::size_t i = 3; i < 7; ++i) {
    const auto& insert = expect_kind<InsertMessage>(messages[i]);
    EXPECT_EQ(insert.relation_id, relation.relation_id);
    EXPECT_EQ(insert.xid, std::nullopt);
    ASSERT_EQ(insert.new_tuple.size(), 26U);
    EXPECT_EQ(text_value(insert.new_tuple[0]), std::to_string(i - 2));
  }
  const auto& first = expect_kind<InsertMessage>(messages[3]).new_tuple;
  EXPECT_EQ(text_value(first[5]), "12345678901234567890.123456789");
  EXPECT_EQ(text_value(first[11]), "2026-11-22 10:00:00.123+00");
  EXPECT_EQ(text_value(first[14]), "\\x0102fffe");
  EXPECT_EQ(text_value(first[16]), "line1\ntab\t\"quoted\" \\back");
  EXPECT_EQ(text_value(first[20]), R"({"a b","c\"d","e\\f","NULL",NULL,""})");
  const auto& nulls = expect_kind<InsertMessage>(messages[6]).new_tuple;
  for (std::size_t column = 1; column < nulls.size(); ++column) {
    EXPECT_EQ(nulls[column], (TupleColumn{ColumnKind::null, {}})) << "column " << column;
  }
}

TEST(PgoutputDecoder, AnnouncesEveryColumnWithItsTypeOidTypmodAndKeyFlag) {
  const auto messages = decode_fixture(load_fixture("insert_all_types"));
  const auto& relation = expect_kind<RelationMessage>(messages[2]);
  EXPECT_EQ(relation.schema, "syncline_fixture");
  EXPECT_EQ(relation.table, "all_types");
  EXPECT_EQ(relation.replica_identity, ReplicaIdentity::default_identity);
  const auto mood = relation.columns.at(18).type_oid;
  EXPECT_GE(mood, 16384U);  // FirstNormalObjectId: a user-defined type
  const std::vector<RelationColumn> expected{{true, "id", 20, -1},
                                             {false, "c_int2", 21, -1},
                                             {false, "c_int4", 23, -1},
                                             {false, "c_int8", 20, -1},
                                             {false, "c_oid", 26, -1},
                                             {false, "c_numeric", 1700, -1},
                                             {false, "c_float4", 700, -1},
                                             {false, "c_float8", 701, -1},
                                             {false, "c_bool", 16, -1},
                                             {false, "c_json", 114, -1},
                                             {false, "c_jsonb", 3802, -1},
                                             {false, "c_timestamptz", 1184, -1},
                                             {false, "c_timestamp", 1114, -1},
                                             {false, "c_date", 1082, -1},
                                             {false, "c_bytea", 17, -1},
                                             {false, "c_uuid", 2950, -1},
                                             {false, "c_text", 25, -1},
                                             {false, "c_varchar", 1043, 24},
                                             {false, "c_mood", mood, -1},
                                             {false, "c_int4_array", 1007, -1},
                                             {false, "c_text_array", 1009, -1},
                                             {false, "c_int4_matrix", 1007, -1},
                                             {false, "c_bool_array", 1000, -1},
                                             {false, "c_numeric_array", 1231, -1},
                                             {false, "c_bytea_array", 1001, -1},
                                             {false, "c_jsonb_array", 3807, -1}};
  EXPECT_EQ(relation.columns, expected);
}

TEST(PgoutputDecoder, DecodesUpdatesAndDeletesWithTheOldTupleTheReplicaIdentityAsksFor) {
  const auto messages = decode_fixture(load_fixture("update_delete_default_identity"));
  ASSERT_EQ(messages.size(), 15U);
  const auto& accounts = expect_kind<RelationMessage>(messages[1]);
  EXPECT_EQ(accounts.table, "accounts");
  EXPECT_EQ(accounts.replica_identity, ReplicaIdentity::default_identity);

  // Default identity, key unchanged: PostgreSQL sends no old tuple at all.
  const auto& balance_update = expect_kind<UpdateMessage>(messages[2]);
  EXPECT_EQ(balance_update.relation_id, accounts.relation_id);
  EXPECT_EQ(balance_update.old_tuple, std::nullopt);
  EXPECT_EQ(balance_update.new_tuple,
            (TupleData{{ColumnKind::text, "1"}, {ColumnKind::text, "ada"}, {ColumnKind::text, "150.25"}}));

  // Key changed: the old key ('K'), other columns null.
  const auto& key_update = expect_kind<UpdateMessage>(messages[5]);
  ASSERT_TRUE(key_update.old_tuple.has_value());
  EXPECT_EQ(*key_update.old_tuple,
            (OldTuple{OldTupleKind::key,
                      {{ColumnKind::text, "2"}, {ColumnKind::null, {}}, {ColumnKind::null, {}}}}));
  EXPECT_EQ(text_value(key_update.new_tuple[0]), "3");

  // The ON UPDATE CASCADE of audit_log, REPLICA IDENTITY FULL: the whole old row ('O').
  const auto& audit = expect_kind<RelationMessage>(messages[6]);
  EXPECT_EQ(audit.table, "audit_log");
  EXPECT_EQ(audit.replica_identity, ReplicaIdentity::full);
  const auto& cascade = expect_kind<UpdateMessage>(messages[7]);
  EXPECT_EQ(cascade.relation_id, audit.relation_id);
  EXPECT_EQ(cascade.old_tuple,
            (OldTuple{OldTupleKind::full,
                      {{ColumnKind::text, "11"}, {ColumnKind::text, "2"}, {ColumnKind::text, "opened"}}}));
  EXPECT_EQ(text_value(cascade.new_tuple[1]), "3");

  const auto& audit_delete = expect_kind<DeleteMessage>(messages[10]);
  EXPECT_EQ(audit_delete.relation_id, audit.relation_id);
  EXPECT_EQ(audit_delete.old_tuple,
            (OldTuple{OldTupleKind::full,
                      {{ColumnKind::text, "10"}, {ColumnKind::text, "1"}, {ColumnKind::text, "opened"}}}));
  const auto& account_delete = expect_kind<DeleteMessage>(messages[13]);
  EXPECT_EQ(account_delete.relation_id, accounts.relation_id);
  EXPECT_EQ(account_delete.old_tuple,
            (OldTuple{OldTupleKind::key,
                      {{ColumnKind::text, "1"}, {ColumnKind::null, {}}, {ColumnKind::null, {}}}}));
}

TEST(PgoutputDecoder, DecodesAnUpdateOfAFullIdentityTableWithTheWholeOldRow) {
  const auto messages = decode_fixture(load_fixture("update_full_identity"));
  ASSERT_EQ(messages.size(), 4U);
  const auto& relation = expect_kind<RelationMessage>(messages[1]);
  for (const auto& column : relation.columns) EXPECT_TRUE(column.is_key) << column.name;
  const auto& update = expect_kind<UpdateMessage>(messages[2]);
  EXPECT_EQ(update.old_tuple,
            (OldTuple{OldTupleKind::full,
                      {{ColumnKind::text, "11"}, {ColumnKind::text, "3"}, {ColumnKind::text, "opened"}}}));
  EXPECT_EQ(update.new_tuple,
            (TupleData{{ColumnKind::text, "11"}, {ColumnKind::text, "3"}, {ColumnKind::text, "renamed"}}));
}

TEST(PgoutputDecoder, AnnouncesATableWithoutPrimaryKeyWithNoKeyColumn) {
  const auto messages = decode_fixture(load_fixture("no_primary_key"));
  ASSERT_EQ(messages.size(), 5U);
  const auto& relation = expect_kind<RelationMessage>(messages[1]);
  EXPECT_EQ(relation.table, "page_views");
  EXPECT_EQ(relation.replica_identity, ReplicaIdentity::default_identity);
  EXPECT_EQ(relation.columns,
            (std::vector<RelationColumn>{{false, "path", 25, -1}, {false, "viewed_at", 1184, -1}}));
  EXPECT_EQ(expect_kind<InsertMessage>(messages[3]).new_tuple,
            (TupleData{{ColumnKind::text, "/about"}, {ColumnKind::null, {}}}));
}

TEST(PgoutputDecoder, MarksAnUnchangedToastedColumnInsteadOfSendingIt) {
  const auto messages = decode_fixture(load_fixture("unchanged_toast"));
  ASSERT_EQ(messages.size(), 7U);
  const auto& insert = expect_kind<InsertMessage>(messages[2]);
  const auto body = text_value(insert.new_tuple.at(2));
  EXPECT_EQ(body.size(), 12800U);
  EXPECT_EQ(body.substr(0, 32), "c4ca4238a0b923820dcc509a6f75849b");  // md5('1')
  const auto& update = expect_kind<UpdateMessage>(messages[5]);
  EXPECT_EQ(update.old_tuple, std::nullopt);
  EXPECT_EQ(
      update.new_tuple,
      (TupleData{{ColumnKind::text, "1"}, {ColumnKind::text, "v2"}, {ColumnKind::unchanged_toast, {}}}));
}

TEST(PgoutputDecoder, DecodesTruncateOptionsAndTheRelationIdsItConcerns) {
  const auto messages = decode_fixture(load_fixture("truncate"));
  ASSERT_EQ(messages.size(), 9U);
  const auto& documents = expect_kind<RelationMessage>(messages[1]);
  const auto& plain = expect_kind<TruncateMessage>(messages[2]);
  EXPECT_EQ(plain, (TruncateMessage{std::nullopt, false, false, {documents.relation_id}}));

  const auto& accounts = expect_kind<RelationMessage>(messages[5]);
  const auto& audit = expect_kind<RelationMessage>(messages[6]);
  const auto& both = expect_kind<TruncateMessage>(messages[7]);
  EXPECT_TRUE(both.cascade);
  EXPECT_TRUE(both.restart_identity);
  EXPECT_EQ(both.relation_ids.size(), 2U);
  EXPECT_NE(std::find(both.relation_ids.begin(), both.relation_ids.end(), accounts.relation_id),
            both.relation_ids.end());
  EXPECT_NE(std::find(both.relation_ids.begin(), both.relation_ids.end(), audit.relation_id),
            both.relation_ids.end());
}

TEST(PgoutputDecoder, DecodesTransactionalAndNonTransactionalLogicalMessages) {
  const auto fixture = load_fixture("logical_messages");
  const auto messages = decode_fixture(fixture);
  ASSERT_EQ(messages.size(), 4U);
  expect_kind<BeginMessage>(messages[0]);
  EXPECT_EQ(expect_kind<LogicalDecodingMessage>(messages[1]),
            (LogicalDecodingMessage{std::nullopt, true, fixture.messages[1].lsn, "syncline",
                                    R"({"id":"e-1","type":"MessageSent","aggregate_type":"conversation",)"
                                    R"("aggregate_id":"c-42","payload":{"text":"hi"}})"}));
  expect_kind<CommitMessage>(messages[2]);
  EXPECT_EQ(
      expect_kind<LogicalDecodingMessage>(messages[3]),
      (LogicalDecodingMessage{std::nullopt, false, fixture.messages[3].lsn, "syncline-heartbeat", "beat"}));
}

TEST(PgoutputDecoder, DecodesTheOriginOfAReplayedTransaction) {
  const auto messages = decode_fixture(load_fixture("origin"));
  ASSERT_EQ(messages.size(), 5U);
  EXPECT_EQ(expect_kind<OriginMessage>(messages[1]),
            (OriginMessage{Lsn::from_string("0/ABCDEF"), "syncline_fixture_origin"}));
}

TEST(PgoutputDecoder, DecodesStreamedTransactionsUnderProtocolTwo) {
  const auto fixture = load_fixture("streaming_v2");
  ASSERT_EQ(fixture.protocol_version, 2);
  const auto messages = decode_fixture(fixture);
  ASSERT_EQ(messages.size(), 921U);

  // A committed transaction whose rolled-back subtransaction was streamed too.
  const auto& start = expect_kind<StreamStartMessage>(messages[0]);
  EXPECT_EQ(start.xid, fixture.messages[0].xid);
  EXPECT_TRUE(start.first_segment);
  EXPECT_EQ(expect_kind<RelationMessage>(messages[1]).xid, start.xid);
  const auto& abort_sub = expect_kind<StreamAbortMessage>(messages[459]);
  EXPECT_EQ(abort_sub.xid, start.xid);
  EXPECT_NE(abort_sub.subxid, start.xid);
  for (std::size_t i = 2; i < 458; ++i) {
    const auto& insert = expect_kind<InsertMessage>(messages[i]);
    const auto id = std::stoi(text_value(insert.new_tuple.at(0)));
    // Changes carry the xid of the (sub)transaction that made them.
    EXPECT_EQ(insert.xid, id <= 300 ? start.xid : abort_sub.subxid) << "row " << id;
  }
  expect_kind<StreamStopMessage>(messages[458]);
  const auto& commit = expect_kind<StreamCommitMessage>(messages[460]);
  EXPECT_EQ(commit.xid, start.xid);
  EXPECT_EQ(commit.end_lsn, fixture.messages[460].lsn);
  EXPECT_LT(commit.commit_lsn, commit.end_lsn);

  // A transaction aborted after it was streamed: the abort names it twice.
  const auto& second = expect_kind<StreamStartMessage>(messages[461]);
  expect_kind<StreamStopMessage>(messages[919]);
  EXPECT_EQ(expect_kind<StreamAbortMessage>(messages[920]), (StreamAbortMessage{second.xid, second.xid}));
}

// --- Robustness: no input makes the decoder read out of bounds or fail other than with DecodeError ---

TEST(PgoutputDecoder, ThrowsDecodeErrorForEveryFixtureMessageTruncatedAtEveryLength) {
  for (const auto& scenario : testing::all_fixture_scenarios()) {
    const auto fixture = load_fixture(scenario);
    PgoutputDecoder decoder(fixture.protocol_version);
    for (std::size_t index = 0; index < fixture.messages.size(); ++index) {
      const std::string& bytes = fixture.messages[index].bytes;
      for (std::size_t length = 0; length < bytes.size(); ++length) {
        auto copy = decoder;  // the state this message is decoded in
        // A heap copy of exactly `length` bytes, so ASan catches a read past the end.
        const std::string truncated = bytes.substr(0, length);
        EXPECT_THROW(copy.decode(truncated), DecodeError)
            << scenario << " message " << index << " at " << length;
      }
      decoder.decode(bytes);
    }
  }
}

TEST(PgoutputDecoder, EitherDecodesOrThrowsDecodeErrorForGarbledFixtureMessages) {
  constexpr std::array<int, 5> kReplacements{0x00, 0xff, 0x7f, 0x80, 'n'};
  for (const auto& scenario : testing::all_fixture_scenarios()) {
    const auto fixture = load_fixture(scenario);
    PgoutputDecoder decoder(fixture.protocol_version);
    // The streamed inserts all look alike: a few of them cover the layout.
    const auto limit = std::min<std::size_t>(fixture.messages.size(), 40);
    for (std::size_t index = 0; index < fixture.messages.size(); ++index) {
      const std::string& bytes = fixture.messages[index].bytes;
      if (index < limit || bytes.empty() || bytes[0] != 'I') {
        for (std::size_t at = 0; at < std::min<std::size_t>(bytes.size(), 256); ++at) {
          for (const int replacement : kReplacements) {
            auto garbled = bytes;
            garbled[at] = static_cast<char>(replacement);
            auto copy = decoder;
            try {
              copy.decode(garbled);
            } catch (const DecodeError&) {
              // expected for most: the point is that nothing else happens
            }
          }
        }
      }
      decoder.decode(bytes);
    }
  }
}

TEST(PgoutputDecoder, NamesTheExpectedFieldAndByteOffsetOfATruncatedMessage) {
  PgoutputDecoder decoder;
  try {
    decoder.decode(std::string("B\0\0\0", 4));
    FAIL() << "no DecodeError";
  } catch (const DecodeError& error) {
    EXPECT_EQ(error.offset(), 1U);
    EXPECT_STREQ(
        error.what(),
        "pgoutput Begin message at byte offset 1: expected Int64 final LSN (8 bytes), but only 3 bytes "
        "remain (message is 4 bytes)");
  }
}

TEST(PgoutputDecoder, RejectsAnEmptyMessage) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode(""), DecodeError);
}

TEST(PgoutputDecoder, RejectsAnUnknownMessageTypeAtOffsetZero) {
  PgoutputDecoder decoder;
  try {
    decoder.decode("Z");
    FAIL() << "no DecodeError";
  } catch (const DecodeError& error) {
    EXPECT_EQ(error.offset(), 0U);
    EXPECT_NE(std::string(error.what()).find("got 'Z' (0x5a)"), std::string::npos) << error.what();
  }
}

TEST(PgoutputDecoder, RejectsStreamMessagesUnderProtocolOne) {
  PgoutputDecoder decoder(1);
  EXPECT_THROW(decoder.decode("S" + be(7, 4) + be(1, 1)), DecodeError);
  EXPECT_FALSE(decoder.in_stream());
}

TEST(PgoutputDecoder, RejectsStreamStopOutsideAndBeginInsideAStreamBlock) {
  PgoutputDecoder decoder(2);
  EXPECT_THROW(decoder.decode("E"), DecodeError);
  decoder.decode("S" + be(7, 4) + be(1, 1));
  EXPECT_TRUE(decoder.in_stream());
  EXPECT_THROW(decoder.decode("B" + be(1, 8) + be(2, 8) + be(7, 4)), DecodeError);
  decoder.decode("E");
  EXPECT_FALSE(decoder.in_stream());
}

TEST(PgoutputDecoder, LeavesTheStreamStateUnchangedWhenAStreamStartFailsToDecode) {
  PgoutputDecoder decoder(2);
  EXPECT_THROW(decoder.decode("S" + be(7, 4) + be(1, 1) + "extra"), DecodeError);
  EXPECT_FALSE(decoder.in_stream());
}

TEST(PgoutputDecoder, RejectsTrailingBytesAfterAMessage) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode("B" + be(1, 8) + be(2, 8) + be(7, 4) + "x"), DecodeError);
}

TEST(PgoutputDecoder, RejectsANegativeColumnLength) {
  PgoutputDecoder decoder;
  const auto message = "I" + be(16384, 4) + "N" + be(1, 2) + "t" + be(0xffffffff, 4);
  try {
    decoder.decode(message);
    FAIL() << "no DecodeError";
  } catch (const DecodeError& error) {
    EXPECT_EQ(error.offset(), 9U);
  }
}

TEST(PgoutputDecoder, RejectsAnUnknownColumnKind) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode("I" + be(16384, 4) + "N" + be(1, 2) + "x"), DecodeError);
}

TEST(PgoutputDecoder, RejectsAMissingNewTupleMarker) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode("U" + be(16384, 4) + "K" + be(0, 2) + "K" + be(0, 2)), DecodeError);
  EXPECT_THROW(decoder.decode("D" + be(16384, 4) + "N" + be(0, 2)), DecodeError);
}

TEST(PgoutputDecoder, RejectsAnUnknownReplicaIdentity) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode("R" + be(16384, 4) + cstr("public") + cstr("t") + "x" + be(0, 2)), DecodeError);
}

TEST(PgoutputDecoder, RejectsAStringWithoutTerminator) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode("O" + be(1, 8) + "origin"), DecodeError);
}

TEST(PgoutputDecoder, DoesNotReserveMemoryForAnAbsurdRelationCount) {
  PgoutputDecoder decoder;
  EXPECT_THROW(decoder.decode("T" + be(0xffffffff, 4) + be(0, 1) + be(16384, 4)), DecodeError);
}

TEST(PgoutputDecoder, AcceptsOnlyProtocolVersionsOneAndTwo) {
  EXPECT_THROW(PgoutputDecoder(0), std::invalid_argument);
  EXPECT_THROW(PgoutputDecoder(3), std::invalid_argument);
  EXPECT_EQ(PgoutputDecoder(2).protocol_version(), 2);
}

TEST(PgoutputDecoder, NamesEveryMessageKind) {
  EXPECT_EQ(message_name(BeginMessage{}), "Begin");
  EXPECT_EQ(message_name(LogicalDecodingMessage{}), "Message");
  EXPECT_EQ(message_name(StreamAbortMessage{}), "Stream Abort");
}

// --- Replication CopyData frames ---

TEST(PgoutputReplicationFrame, DecodesXLogDataWithItsPayload) {
  const auto payload = load_fixture("logical_messages").messages[0].bytes;
  const auto frame = "w" + be(0x1A78A20, 8) + be(0x1A78B00, 8) + be(1, 8) + payload;
  const auto decoded = std::get<XLogData>(decode_replication_frame(frame));
  EXPECT_EQ(decoded.wal_start, Lsn{0x1A78A20});
  EXPECT_EQ(decoded.wal_end, Lsn{0x1A78B00});
  EXPECT_EQ(decoded.send_time, PgTimestamp{1});
  EXPECT_EQ(decoded.payload, payload);
  EXPECT_NO_THROW(expect_kind<BeginMessage>(PgoutputDecoder().decode(decoded.payload)));
}

TEST(PgoutputReplicationFrame, DecodesAPrimaryKeepaliveAndItsReplyRequest) {
  const auto frame = "k" + be(0x16B3748, 8) + be(817'034'400'000'000, 8) + be(1, 1);
  EXPECT_EQ(std::get<PrimaryKeepalive>(decode_replication_frame(frame)),
            (PrimaryKeepalive{Lsn{0x16B3748}, PgTimestamp{817'034'400'000'000}, true}));
}

TEST(PgoutputReplicationFrame, RejectsTruncatedOverlongAndUnknownFrames) {
  const auto keepalive = "k" + be(1, 8) + be(2, 8) + be(0, 1);
  for (std::size_t length = 0; length < keepalive.size(); ++length) {
    EXPECT_THROW(decode_replication_frame(keepalive.substr(0, length)), DecodeError) << length;
  }
  EXPECT_THROW(decode_replication_frame(keepalive + "x"), DecodeError);
  EXPECT_THROW(decode_replication_frame("w" + be(1, 8) + be(2, 8)), DecodeError);
  EXPECT_THROW(decode_replication_frame("x" + be(1, 8)), DecodeError);
}

TEST(PgoutputReplicationFrame, EncodesAStandbyStatusUpdateInNetworkByteOrder) {
  const StandbyStatusUpdate update{Lsn{0x0102030405060708}, Lsn{0x16B3748}, Lsn{0x16B3700},
                                   PgTimestamp{0x0a0b0c0d}, true};
  const auto expected =
      "r" + be(0x0102030405060708, 8) + be(0x16B3748, 8) + be(0x16B3700, 8) + be(0x0a0b0c0d, 8) + be(1, 1);
  EXPECT_EQ(encode_standby_status_update(update), expected);
  EXPECT_EQ(encode_standby_status_update(update).size(), 34U);
}

TEST(PgoutputTimestamp, CountsMicrosecondsFromTheYear2000InUtc) {
  EXPECT_EQ(PgTimestamp{0}.to_iso8601(), "2000-01-01T00:00:00Z");
  // 2026-11-22T10:00:00.125Z
  const PgTimestamp commit{848'656'800'125'000};
  EXPECT_EQ(commit.to_iso8601(), "2026-11-22T10:00:00.125Z");
  EXPECT_EQ(PgTimestamp{-1}.to_iso8601(), "1999-12-31T23:59:59.999999Z");
  EXPECT_EQ(PgTimestamp::from_sys_time(commit.to_sys_time()), commit);
  EXPECT_EQ(commit.to_sys_time().time_since_epoch().count(), 1'795'341'600'125'000);
}

TEST(PgoutputTimestamp, PrintsPostgresInfinitiesAndSaturatesInsteadOfOverflowing) {
  EXPECT_EQ(PgTimestamp{std::numeric_limits<std::int64_t>::max()}.to_iso8601(), "infinity");
  EXPECT_EQ(PgTimestamp{std::numeric_limits<std::int64_t>::min()}.to_iso8601(), "-infinity");
  EXPECT_EQ(
      PgTimestamp{std::numeric_limits<std::int64_t>::max() - 1}.to_sys_time().time_since_epoch().count(),
      std::numeric_limits<std::int64_t>::max());
}

// --- Relation cache ---

TEST(PgoutputRelationCache, KeepsTheLatestRelationMessageOfEachRelation) {
  const auto messages = decode_fixture(load_fixture("update_delete_default_identity"));
  const auto& accounts = expect_kind<RelationMessage>(messages[1]);
  RelationCache cache;
  const auto& info = cache.apply(accounts);
  EXPECT_EQ(info.schema, "syncline_fixture");
  EXPECT_EQ(info.table, "accounts");
  EXPECT_EQ(info.key_columns(), std::vector<std::string>{"id"});
  EXPECT_EQ(cache.at(accounts.relation_id).columns, accounts.columns);

  auto altered = accounts;
  altered.columns.push_back({false, "currency", 25, -1});
  cache.apply(altered);
  EXPECT_EQ(cache.size(), 1U);
  EXPECT_EQ(cache.at(accounts.relation_id).columns.size(), 4U);
}

TEST(PgoutputRelationCache, HasNoKeyColumnsForFullIdentityOrNoPrimaryKey) {
  RelationCache cache;
  const auto audit = expect_kind<RelationMessage>(decode_fixture(load_fixture("update_full_identity"))[1]);
  const auto views = expect_kind<RelationMessage>(decode_fixture(load_fixture("no_primary_key"))[1]);
  EXPECT_TRUE(cache.apply(audit).key_columns().empty());
  EXPECT_TRUE(cache.apply(views).key_columns().empty());
  EXPECT_EQ(cache.size(), 2U);
}

TEST(PgoutputRelationCache, ThrowsForARelationItWasNeverTold) {
  RelationCache cache;
  EXPECT_EQ(cache.find(42), nullptr);
  EXPECT_THROW(cache.at(42), UnknownRelationError);
}

}  // namespace
}  // namespace syncline::producer
