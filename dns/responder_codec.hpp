#pragma once
// The wire codec of the filtering DNS responder (`dns_listen`). Pure: no
// Asio, no allocation, no exceptions; every function is thread-safe and
// total over arbitrary bytes. The listener (proxy/dns_listener) does
//   auto q = parse_query(bytes, name_buf);     // nullopt: drop silently
//   bool ok = q->needs_decision() && policy says yes for q->name;
//   auto r = build_response(*q, ok, answer, out);
// and sends out[0, r.size).
//
// What a query gets (RFC 1035 / 6891 / 2308):
//   - not a query at all (< 12 bytes, QR=1, > max_query_size): dropped, never
//     answered (a reply to a reply could loop between two responders);
//   - opcode other than QUERY: NOTIMP; anything structurally wrong (QDCOUNT
//     != 1, answer/authority records, a compression pointer or bad label in
//     the question, trailing bytes, an additional record other than one OPT):
//     FORMERR; EDNS version > 0: BADVERS; a class other than IN: REFUSED;
//   - an allowed name: A -> one A record (answer address, answer_ttl);
//     any other type -> NOERROR with no answer (NODATA);
//   - any other name (including names that are not plausible host names and
//     IP-literal names): NXDOMAIN. Nothing is ever resolved upstream.
// The question is echoed byte for byte (0x20 case randomisation survives).
// A response carries an OPT record (payload size edns_payload) when the query
// did. Negative answers carry no SOA, so resolvers do not cache them
// (RFC 2308 §5): allowing a name takes effect at the next query.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "acl/pattern.hpp"

namespace egressd::dns {

// TTL of the A record: short, so a name removed from the allowlist (or a
// changed answer= after a restart) stops being cached by clients within a
// minute, long enough that an agent does not re-ask for every connection.
// The address is egressd's own, so caching it is never a rebinding risk.
inline constexpr uint32_t answer_ttl = 60;
// Largest query accepted (UDP or TCP). Real queries are < 300 bytes; EDNS
// padding (RFC 8467) rounds them to 468 at most.
inline constexpr size_t max_query_size = 4096;
// Our UDP payload size advertised in OPT (the DNS Flag Day 2020 value).
inline constexpr uint16_t edns_payload = 1232;
// Every response fits: 12 header + 259 question + 16 A record + 11 OPT.
inline constexpr size_t max_response_size = 512;
using response_buffer = std::array<uint8_t, max_response_size>;

enum class rcode : uint8_t { noerror = 0, formerr = 1, servfail = 2, nxdomain = 3, notimp = 4, refused = 5 };

inline constexpr uint16_t type_a = 1;
inline constexpr uint16_t type_aaaa = 28;
inline constexpr uint16_t type_opt = 41;
inline constexpr uint16_t class_in = 1;

struct query {
  uint16_t id = 0;
  uint16_t flags = 0;  // the query's header flags word (opcode, RD are echoed)
  // != noerror: the reply is this error; the question below may be empty.
  rcode error = rcode::noerror;
  bool badvers = false;  // EDNS version > 0 (extended rcode 16)
  // The wire question (QNAME QTYPE QCLASS) to echo; empty when unparsed.
  std::span<const uint8_t> question;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  // Normalised name (acl::normalize_host), a view into the caller's buffer;
  // empty when the name is not a plausible host name or is an IP literal.
  std::string_view name;
  bool edns = false;  // the query carried an OPT record

  // True when the answer depends on the allowlist: a well-formed IN query
  // for a host name. Otherwise build_response ignores `allowed`.
  bool needs_decision() const {
    return error == rcode::noerror && !badvers && qclass == class_in && !name.empty();
  }
};

// Why a response was what it was (for metrics).
enum class outcome : uint8_t { address, nodata, nxdomain, refused, formerr, notimp, badvers };
const char* to_string(outcome o);

struct response {
  size_t size = 0;  // bytes of out used
  outcome what = outcome::formerr;
};

// nullopt: drop (see above). name_buf must outlive the returned query, and
// so must msg (question views it).
std::optional<query> parse_query(std::span<const uint8_t> msg, acl::host_buffer& name_buf);

// Builds the reply into out. `answer` is the IPv4 address (network order) of
// the A record; `allowed` is the allowlist's verdict on q.name.
response build_response(const query& q, bool allowed, const std::array<uint8_t, 4>& answer,
                        response_buffer& out);

}  // namespace egressd::dns
