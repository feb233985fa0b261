// Fuzzes the DNS responder codec (dns/responder_codec) with arbitrary
// datagrams, checking invariants: parsing never reads out of bounds; every
// parsed query gets a non-empty reply within max_response_size with the
// query's id and QR set; the reply is never itself accepted as a query (two
// responders cannot loop); the echoed question is the query's bytes; a name
// offered for decision is already normalised and never an IP literal; only
// an allowed A query gets an answer record.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "acl/ip_address.hpp"
#include "acl/pattern.hpp"
#include "dns/responder_codec.hpp"

using namespace egressd;

#define FUZZ_CHECK(cond)       \
  do {                         \
    if (!(cond)) std::abort(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> msg(data, size);
  acl::host_buffer buf;
  const auto q = dns::parse_query(msg, buf);
  if (!q) return 0;
  FUZZ_CHECK(size >= 12);
  if (!q->question.empty()) {
    FUZZ_CHECK(q->question.data() == data + 12);
    FUZZ_CHECK(q->question.size() >= 5 && q->question.size() <= 255 + 4);
  }
  if (!q->name.empty()) {
    auto again = acl::normalize_host(q->name);
    FUZZ_CHECK(again && *again == q->name);
    FUZZ_CHECK(!acl::looks_like_ip_literal(q->name));
  }
  if (q->needs_decision()) FUZZ_CHECK(!q->question.empty());

  const std::array<uint8_t, 4> answer{127, 0, 0, 9};
  for (bool allowed : {false, true}) {
    dns::response_buffer out;
    const auto r = dns::build_response(*q, allowed, answer, out);
    FUZZ_CHECK(r.size >= 12 && r.size <= out.size());
    FUZZ_CHECK(out[0] == data[0] && out[1] == data[1]);
    FUZZ_CHECK(out[2] & 0x80);
    const uint16_t ancount = static_cast<uint16_t>(out[6] << 8 | out[7]);
    FUZZ_CHECK((ancount == 1) == (r.what == dns::outcome::address));
    if (r.what == dns::outcome::address) FUZZ_CHECK(allowed && q->needs_decision() && q->qtype == dns::type_a);
    if (!q->needs_decision()) FUZZ_CHECK(r.what != dns::outcome::address && r.what != dns::outcome::nodata);
    if (!q->question.empty())
      FUZZ_CHECK(std::memcmp(out.data() + 12, q->question.data(), q->question.size()) == 0);
    acl::host_buffer buf2;
    FUZZ_CHECK(!dns::parse_query(std::span<const uint8_t>(out.data(), r.size), buf2));
  }
  return 0;
}
