// FakeEventSink: an EventSink that records every call in order and can be told to fail, for unit tests
// of the producer's batching, resume and confirmation rules without Kafka.
#pragma once

#include <cstddef>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "producer/event_sink.hpp"

namespace syncline::producer {

// Lets gtest print positions in failed expectations instead of their bytes.
inline void PrintTo(const SourcePosition& position, std::ostream* out) {
  *out << encode_position(position);
}

}  // namespace syncline::producer

namespace syncline::producer::testing {

// One call the sink received. Only the fields of its kind are set.
struct SinkCall {
  enum class Kind { ensure_topics, begin, publish, commit };
  Kind kind = Kind::begin;
  std::vector<std::string> topics;  // ensure_topics
  OutgoingRecord record;            // publish
  SourcePosition position;          // commit
};

// Thrown by a call the test told to fail, so a test can tell it from a real error.
class InjectedSinkFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Single-threaded, like the pipeline that calls it. A failing call throws before it is logged, as a
// real sink's failed call leaves nothing durable behind.
class FakeEventSink : public EventSink {
 public:
  using Kind = SinkCall::Kind;

  // The `nth` (1-based) call of `kind` from now on throws InjectedSinkFailure.
  void fail_on(Kind kind, std::size_t nth) { failures_[kind] = calls_of(kind) + nth; }

  void ensure_topics(const std::vector<kafka::NewTopic>& topics) override {
    SinkCall call{.kind = Kind::ensure_topics, .topics = {}, .record = {}, .position = {}};
    for (const auto& topic : topics) call.topics.push_back(topic.name);
    record_call(std::move(call));
  }
  void begin() override { record_call({.kind = Kind::begin, .topics = {}, .record = {}, .position = {}}); }
  void publish(OutgoingRecord record) override {
    record_call({.kind = Kind::publish, .topics = {}, .record = std::move(record), .position = {}});
  }
  void commit(const SourcePosition& position) override {
    record_call({.kind = Kind::commit, .topics = {}, .record = {}, .position = position});
  }

  const std::vector<SinkCall>& calls() const { return calls_; }

  // The calls in a compact form for readable expectations: "begin", "publish <topic>",
  // "commit", "ensure_topics <topic> ...".
  std::vector<std::string> trace() const {
    std::vector<std::string> lines;
    for (const auto& call : calls_) {
      switch (call.kind) {
        case Kind::ensure_topics: {
          std::string line = "ensure_topics";
          for (const auto& topic : call.topics) line += " " + topic;
          lines.push_back(std::move(line));
          break;
        }
        case Kind::begin:
          lines.emplace_back("begin");
          break;
        case Kind::publish:
          lines.push_back("publish " + call.record.message.topic);
          break;
        case Kind::commit:
          lines.emplace_back("commit");
          break;
      }
    }
    return lines;
  }

  std::vector<SourcePosition> commits() const {
    std::vector<SourcePosition> positions;
    for (const auto& call : calls_) {
      if (call.kind == Kind::commit) positions.push_back(call.position);
    }
    return positions;
  }

  std::vector<OutgoingRecord> published() const {
    std::vector<OutgoingRecord> records;
    for (const auto& call : calls_) {
      if (call.kind == Kind::publish) records.push_back(call.record);
    }
    return records;
  }

  std::size_t calls_of(Kind kind) const {
    std::size_t count = 0;
    for (const auto& call : calls_) count += call.kind == kind ? 1 : 0;
    return count;
  }

 private:
  void record_call(SinkCall call) {
    if (const auto failure = failures_.find(call.kind);
        failure != failures_.end() && calls_of(call.kind) + 1 == failure->second) {
      failures_.erase(failure);
      throw InjectedSinkFailure("injected failure of a sink call");
    }
    calls_.push_back(std::move(call));
  }

  std::vector<SinkCall> calls_;
  std::map<Kind, std::size_t> failures_;  // kind -> the 1-based count of that kind's call that throws
};

}  // namespace syncline::producer::testing
