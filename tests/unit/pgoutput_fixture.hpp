// Reads the pgoutput message fixtures captured from a real PostgreSQL (tests/fixtures/pgoutput).
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/lsn.hpp"
#include "producer/pgoutput.hpp"
#include "syncline_source_dir.hpp"

namespace syncline::producer::testing {

// One line of a fixture: the slot function's lsn and xid columns, and the message bytes.
struct FixtureMessage {
  Lsn lsn;
  Xid xid = 0;
  std::string bytes;
};

struct PgoutputFixture {
  std::string scenario;
  int protocol_version = 1;
  std::vector<FixtureMessage> messages;
};

inline std::string hex_to_bytes(const std::string& hex) {
  if (hex.size() % 2 != 0) throw std::runtime_error("odd-length hex: " + hex.substr(0, 40));
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return bytes;
}

// `scenario` is the file name without ".hex". Throws if the file is missing or malformed, so a test
// never passes on an empty fixture.
inline PgoutputFixture load_fixture(const std::string& scenario) {
  const std::string path = std::string(SYNCLINE_SOURCE_DIR) + "/tests/fixtures/pgoutput/" + scenario + ".hex";
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot open fixture " + path);
  PgoutputFixture fixture{scenario, 1, {}};
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty()) continue;
    if (line.front() == '#') {
      if (const auto at = line.find("proto_version "); at != std::string::npos) {
        fixture.protocol_version = std::stoi(line.substr(at + 14));
      }
      continue;
    }
    std::istringstream fields(line);
    std::string lsn, hex;
    Xid xid = 0;
    if (!(fields >> lsn >> xid >> hex))
      throw std::runtime_error("malformed fixture line in " + path + ": " + line);
    fixture.messages.push_back({Lsn::from_string(lsn), xid, hex_to_bytes(hex)});
  }
  if (fixture.messages.empty()) throw std::runtime_error("fixture " + path + " has no messages");
  return fixture;
}

// Every fixture, for the tests that must hold for all captured messages.
inline const std::vector<std::string>& all_fixture_scenarios() {
  static const std::vector<std::string> scenarios{"insert_all_types",
                                                  "setup_rows",
                                                  "update_delete_default_identity",
                                                  "update_full_identity",
                                                  "no_primary_key",
                                                  "unchanged_toast",
                                                  "truncate",
                                                  "logical_messages",
                                                  "origin",
                                                  "streaming_v2"};
  return scenarios;
}

// Decodes a whole fixture in order, as the producer would.
inline std::vector<PgoutputMessage> decode_fixture(const PgoutputFixture& fixture) {
  PgoutputDecoder decoder(fixture.protocol_version);
  std::vector<PgoutputMessage> decoded;
  decoded.reserve(fixture.messages.size());
  for (const auto& message : fixture.messages) decoded.push_back(decoder.decode(message.bytes));
  return decoded;
}

}  // namespace syncline::producer::testing
