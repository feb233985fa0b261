// parse_client_hello on ClientHello bytes captured from real clients
// (tests/data/clienthello/capture.py) and on variants built or mutated here.
#include "proxy/inspect/client_hello.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using egressd::proxy::hello_result;
using egressd::proxy::hello_status;
using egressd::proxy::max_client_hello;
using egressd::proxy::parse_client_hello;
using bytes = std::vector<uint8_t>;

bytes load(const std::string& name) {
  std::ifstream in(std::string(EGRESSD_TEST_DATA) + "/clienthello/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

hello_result parse(const bytes& b, size_t cap = max_client_hello) {
  return parse_client_hello(b.data(), b.size(), cap);
}

void put16(bytes& b, size_t at, size_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
size_t get16(const bytes& b, size_t at) { return size_t{b[at]} << 8 | b[at + 1]; }
void append16(bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// The handshake message carried by a capture (concatenated record payloads).
bytes handshake_of(const bytes& wire) {
  bytes hs;
  for (size_t pos = 0; pos + 5 <= wire.size() && wire[pos] == 22;) {
    const size_t n = get16(wire, pos + 3);
    hs.insert(hs.end(), wire.begin() + pos + 5, wire.begin() + pos + 5 + n);
    pos += 5 + n;
  }
  return hs;
}

// Wraps a handshake stream into records of the given payload sizes (the rest
// goes into a last record).
bytes records(const bytes& hs, const std::vector<size_t>& sizes = {}, uint16_t version = 0x0301) {
  bytes out;
  size_t pos = 0;
  auto emit = [&](size_t n) {
    out.push_back(22);
    append16(out, version);
    append16(out, n);
    out.insert(out.end(), hs.begin() + pos, hs.begin() + pos + n);
    pos += n;
  };
  for (size_t n : sizes) emit(n);
  if (pos < hs.size()) emit(hs.size() - pos);
  return out;
}

// Builds a ClientHello handshake message from its parts.
struct hello_parts {
  uint16_t version = 0x0303;
  bytes session_id = bytes(32, 0xab);
  bytes suites = {0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f};
  bytes compression = {0};
  bool with_extensions = true;
  std::vector<std::pair<uint16_t, bytes>> extensions;

  bytes build() const {
    bytes body;
    append16(body, version);
    body.insert(body.end(), 32, 0x42);  // random
    body.push_back(static_cast<uint8_t>(session_id.size()));
    body.insert(body.end(), session_id.begin(), session_id.end());
    append16(body, suites.size());
    body.insert(body.end(), suites.begin(), suites.end());
    body.push_back(static_cast<uint8_t>(compression.size()));
    body.insert(body.end(), compression.begin(), compression.end());
    if (with_extensions) {
      bytes ext;
      for (const auto& [type, data] : extensions) {
        append16(ext, type);
        append16(ext, data.size());
        ext.insert(ext.end(), data.begin(), data.end());
      }
      append16(body, ext.size());
      body.insert(body.end(), ext.begin(), ext.end());
    }
    bytes hs = {1, static_cast<uint8_t>(body.size() >> 16), 0, 0};
    put16(hs, 2, body.size() & 0xffff);
    hs.insert(hs.end(), body.begin(), body.end());
    return hs;
  }
};

bytes sni_ext(const std::string& name, uint8_t name_type = 0) {
  bytes d;
  append16(d, name.size() + 3);
  d.push_back(name_type);
  append16(d, name.size());
  d.insert(d.end(), name.begin(), name.end());
  return d;
}

hello_parts typical(const std::string& name = "api.example.com") {
  hello_parts p;
  p.extensions = {{0x000a, {0x00, 0x02, 0x00, 0x1d}}, {0x0000, sni_ext(name)},
                  {0x002b, {0x02, 0x03, 0x04}}};
  return p;
}

// Offsets inside a single-record capture, found by walking it.
struct layout {
  size_t ext_total = 0;  // offset of the extensions length
  size_t sni_ext = 0;    // offset of the server_name extension type (0 if none)
};
layout locate(const bytes& w) {
  layout l;
  size_t p = 5 + 4 + 2 + 32;
  p += 1 + w[p];
  p += 2 + get16(w, p);
  p += 1 + w[p];
  l.ext_total = p;
  for (p += 2; p + 4 <= w.size(); p += 4 + get16(w, p + 2))
    if (get16(w, p) == 0) l.sni_ext = p;
  return l;
}

struct capture_case {
  const char* file;
  bool has_sni;
  const char* sni;
};
const capture_case captures[] = {
    {"openssl_tls13_sni.bin", true, "example.com"},
    {"openssl_tls12_sni.bin", true, "example.com"},
    {"openssl_nosni.bin", false, ""},
    {"curl_sni.bin", true, "example.test"},
    {"python_sni.bin", true, "python.example.org"},
};

class capture_test : public ::testing::TestWithParam<capture_case> {};

TEST_P(capture_test, parses_with_the_right_sni) {
  const bytes wire = load(GetParam().file);
  ASSERT_FALSE(wire.empty());
  const hello_result r = parse(wire);
  EXPECT_EQ(r.status, hello_status::ok) << to_string(r.status);
  EXPECT_EQ(r.has_sni, GetParam().has_sni);
  EXPECT_EQ(r.sni(), GetParam().sni);
}

TEST_P(capture_test, every_prefix_needs_more) {
  const bytes wire = load(GetParam().file);
  for (size_t n = 0; n < wire.size(); ++n) {
    const hello_result r = parse_client_hello(wire.data(), n);
    ASSERT_EQ(r.status, hello_status::need_more) << "prefix " << n;
    ASSERT_FALSE(r.has_sni);
  }
}

TEST_P(capture_test, bytes_after_the_hello_are_ignored) {
  bytes wire = load(GetParam().file);
  const bytes ccs_and_data = {20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 0xde, 0xad};
  wire.insert(wire.end(), ccs_and_data.begin(), ccs_and_data.end());
  const hello_result r = parse(wire);
  EXPECT_EQ(r.status, hello_status::ok);
  EXPECT_EQ(r.sni(), GetParam().sni);
}

TEST_P(capture_test, split_at_every_point_into_two_records) {
  const bytes hs = handshake_of(load(GetParam().file));
  for (size_t cut = 1; cut < hs.size(); ++cut) {
    const bytes wire = records(hs, {cut});
    const hello_result r = parse(wire);
    ASSERT_EQ(r.status, hello_status::ok) << "cut " << cut;
    ASSERT_EQ(r.sni(), GetParam().sni) << "cut " << cut;
  }
}

TEST_P(capture_test, every_prefix_of_a_fragmented_hello_needs_more) {
  const bytes wire = records(handshake_of(load(GetParam().file)), {1, 3, 7, 40, 100});
  ASSERT_EQ(parse(wire).status, hello_status::ok);
  for (size_t n = 0; n < wire.size(); ++n)
    ASSERT_EQ(parse_client_hello(wire.data(), n).status, hello_status::need_more) << n;
}

TEST_P(capture_test, one_byte_records_exceed_the_cap_but_parse_under_a_larger_one) {
  const bytes hs = handshake_of(load(GetParam().file));
  const bytes wire = records(hs, std::vector<size_t>(hs.size(), 1));
  EXPECT_EQ(wire.size(), hs.size() * 6);
  EXPECT_EQ(parse(wire, wire.size()).status, hello_status::ok);
  EXPECT_EQ(parse(wire, wire.size()).sni(), GetParam().sni);
  EXPECT_EQ(parse(wire, wire.size() - 1).status, hello_status::too_large);
  // too_large is decided as soon as the cap is crossed, before the rest arrives.
  EXPECT_EQ(parse_client_hello(wire.data(), hs.size() * 3, hs.size() * 3 - 1).status,
            hello_status::too_large);
}

TEST_P(capture_test, cap_is_inclusive) {
  const bytes wire = load(GetParam().file);
  EXPECT_EQ(parse(wire, wire.size()).status, hello_status::ok);
  EXPECT_EQ(parse(wire, wire.size() - 1).status, hello_status::too_large);
}

TEST_P(capture_test, tolerant_of_every_tls_record_version) {
  const bytes hs = handshake_of(load(GetParam().file));
  for (uint16_t v : {0x0300, 0x0301, 0x0302, 0x0303, 0x0304})
    EXPECT_EQ(parse(records(hs, {}, v)).status, hello_status::ok) << v;
  EXPECT_EQ(parse(records(hs, {}, 0x0305)).status, hello_status::not_tls);
  EXPECT_EQ(parse(records(hs, {}, 0x0203)).status, hello_status::not_tls);
  // A later record with a bad version is TLS gone wrong, not "not TLS".
  bytes two = records(hs, {10});
  two[10 + 5 + 1] = 2;
  EXPECT_EQ(parse(two).status, hello_status::malformed);
}

TEST_P(capture_test, length_fields_off_by_one_are_malformed) {
  const bytes wire = load(GetParam().file);
  const layout l = locate(wire);
  auto mutated = [&](size_t at, int delta) {
    bytes b = wire;
    put16(b, at, get16(b, at) + delta);
    return parse(b).status;
  };
  // Record length: one short leaves a hello byte where a record header must
  // be; one long leaves a byte after the hello in its record.
  EXPECT_EQ(mutated(3, -1), hello_status::malformed);
  EXPECT_EQ(mutated(3, +1), hello_status::malformed);
  // Handshake length (low 16 bits of the u24).
  EXPECT_EQ(mutated(7, -1), hello_status::malformed);
  EXPECT_EQ(mutated(7, +1), hello_status::malformed);
  EXPECT_EQ(mutated(l.ext_total, -1), hello_status::malformed);
  EXPECT_EQ(mutated(l.ext_total, +1), hello_status::malformed);
  if (l.sni_ext != 0) {
    // The extension's own length shifts every extension after it: framing.
    EXPECT_EQ(mutated(l.sni_ext + 2, -1), hello_status::malformed);
    EXPECT_EQ(mutated(l.sni_ext + 2, +1), hello_status::malformed);
    // Lengths inside server_name, in a hello framed soundly: bad_sni.
    EXPECT_EQ(mutated(l.sni_ext + 4, -1), hello_status::bad_sni);  // list length
    EXPECT_EQ(mutated(l.sni_ext + 4, +1), hello_status::bad_sni);
    EXPECT_EQ(mutated(l.sni_ext + 7, -1), hello_status::bad_sni);  // name length
    EXPECT_EQ(mutated(l.sni_ext + 7, +1), hello_status::bad_sni);
  }
}

TEST_P(capture_test, oversize_declared_length_is_too_large_at_once) {
  bytes wire = load(GetParam().file);
  wire[6] = 0x01;  // handshake length += 64 KiB
  EXPECT_EQ(parse_client_hello(wire.data(), 9).status, hello_status::too_large);
  EXPECT_EQ(parse(wire).status, hello_status::too_large);
}

TEST_P(capture_test, cut_extensions_are_malformed) {
  const bytes hs = handshake_of(load(GetParam().file));
  const size_t ext_total = locate(records(hs)).ext_total - 5;
  // Drop the last 7 bytes of the extensions, fixing only the outer lengths.
  bytes cut(hs.begin(), hs.end() - 7);
  put16(cut, 2, get16(cut, 2) - 7);
  EXPECT_EQ(parse(records(cut)).status, hello_status::malformed);
  put16(cut, ext_total, get16(cut, ext_total) - 7);
  EXPECT_EQ(parse(records(cut)).status, hello_status::malformed);
  // Dropping the whole extensions block leaves a valid pre-TLS-1.2 hello.
  bytes bare(hs.begin(), hs.begin() + ext_total);
  put16(bare, 2, bare.size() - 4);
  const hello_result r = parse(records(bare));
  EXPECT_EQ(r.status, hello_status::ok);
  EXPECT_FALSE(r.has_sni);
}

INSTANTIATE_TEST_SUITE_P(real_clients, capture_test, ::testing::ValuesIn(captures),
                         [](const auto& info) {
                           std::string n = info.param.file;
                           return n.substr(0, n.find('.'));
                         });

TEST(client_hello, not_tls) {
  const std::string http = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
  EXPECT_EQ(parse_client_hello(reinterpret_cast<const uint8_t*>(http.data()), http.size()).status,
            hello_status::not_tls);
  EXPECT_EQ(parse_client_hello(reinterpret_cast<const uint8_t*>(http.data()), 1).status,
            hello_status::not_tls);
  // SSLv2-compatible hello: 2-byte header with the high bit set.
  const bytes sslv2 = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
  EXPECT_EQ(parse(sslv2).status, hello_status::not_tls);
  // Handshake record whose message is a ServerHello, not a ClientHello.
  bytes server_hello = records(typical().build());
  server_hello[5] = 2;
  EXPECT_EQ(parse(server_hello).status, hello_status::not_tls);
  EXPECT_EQ(parse_client_hello(server_hello.data(), 6).status, hello_status::not_tls);
  // Other record types.
  EXPECT_EQ(parse(bytes{23, 3, 3, 0, 1, 0}).status, hello_status::not_tls);
  EXPECT_EQ(parse(bytes{21, 3, 3, 0, 2, 2, 40}).status, hello_status::not_tls);
  EXPECT_EQ(parse(bytes{22, 4}).status, hello_status::not_tls);
}

TEST(client_hello, empty_and_tiny_inputs_need_more) {
  EXPECT_EQ(parse_client_hello(nullptr, 0).status, hello_status::need_more);
  EXPECT_EQ(parse(bytes{22}).status, hello_status::need_more);
  EXPECT_EQ(parse(bytes{22, 3, 1, 0, 10, 1}).status, hello_status::need_more);
}

TEST(client_hello, built_hello_round_trips) {
  const hello_result r = parse(records(typical("Api-1.Example_host.com").build()));
  EXPECT_EQ(r.status, hello_status::ok);
  EXPECT_TRUE(r.has_sni);
  EXPECT_EQ(r.sni(), "Api-1.Example_host.com");
}

TEST(client_hello, longest_and_too_long_names) {
  // 253 bytes in labels of 63 (RFC 1035's limits), and the same with the
  // one trailing dot a client may send.
  const std::string l63(63, 'a');
  const std::string longest = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  ASSERT_EQ(longest.size(), 253u);
  for (const std::string& name : {longest, longest + ".", l63, std::string("a"), std::string("a.")}) {
    const hello_result r = parse(records(typical(name).build()));
    EXPECT_EQ(r.status, hello_status::ok) << name;
    EXPECT_EQ(r.sni(), name);
  }
  for (const std::string& name : {longest + "c", l63 + "a", l63 + "a.example.com", std::string(255, 'a'),
                                  std::string(256, 'a'), std::string(""), std::string("."),
                                  std::string("a..b"), std::string(".a.b"), std::string("a.b..")}) {
    const hello_result r = parse(records(typical(name).build()));
    EXPECT_EQ(r.status, hello_status::bad_sni) << name;
    EXPECT_FALSE(r.has_sni);
    EXPECT_TRUE(r.sni().empty());
  }
}

TEST(client_hello, sni_bytes_outside_the_hostname_set_are_bad_sni) {
  for (const std::string& bad : {std::string("exa mple.com"), std::string("example.com\0", 12),
                                std::string("ex\0ample.com", 12), std::string("\0", 1),
                                std::string("a/b.com"), std::string("a:443"), std::string("b\xc3\xa9.com"),
                                std::string("a\r\nb"), std::string("*.example.com"),
                                std::string("a%2e.com"), std::string("[::1]"), std::string("a\x7f.com"),
                                std::string("a\xff.com")}) {
    EXPECT_EQ(parse(records(typical(bad).build())).status, hello_status::bad_sni)
        << testing::PrintToString(bad);
  }
  // An IDN travels as its A-label, which is plain LDH.
  EXPECT_EQ(parse(records(typical("xn--bcher-kva.example").build())).status, hello_status::ok);
}

// Each malformed or ambiguous server_name, in an otherwise sound hello.
TEST(client_hello, ambiguous_server_name_is_bad_sni) {
  hello_parts dup = typical("a.example.com");
  dup.extensions.push_back({0x0000, sni_ext("b.example.com")});
  EXPECT_EQ(parse(records(dup.build())).status, hello_status::bad_sni);

  hello_parts dup_same = typical("a.example.com");  // even the same name twice
  dup_same.extensions.push_back({0x0000, sni_ext("a.example.com")});
  EXPECT_EQ(parse(records(dup_same.build())).status, hello_status::bad_sni);

  hello_parts two_names = typical();
  bytes list = sni_ext("a.example.com");
  const bytes second = sni_ext("b.example.com");
  list.insert(list.end(), second.begin() + 2, second.end());
  put16(list, 0, list.size() - 2);
  two_names.extensions[1].second = list;
  EXPECT_EQ(parse(records(two_names.build())).status, hello_status::bad_sni);

  for (uint8_t type : {1, 2, 0xff}) {
    hello_parts other_type = typical();
    other_type.extensions[1].second = sni_ext("a.example.com", type);
    EXPECT_EQ(parse(records(other_type.build())).status, hello_status::bad_sni) << int(type);
  }

  hello_parts empty_ext = typical();
  empty_ext.extensions[1].second = {};
  EXPECT_EQ(parse(records(empty_ext.build())).status, hello_status::bad_sni);

  hello_parts one_byte = typical();
  one_byte.extensions[1].second = {0};
  EXPECT_EQ(parse(records(one_byte.build())).status, hello_status::bad_sni);

  hello_parts empty_list = typical();
  empty_list.extensions[1].second = {0, 0};
  EXPECT_EQ(parse(records(empty_list.build())).status, hello_status::bad_sni);

  hello_parts list_short = typical();  // list length 1 less than the extension holds
  bytes ls = sni_ext("a.example.com");
  put16(ls, 0, get16(ls, 0) - 1);
  list_short.extensions[1].second = ls;
  EXPECT_EQ(parse(records(list_short.build())).status, hello_status::bad_sni);

  hello_parts list_long = typical();
  bytes ll = sni_ext("a.example.com");
  put16(ll, 0, get16(ll, 0) + 1);
  list_long.extensions[1].second = ll;
  EXPECT_EQ(parse(records(list_long.build())).status, hello_status::bad_sni);

  hello_parts name_short = typical();  // name length 1 short: a stray byte follows
  bytes ns = sni_ext("a.example.com");
  put16(ns, 3, get16(ns, 3) - 1);
  name_short.extensions[1].second = ns;
  EXPECT_EQ(parse(records(name_short.build())).status, hello_status::bad_sni);

  hello_parts name_long = typical();
  bytes nl = sni_ext("a.example.com");
  put16(nl, 3, get16(nl, 3) + 1);
  name_long.extensions[1].second = nl;
  EXPECT_EQ(parse(records(name_long.build())).status, hello_status::bad_sni);

  hello_parts truncated = typical();  // list and name cut short, lengths consistent with nothing
  truncated.extensions[1].second = {0x00, 0x10, 0x00, 0x00};
  EXPECT_EQ(parse(records(truncated.build())).status, hello_status::bad_sni);
}

// bad_sni is the verdict of a hello that is sound otherwise: framing errors
// after the bad name still win, and so does too_large.
TEST(client_hello, bad_sni_only_for_an_otherwise_sound_hello) {
  hello_parts p = typical("a..b");
  const bytes hs = p.build();
  EXPECT_EQ(parse(records(hs)).status, hello_status::bad_sni);
  bytes cut(hs.begin(), hs.end() - 1);  // last extension cut
  put16(cut, 2, get16(cut, 2) - 1);
  EXPECT_EQ(parse(records(cut)).status, hello_status::malformed);
  const bytes wire = records(hs);
  EXPECT_EQ(parse(wire, wire.size() - 1).status, hello_status::too_large);
  for (size_t n = 0; n < wire.size(); ++n)
    ASSERT_EQ(parse_client_hello(wire.data(), n).status, hello_status::need_more) << n;
  // A fragmented one gives the same verdict.
  EXPECT_EQ(parse(records(hs, {20, 30, 5})).status, hello_status::bad_sni);
}

TEST(client_hello, ech_family_extensions_are_reported) {
  const uint16_t ech_types[] = {0xfe0d, 0xffce, 0xff02, 0xff03, 0xff0a, 0xff0d, 0xfe08, 0xfe0a, 0xfe0c};
  for (uint16_t type : ech_types) {
    hello_parts p = typical("public.example.com");
    p.extensions.push_back({type, bytes(40, 0x5a)});
    p.extensions.push_back({0xfe0d, bytes(8, 1)});  // a second one: the first is named
    const hello_result r = parse(records(p.build()));
    EXPECT_EQ(r.status, hello_status::ok) << std::hex << type;
    EXPECT_TRUE(r.ech) << std::hex << type;
    EXPECT_EQ(r.ech_type, type);
    EXPECT_EQ(r.sni(), "public.example.com");  // the outer name
  }
  // Neighbours of the family are ordinary extensions.
  for (uint16_t type : {0xfe07, 0xfe0e, 0xff01, 0xff0e, 0xffcd, 0xffcf, 0xfd00, 0xff00}) {
    hello_parts p = typical();
    p.extensions.push_back({type, bytes(4, 0)});
    const hello_result r = parse(records(p.build()));
    EXPECT_EQ(r.status, hello_status::ok);
    EXPECT_FALSE(r.ech) << std::hex << type;
  }
  // Empty ECH extension data still counts; reported with a bad SNI too,
  // never with a malformed hello.
  hello_parts empty = typical();
  empty.extensions.insert(empty.extensions.begin(), {0xfe0d, {}});
  EXPECT_TRUE(parse(records(empty.build())).ech);
  hello_parts bad = typical("a..b");
  bad.extensions.push_back({0xfe0d, bytes(3, 0)});
  const hello_result rb = parse(records(bad.build()));
  EXPECT_EQ(rb.status, hello_status::bad_sni);
  EXPECT_TRUE(rb.ech);
  bytes broken = records(bad.build());
  broken.pop_back();
  put16(broken, 3, get16(broken, 3) - 1);  // record and handshake lengths follow;
  put16(broken, 7, get16(broken, 7) - 1);  // the extensions' total does not
  const hello_result rm = parse(broken);
  EXPECT_EQ(rm.status, hello_status::malformed);
  EXPECT_FALSE(rm.ech);
  // Without an SNI at all (ECH's outer hello always has one, but be sure).
  hello_parts nosni = typical();
  nosni.extensions.erase(nosni.extensions.begin() + 1);
  nosni.extensions.push_back({0xffce, bytes(10, 0)});
  const hello_result rn = parse(records(nosni.build()));
  EXPECT_EQ(rn.status, hello_status::ok);
  EXPECT_FALSE(rn.has_sni);
  EXPECT_TRUE(rn.ech);
}

TEST(client_hello, body_field_rules) {
  hello_parts p = typical();
  p.session_id = bytes(33, 1);
  EXPECT_EQ(parse(records(p.build())).status, hello_status::malformed);
  p = typical();
  p.session_id = {};
  EXPECT_EQ(parse(records(p.build())).status, hello_status::ok);
  p = typical();
  p.suites = {0x13};
  EXPECT_EQ(parse(records(p.build())).status, hello_status::malformed);
  p.suites = {};
  EXPECT_EQ(parse(records(p.build())).status, hello_status::malformed);
  p = typical();
  p.compression = {};
  EXPECT_EQ(parse(records(p.build())).status, hello_status::malformed);
  p = typical();
  p.version = 0x0203;
  EXPECT_EQ(parse(records(p.build())).status, hello_status::malformed);
  p = typical();
  p.with_extensions = false;
  EXPECT_EQ(parse(records(p.build())).status, hello_status::ok);
  p = typical();
  p.extensions.clear();
  EXPECT_EQ(parse(records(p.build())).status, hello_status::ok);
}

TEST(client_hello, record_length_rules) {
  const bytes hs = typical().build();
  bytes zero = records(hs, {10});
  zero.insert(zero.begin() + 15, {22, 3, 3, 0, 0});  // an empty record in between
  EXPECT_EQ(parse(zero).status, hello_status::malformed);
  bytes huge = records(hs);
  put16(huge, 3, 16 * 1024 + 1);
  EXPECT_EQ(parse_client_hello(huge.data(), 5).status, hello_status::malformed);
  // A non-handshake record between two fragments.
  bytes interleaved = records(hs, {10});
  interleaved[15] = 23;
  EXPECT_EQ(parse(interleaved).status, hello_status::malformed);
}

TEST(client_hello, largest_hello_within_the_cap) {
  // Fill to exactly max_client_hello bytes on the wire with a padding
  // extension: 16404 - 2 record headers = 16394 handshake bytes.
  hello_parts p = typical();
  const size_t base = p.build().size();
  const size_t target = max_client_hello - 2 * 5;
  p.extensions.push_back({0x0015, bytes(target - base - 4, 0)});
  const bytes hs = p.build();
  ASSERT_EQ(hs.size(), target);
  const bytes wire = records(hs, {16 * 1024});
  ASSERT_EQ(wire.size(), max_client_hello);
  EXPECT_EQ(parse(wire).status, hello_status::ok);
  EXPECT_EQ(parse(wire).sni(), "api.example.com");

  p.extensions.back().second.push_back(0);
  const bytes over = records(p.build(), {16 * 1024});
  EXPECT_EQ(parse_client_hello(over.data(), 9).status, hello_status::too_large);
}

// Random byte mutations of real captures: a verdict reached on a prefix never
// changes when more bytes arrive.
TEST(client_hello, verdicts_are_monotonic_under_mutation) {
  std::mt19937 rng(12345);
  for (const capture_case& c : captures) {
    const bytes orig = load(c.file);
    for (int round = 0; round < 200; ++round) {
      bytes b = orig;
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < flips; ++i) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      const hello_result whole = parse(b);
      for (size_t n = 0; n <= b.size(); n += 1 + rng() % 7) {
        const hello_result r = parse_client_hello(b.data(), n);
        if (r.status == hello_status::need_more) continue;
        ASSERT_EQ(r.status, whole.status) << c.file << " round " << round << " n " << n;
        ASSERT_EQ(r.sni(), whole.sni());
      }
    }
  }
}

std::string fmt_hex(const std::string& prefix, uint16_t v) {
  char b[8];
  std::snprintf(b, sizeof b, "%04x", v);
  return prefix + b;
}

// With EGRESSD_WRITE_CORPUS=DIR, writes seeds for
// tests/fuzz/inspect_client_hello_fuzz.cpp: the captures, each as an odd
// byte + its handshake message (the fuzzer's fragmentation mode), built
// hellos, and a fragmented one.
TEST(client_hello, write_seed_corpus) {
  const char* env = std::getenv("EGRESSD_WRITE_CORPUS");
  if (env == nullptr) GTEST_SKIP() << "EGRESSD_WRITE_CORPUS not set";
  const std::string dir = env;
  auto write = [&](const std::string& name, const bytes& b) {
    std::ofstream(dir + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  };
  for (const capture_case& c : captures) {
    const std::string stem = std::string(c.file).substr(0, std::string(c.file).find('.'));
    const bytes wire = load(c.file);
    write(stem, wire);
    bytes frag = {0x01};
    const bytes hs = handshake_of(wire);
    frag.insert(frag.end(), hs.begin(), hs.end());
    write(stem + "_fragment_mode", frag);
    write(stem + "_split", records(hs, {7, 60}));
  }
  write("built_typical", records(typical().build()));
  hello_parts p = typical();
  p.with_extensions = false;
  write("built_no_extensions", records(p.build()));
  for (uint16_t type : {0xfe0d, 0xffce, 0xff02}) {
    hello_parts e = typical("public.example.com");
    e.extensions.push_back({type, bytes(24, 0x5a)});
    write(fmt_hex("built_ech_", type), records(e.build()));
  }
  hello_parts dup = typical("a.example.com");
  dup.extensions.push_back({0x0000, sni_ext("b.example.com")});
  write("built_bad_sni_two_extensions", records(dup.build()));
  hello_parts nul = typical(std::string("a\0b.example.com", 15));
  write("built_bad_sni_nul", records(nul.build()));
  write("http_get", bytes{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1'});
}

}  // namespace
