// The DNS responder codec: what each query gets (A / NODATA / NXDOMAIN /
// REFUSED / FORMERR / NOTIMP / BADVERS / dropped), exact response bytes, and
// the strictness rules (compression, label and name limits, trailing bytes,
// additional records).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns/responder_codec.hpp"

namespace egressd::dns {
namespace {

using bytes = std::vector<uint8_t>;

void put16(bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

bytes wire_name(const std::string& name) {
  bytes b;
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(static_cast<uint8_t>(dot - start));
    b.insert(b.end(), name.begin() + start, name.begin() + dot);
    start = dot + 1;
  }
  b.push_back(0);
  return b;
}

bytes opt_record(uint8_t version = 0, const bytes& options = {}) {
  bytes b{0};
  put16(b, type_opt);
  put16(b, 4096);
  b.push_back(0);
  b.push_back(version);
  put16(b, 0x8000);  // DO
  put16(b, static_cast<uint16_t>(options.size()));
  b.insert(b.end(), options.begin(), options.end());
  return b;
}

struct q_opts {
  uint16_t id = 0x1234;
  uint16_t flags = 0x0100;  // RD
  uint16_t qd = 1, an = 0, ns = 0;
  uint16_t qtype = type_a, qclass = class_in;
  bool opt = false;
  uint8_t version = 0;
};

bytes make_query(const bytes& qname, const q_opts& o = {}) {
  bytes b;
  put16(b, o.id);
  put16(b, o.flags);
  put16(b, o.qd);
  put16(b, o.an);
  put16(b, o.ns);
  put16(b, o.opt ? 1 : 0);
  b.insert(b.end(), qname.begin(), qname.end());
  put16(b, o.qtype);
  put16(b, o.qclass);
  if (o.opt) {
    bytes opt = opt_record(o.version);
    b.insert(b.end(), opt.begin(), opt.end());
  }
  return b;
}
bytes make_query(const std::string& name, const q_opts& o = {}) { return make_query(wire_name(name), o); }

const std::array<uint8_t, 4> answer_ip{127, 0, 0, 9};

struct result {
  bool dropped = true;
  query q;
  response r;
  bytes out;
  uint16_t flags() const { return static_cast<uint16_t>(out[2] << 8 | out[3]); }
  int rcode() const { return out[3] & 0x0F; }
  uint16_t count(int i) const { return static_cast<uint16_t>(out[4 + 2 * i] << 8 | out[5 + 2 * i]); }
};

// Parses, decides with `allowed(name)`, builds.
result run(const bytes& msg, bool (*allowed)(std::string_view) = nullptr) {
  acl::host_buffer buf;
  result res;
  auto q = parse_query(msg, buf);
  if (!q) return res;
  res.dropped = false;
  res.q = *q;
  bool ok = q->needs_decision() && allowed && allowed(q->name);
  response_buffer out;
  res.r = build_response(*q, ok, answer_ip, out);
  res.out.assign(out.begin(), out.begin() + res.r.size);
  res.q.name = {};  // buf dies here
  return res;
}

bool allow_example(std::string_view n) { return n == "api.example.com"; }

TEST(DnsResponderCodec, AllowedAGetsOneARecordExactBytes) {
  bytes msg = make_query("Api.Example.COM.");
  auto r = run(msg, allow_example);
  ASSERT_FALSE(r.dropped);
  EXPECT_EQ(r.r.what, outcome::address);
  bytes want;
  put16(want, 0x1234);
  put16(want, 0x8580);  // QR AA RD RA, NOERROR
  put16(want, 1);
  put16(want, 1);
  put16(want, 0);
  put16(want, 0);
  bytes qn = wire_name("Api.Example.COM");  // echoed as sent (case kept)
  want.insert(want.end(), qn.begin(), qn.end());
  put16(want, type_a);
  put16(want, class_in);
  put16(want, 0xC00C);
  put16(want, type_a);
  put16(want, class_in);
  put16(want, 0);
  put16(want, static_cast<uint16_t>(answer_ttl));
  put16(want, 4);
  want.insert(want.end(), {127, 0, 0, 9});
  EXPECT_EQ(r.out, want);
}

TEST(DnsResponderCodec, NameIsNormalised) {
  acl::host_buffer buf;
  bytes msg = make_query("API.example.com.");
  auto q = parse_query(msg, buf);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->name, "api.example.com");
  EXPECT_TRUE(q->needs_decision());
}

TEST(DnsResponderCodec, AllowedOtherTypesGetNodata) {
  for (uint16_t t : {type_aaaa, uint16_t{15}, uint16_t{16}, uint16_t{255}, uint16_t{65}, uint16_t{252}}) {
    q_opts o;
    o.qtype = t;
    auto r = run(make_query("api.example.com", o), allow_example);
    ASSERT_FALSE(r.dropped);
    EXPECT_EQ(r.r.what, outcome::nodata) << t;
    EXPECT_EQ(r.rcode(), 0);
    EXPECT_EQ(r.count(0), 1);
    EXPECT_EQ(r.count(1), 0);
  }
}

TEST(DnsResponderCodec, DeniedNameGetsNxdomainWithQuestion) {
  for (uint16_t t : {type_a, type_aaaa, uint16_t{16}}) {
    q_opts o;
    o.qtype = t;
    bytes msg = make_query("evil.example", o);
    auto r = run(msg, allow_example);
    EXPECT_EQ(r.r.what, outcome::nxdomain);
    EXPECT_EQ(r.rcode(), 3);
    EXPECT_EQ(r.count(0), 1);
    EXPECT_EQ(r.count(1), 0);
    EXPECT_EQ(r.count(2), 0);  // no SOA: not negatively cached
    EXPECT_EQ(bytes(r.out.begin() + 12, r.out.end()), bytes(msg.begin() + 12, msg.end()));
  }
}

TEST(DnsResponderCodec, NotHostNamesAreNxdomainWithoutDecision) {
  const std::vector<bytes> names = {
      wire_name(""),                                        // the root
      wire_name("127.0.0.1"),                               // IP literal
      bytes{3, 'a', '.', 'b', 3, 'c', 'o', 'm', 0},        // a dot inside a label
      bytes{3, 'a', 0, 'b', 0},                             // NUL in a label
      bytes{3, 'a', ' ', 'b', 0},                           // space
      bytes{2, 0xC3, 0xA9, 0},                              // non-ASCII
      bytes{1, '*', 3, 'c', 'o', 'm', 0},                   // '*'
  };
  for (const auto& n : names) {
    auto r = run(make_query(n), [](std::string_view) { return true; });
    ASSERT_FALSE(r.dropped);
    EXPECT_FALSE(r.q.needs_decision());
    EXPECT_EQ(r.r.what, outcome::nxdomain);
    EXPECT_EQ(r.rcode(), 3);
  }
}

TEST(DnsResponderCodec, HeaderEchoesIdOpcodeAndRd) {
  q_opts o;
  o.id = 0xBEEF;
  o.flags = 0;  // RD clear
  auto r = run(make_query("api.example.com", o), allow_example);
  EXPECT_EQ(r.out[0], 0xBE);
  EXPECT_EQ(r.out[1], 0xEF);
  EXPECT_EQ(r.flags(), 0x8480);  // QR AA RA
  o.flags = 0x0130;               // RD + AD + CD: the latter two are not echoed
  r = run(make_query("api.example.com", o), allow_example);
  EXPECT_EQ(r.flags(), 0x8580);
}

TEST(DnsResponderCodec, ResponsesAndShortMessagesAreDropped) {
  q_opts o;
  o.flags = 0x8100;
  EXPECT_TRUE(run(make_query("api.example.com", o), allow_example).dropped);
  EXPECT_TRUE(run(bytes{}).dropped);
  EXPECT_TRUE(run(bytes(11, 0)).dropped);
  bytes big = make_query("api.example.com");
  big.resize(max_query_size + 1);
  EXPECT_TRUE(run(big).dropped);
}

TEST(DnsResponderCodec, OtherOpcodesAreNotimp) {
  for (uint16_t opcode : {1, 2, 4, 5, 15}) {
    q_opts o;
    o.flags = static_cast<uint16_t>(opcode << 11 | 0x0100);
    auto r = run(make_query("api.example.com", o), allow_example);
    ASSERT_FALSE(r.dropped);
    EXPECT_EQ(r.r.what, outcome::notimp);
    EXPECT_EQ(r.rcode(), 4);
    EXPECT_EQ((r.flags() >> 11) & 0xF, opcode);
    EXPECT_EQ(r.out.size(), 12u);
  }
}

TEST(DnsResponderCodec, StructuralErrorsAreFormerr) {
  auto formerr = [](const bytes& msg, const char* what) {
    auto r = run(msg, allow_example);
    ASSERT_FALSE(r.dropped) << what;
    EXPECT_EQ(r.r.what, outcome::formerr) << what;
    EXPECT_EQ(r.rcode(), 1) << what;
    EXPECT_EQ(r.count(1), 0) << what;
  };
  q_opts o;
  o.qd = 0;
  formerr(make_query("api.example.com", o), "qdcount 0");
  o.qd = 2;
  formerr(make_query("api.example.com", o), "qdcount 2");
  o = {};
  o.an = 1;
  formerr(make_query("api.example.com", o), "an record");
  o = {};
  o.ns = 1;
  formerr(make_query("api.example.com", o), "ns record");

  bytes trailing = make_query("api.example.com");
  trailing.push_back(0);
  formerr(trailing, "trailing byte");

  bytes truncated = make_query("api.example.com");
  truncated.resize(truncated.size() - 1);
  formerr(truncated, "qclass cut short");
  formerr(make_query(bytes{3, 'a', 'p', 'i'}), "name runs off the end");

  // A compression pointer in the question (to the header: a loop bait).
  formerr(make_query(bytes{0xC0, 0x0C}), "pointer");
  formerr(make_query(bytes{3, 'a', 'p', 'i', 0xC0, 0x0C}), "pointer after a label");
  formerr(make_query(bytes{0x40, 0}), "extended label type");
  formerr(make_query(bytes{0x80, 0}), "reserved label type");

  // Label 64 bytes; name of 256 bytes on the wire.
  formerr(make_query(std::string(64, 'a') + ".com"), "label of 64");
  std::string n4 = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                   std::string(62, 'd');  // 254 characters: 256 bytes on the wire
  formerr(make_query(n4), "name of 256 bytes");
}

TEST(DnsResponderCodec, LongestNamesAreAccepted) {
  // 255 bytes on the wire: 253 characters of text.
  std::string n = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                  std::string(61, 'd');
  ASSERT_EQ(n.size(), 253u);
  acl::host_buffer buf;
  bytes msg = make_query(n);
  auto q = parse_query(msg, buf);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->error, rcode::noerror);
  EXPECT_EQ(q->name, n);
  response_buffer out;
  auto r = build_response(*q, true, answer_ip, out);
  EXPECT_EQ(r.what, outcome::address);
  EXPECT_EQ(r.size, msg.size() + 16);
}

TEST(DnsResponderCodec, EdnsOptIsToleratedAndAnswered) {
  q_opts o;
  o.opt = true;
  bytes msg = make_query("api.example.com", o);
  auto r = run(msg, allow_example);
  ASSERT_FALSE(r.dropped);
  EXPECT_TRUE(r.q.edns);
  EXPECT_EQ(r.r.what, outcome::address);
  EXPECT_EQ(r.count(3), 1);
  // The OPT comes last: root, type 41, payload, ext-rcode 0, version 0, no DO, no options.
  bytes tail(r.out.end() - 11, r.out.end());
  EXPECT_EQ(tail, (bytes{0, 0, 41, edns_payload >> 8, edns_payload & 0xFF, 0, 0, 0, 0, 0, 0}));

  // With options (a cookie) and padding.
  bytes opts{0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 12, 0, 3, 0, 0, 0};
  bytes m2 = make_query("api.example.com");
  m2[11] = 1;
  bytes opt = opt_record(0, opts);
  m2.insert(m2.end(), opt.begin(), opt.end());
  EXPECT_EQ(run(m2, allow_example).r.what, outcome::address);
}

TEST(DnsResponderCodec, BadOptIsFormerr) {
  auto with_opt = [](const bytes& opt) {
    bytes m = make_query("api.example.com");
    m[11] = 1;
    m.insert(m.end(), opt.begin(), opt.end());
    return m;
  };
  bytes bad_owner = opt_record();
  bad_owner.insert(bad_owner.begin(), 1);
  bad_owner[1] = 'x';  // owner "x." instead of the root
  for (const bytes& m : {with_opt(bad_owner),                          // owner not root
                         with_opt(bytes{0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0}),  // an A record, not OPT
                         with_opt(opt_record(0, bytes{0, 10, 0, 8, 1})),    // option runs off rdata
                         with_opt(opt_record(0, bytes{0, 10})),             // option header cut
                         with_opt(bytes{0, 0, 41, 16}),                     // record cut short
                         [&] {
                           bytes m = with_opt(opt_record());
                           m[11] = 2;  // two additional records
                           bytes again = opt_record();
                           m.insert(m.end(), again.begin(), again.end());
                           return m;
                         }()}) {
    auto r = run(m, allow_example);
    ASSERT_FALSE(r.dropped);
    EXPECT_EQ(r.r.what, outcome::formerr);
    EXPECT_EQ(r.count(3), 0);  // no OPT in reply to a bad OPT
  }
}

TEST(DnsResponderCodec, EdnsVersionAboveZeroIsBadvers) {
  q_opts o;
  o.opt = true;
  o.version = 1;
  auto r = run(make_query("api.example.com", o), allow_example);
  EXPECT_EQ(r.r.what, outcome::badvers);
  EXPECT_FALSE(r.q.needs_decision());
  EXPECT_EQ(r.rcode(), 0);
  EXPECT_EQ(r.count(1), 0);
  EXPECT_EQ(r.count(3), 1);
  EXPECT_EQ(r.out[r.out.size() - 6], 1);  // extended rcode: 16 >> 4
}

TEST(DnsResponderCodec, OtherClassesAreRefused) {
  for (uint16_t c : {3, 4, 254, 255}) {
    q_opts o;
    o.qclass = c;
    auto r = run(make_query("api.example.com", o), allow_example);
    EXPECT_FALSE(r.q.needs_decision());
    EXPECT_EQ(r.r.what, outcome::refused);
    EXPECT_EQ(r.rcode(), 5);
    EXPECT_EQ(r.count(0), 1);
  }
}

TEST(DnsResponderCodec, EveryPrefixOfAQueryIsSafe) {
  q_opts o;
  o.opt = true;
  bytes msg = make_query("api.example.com", o);
  for (size_t n = 0; n < msg.size(); ++n) {
    auto r = run(bytes(msg.begin(), msg.begin() + n), allow_example);
    if (n < 12) {
      EXPECT_TRUE(r.dropped);
    } else {
      ASSERT_FALSE(r.dropped);
      EXPECT_EQ(r.r.what, outcome::formerr) << n;
    }
  }
}

TEST(DnsResponderCodec, OutcomeNames) {
  EXPECT_STREQ(to_string(outcome::address), "address");
  EXPECT_STREQ(to_string(outcome::nxdomain), "nxdomain");
  EXPECT_STREQ(to_string(outcome::badvers), "badvers");
}

}  // namespace
}  // namespace egressd::dns
