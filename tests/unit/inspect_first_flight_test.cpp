// parse_server_first and scan_client_records (proxy/inspect/first_flight.hpp)
// on hand-built server answers and held client bytes.
#include "proxy/inspect/first_flight.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

using egressd::proxy::hello_retry_random;
using egressd::proxy::parse_server_first;
using egressd::proxy::record_scan;
using egressd::proxy::scan_client_records;
using egressd::proxy::server_first;
using bytes = std::vector<uint8_t>;

void append16(bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

bytes record(uint8_t type, const bytes& payload, uint16_t version = 0x0303) {
  bytes r = {type};
  append16(r, version);
  append16(r, payload.size());
  r.insert(r.end(), payload.begin(), payload.end());
  return r;
}

// A ServerHello handshake message (header included).
bytes server_hello_msg(bool hrr) {
  bytes body = {0x03, 0x03};
  if (hrr)
    body.insert(body.end(), hello_retry_random, hello_retry_random + 32);
  else
    body.insert(body.end(), 32, 0x42);
  body.push_back(0);                 // session id
  body.insert(body.end(), {0x13, 0x01, 0x00});  // suite, compression
  append16(body, 6);
  body.insert(body.end(), {0x00, 0x2b, 0x00, 0x02, 0x03, 0x04});
  bytes msg(4 + body.size());
  msg[0] = 2;
  msg[3] = static_cast<uint8_t>(body.size());
  std::copy(body.begin(), body.end(), msg.begin() + 4);
  return msg;
}

// The message split into records of `piece` bytes.
bytes fragmented(const bytes& msg, size_t piece) {
  bytes out;
  for (size_t i = 0; i < msg.size(); i += piece) {
    const bytes p(msg.begin() + i, msg.begin() + std::min(msg.size(), i + piece));
    const bytes r = record(22, p);
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

server_first first(const bytes& b) { return parse_server_first(b.data(), b.size()); }

TEST(server_first, server_hello_and_hrr) {
  EXPECT_EQ(first(record(22, server_hello_msg(false))), server_first::server_hello);
  EXPECT_EQ(first(record(22, server_hello_msg(true))), server_first::hello_retry_request);
  // TLS 1.2 record version 0x0301 for the first record is fine too.
  EXPECT_EQ(first(record(22, server_hello_msg(true), 0x0301)), server_first::hello_retry_request);
  // The rest of the flight (a CCS, certificates) does not matter.
  bytes flight = record(22, server_hello_msg(true));
  const bytes ccs = record(20, {1});
  flight.insert(flight.end(), ccs.begin(), ccs.end());
  EXPECT_EQ(first(flight), server_first::hello_retry_request);
}

TEST(server_first, every_prefix_needs_more_and_fragments_agree) {
  for (bool hrr : {false, true}) {
    const server_first want = hrr ? server_first::hello_retry_request : server_first::server_hello;
    for (size_t piece : {1, 2, 5, 37, 38, 200}) {
      const bytes w = fragmented(server_hello_msg(hrr), piece);
      ASSERT_EQ(first(w), want) << piece;
      // The verdict comes within the first 38 handshake bytes.
      size_t decided = 0;
      for (size_t n = 0; n <= w.size(); ++n) {
        const server_first s = parse_server_first(w.data(), n);
        if (s == server_first::need_more) continue;
        ASSERT_EQ(s, want) << "piece " << piece << " n " << n;
        if (decided == 0) decided = n;
      }
      EXPECT_LE(decided, 38 * 6u);
    }
  }
}

TEST(server_first, anything_else_is_other) {
  EXPECT_EQ(first(record(21, {2, 40})), server_first::other);      // an alert
  EXPECT_EQ(first(bytes{'H', 'T', 'T', 'P'}), server_first::other);  // not TLS
  EXPECT_EQ(parse_server_first(reinterpret_cast<const uint8_t*>("S"), 1), server_first::other);
  bytes cert = server_hello_msg(false);
  cert[0] = 11;  // a Certificate first
  EXPECT_EQ(first(record(22, cert)), server_first::other);
  EXPECT_EQ(first(record(22, server_hello_msg(false), 0x0203)), server_first::other);
  EXPECT_EQ(first(record(22, {})), server_first::other);  // empty handshake record
  bytes short_body = {2, 0, 0, 10, 3, 3};
  short_body.resize(4 + 34 + 4, 0);
  EXPECT_EQ(first(record(22, short_body)), server_first::other);  // length below version + random
  // A non-handshake record between two fragments of the ServerHello.
  bytes w = fragmented(server_hello_msg(true), 10);
  w[15] = 23;
  EXPECT_EQ(first(w), server_first::other);
  EXPECT_EQ(parse_server_first(nullptr, 0), server_first::need_more);
  EXPECT_EQ(first(bytes{22, 3}), server_first::need_more);
}

record_scan scan(const bytes& b) { return scan_client_records(b.data(), b.size()); }

TEST(client_records, ccs_alert_and_early_data_are_clean) {
  bytes held = record(20, {1});
  const bytes early = record(23, bytes(300, 'E'));
  const bytes alert = record(21, {1, 0});
  held.insert(held.end(), early.begin(), early.end());
  held.insert(held.end(), alert.begin(), alert.end());
  const record_scan s = scan(held);
  EXPECT_EQ(s.what, record_scan::kind::clean);
  EXPECT_EQ(s.at, held.size());
  // A record still arriving: clean up to its start.
  const record_scan p = scan_client_records(held.data(), held.size() - 1);
  EXPECT_EQ(p.what, record_scan::kind::clean);
  EXPECT_EQ(p.at, 6u + early.size());
  EXPECT_EQ(scan(bytes{}).what, record_scan::kind::clean);
}

TEST(client_records, a_handshake_record_is_found_by_its_first_byte) {
  bytes held = record(20, {1});
  held.push_back(22);
  const record_scan s = scan(held);
  EXPECT_EQ(s.what, record_scan::kind::handshake);
  EXPECT_EQ(s.at, 6u);
  EXPECT_EQ(scan(record(22, {1, 0, 0, 0})).at, 0u);
}

TEST(client_records, other_bytes_are_not_tls) {
  EXPECT_EQ(scan(bytes{'G', 'E', 'T'}).what, record_scan::kind::not_tls);
  EXPECT_EQ(scan(bytes{24, 3, 3, 0, 1, 0}).what, record_scan::kind::not_tls);  // heartbeat
  EXPECT_EQ(scan(bytes{23, 2}).what, record_scan::kind::not_tls);
  EXPECT_EQ(scan(bytes{23, 3, 3, 0x50, 0x00}).what, record_scan::kind::not_tls);  // > 2^14 + 2048
  bytes two = record(23, {1, 2});
  two.push_back(0);
  const record_scan s = scan(two);
  EXPECT_EQ(s.what, record_scan::kind::not_tls);
  EXPECT_EQ(s.at, 7u);
}

}  // namespace
