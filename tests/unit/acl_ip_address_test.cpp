// Tables of IP-literal spellings, strict parsing and CIDR behaviour.

#include "acl/ip_address.hpp"

#include <gtest/gtest.h>

#include <string>

namespace egressd::acl {
namespace {

struct literal_case {
  const char* text;
  const char* expect;  // to_string() of the parsed address, nullptr = not a literal
  bool looks_like;     // looks_like_ip_literal()
};

const literal_case literal_cases[] = {
    // Dotted quad and inet_aton short forms.
    {"127.0.0.1", "127.0.0.1", true},
    {"127.0.0.1.", "127.0.0.1", true},
    {"127.1", "127.0.0.1", true},
    {"127.0.1", "127.0.0.1", true},
    {"10.1.65535", "10.1.255.255", true},
    {"10.16777215", "10.255.255.255", true},
    {"2130706433", "127.0.0.1", true},
    {"2130706433.", "127.0.0.1", true},
    {"0x7f000001", "127.0.0.1", true},
    {"0X7F000001", "127.0.0.1", true},
    {"0x7f.1", "127.0.0.1", true},
    {"0x7f.0x0.0x0.0x1", "127.0.0.1", true},
    {"0177.0.0.1", "127.0.0.1", true},
    {"0177.1", "127.0.0.1", true},
    {"017700000001", "127.0.0.1", true},
    {"00000177.0.0.01", "127.0.0.1", true},
    {"0", "0.0.0.0", true},
    {"123", "0.0.0.123", true},
    {"4294967295", "255.255.255.255", true},
    {"169.254.169.254", "169.254.169.254", true},
    {"0xa9.0xfe.0xa9.0xfe", "169.254.169.254", true},
    {"0xA9FEA9FE", "169.254.169.254", true},
    {"0251.0376.0251.0376", "169.254.169.254", true},
    {"8.8.8.8", "8.8.8.8", true},
    // Out of range or malformed, but numeric-shaped: refuse, never resolve.
    {"256.256.256.256", nullptr, true},
    {"256.1.1.1", nullptr, true},
    {"1.2.3.256", nullptr, true},
    {"1.2.3.4.5", nullptr, true},
    {"1.2.65536", nullptr, true},
    {"1.16777216", nullptr, true},
    {"4294967296", nullptr, true},
    {"99999999999999999999999", nullptr, true},
    {"0x", nullptr, true},
    {"0x.0x", nullptr, true},
    {"0x100000000", nullptr, true},
    {"08", nullptr, true},
    {"09.1.1.1", nullptr, true},
    {"1..1", nullptr, true},
    {"example.123", nullptr, true},
    {"example.0x1f", nullptr, true},
    {"127.0.0.1..", nullptr, true},
    // IPv6, plain and bracketed.
    {"::1", "::1", true},
    {"[::1]", "::1", true},
    {"[::]", "::", true},
    {"[2001:DB8::1]", "2001:db8::1", true},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", true},
    {"::ffff:127.0.0.1", "::ffff:127.0.0.1", true},
    {"[::ffff:7f00:1]", "::ffff:127.0.0.1", true},
    {"[fe80::1%eth0]", nullptr, true},
    {"fe80::1%25eth0", nullptr, true},
    {"[::1", nullptr, true},
    {"::1]", nullptr, true},
    {"[garbage]", nullptr, true},
    {"[127.0.0.1]", nullptr, true},
    {"[]", nullptr, true},
    {":::", nullptr, true},
    {"1:2:3:4:5:6:7:8:9", nullptr, true},
    // Names.
    {"", nullptr, false},
    {"example.com", nullptr, false},
    {"1.2.3.com", nullptr, false},
    {"1e100.net", nullptr, false},
    {"0x7f.example", nullptr, false},
    {"example.0x1g", nullptr, false},
    {"localhost", nullptr, false},
    {"api.github.com.", nullptr, false},
    {"123abc", nullptr, false},
};

TEST(AclIpAddress, LiteralSpellings) {
  for (const auto& c : literal_cases) {
    SCOPED_TRACE(c.text);
    auto a = parse_ip_literal(c.text);
    if (c.expect) {
      ASSERT_TRUE(a.has_value());
      EXPECT_EQ(a->to_string(), c.expect);
    } else {
      EXPECT_FALSE(a.has_value()) << a->to_string();
    }
    EXPECT_EQ(looks_like_ip_literal(c.text), c.looks_like);
  }
}

TEST(AclIpAddress, FamiliesAndBytes) {
  auto a = parse_ip_literal("1.2.3.4");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->v4_host_order(), 0x01020304u);
  EXPECT_EQ(a->bytes[0], 1);
  EXPECT_EQ(a->bytes[3], 4);
  for (size_t i = 4; i < 16; ++i) EXPECT_EQ(a->bytes[i], 0);
  EXPECT_EQ(*a, ip_address::v4(0x01020304));

  auto b = parse_ip_literal("[::1]");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->is_v4());
  EXPECT_EQ(b->bytes[15], 1);
}

TEST(AclIpAddress, Unmapped) {
  auto m = parse_ip_strict("::ffff:10.1.2.3");
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->is_v4());
  EXPECT_EQ(m->unmapped(), ip_address::v4(0x0a010203));
  // Not mapped: unchanged.
  for (const char* s : {"::10.1.2.3", "64:ff9b::10.1.2.3", "::1", "1.2.3.4", "::ffff:0:1.2.3.4"}) {
    auto x = parse_ip_strict(s);
    ASSERT_TRUE(x) << s;
    EXPECT_EQ(x->unmapped(), *x) << s;
  }
}

TEST(AclIpAddress, ToStringRfc5952) {
  struct {
    const char* in;
    const char* out;
  } cases[] = {
      {"2001:db8:0:0:0:0:2:1", "2001:db8::2:1"},
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // single zero group not compressed
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // longest run
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // first on a tie
      {"0:0:0:0:0:0:0:0", "::"},
      {"0:0:0:0:0:0:0:1", "::1"},
      {"1:0:0:0:0:0:0:0", "1::"},
      {"FFFF:0:0:0:0:0:0:0", "ffff::"},
      {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
      {"fe80::abcd:ef01", "fe80::abcd:ef01"},
  };
  for (const auto& c : cases) {
    auto a = parse_ip_strict(c.in);
    ASSERT_TRUE(a) << c.in;
    EXPECT_EQ(a->to_string(), c.out) << c.in;
    auto back = parse_ip_strict(a->to_string());
    ASSERT_TRUE(back) << c.in;
    EXPECT_EQ(*back, *a);
  }
}

TEST(AclIpAddress, StrictParsing) {
  for (const char* ok : {"0.0.0.0", "1.2.3.4", "255.255.255.255", "::", "::1", "2001:db8::1",
                         "::ffff:1.2.3.4", "FE80::1"})
    EXPECT_TRUE(parse_ip_strict(ok)) << ok;
  for (const char* bad : {"", "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "1.2.3.4.",
                          "[::1]", "1.2.3.256", " 1.2.3.4", "1.2.3.4 ", "fe80::1%eth0",
                          "example.com", "1.2.3", "::g", "01.2.3.4"})
    EXPECT_FALSE(parse_ip_strict(bad)) << bad;
  // An embedded NUL must not truncate the text (found by the fuzzer).
  EXPECT_FALSE(parse_ip_strict(std::string_view("1.2.3.4\0x", 9)));
  EXPECT_FALSE(parse_ip_strict(std::string_view("::1\0x", 5)));
  EXPECT_FALSE(parse_ip_literal(std::string_view("::1\0x", 5)));
  EXPECT_FALSE(parse_ip_literal(std::string_view("[::1\0]", 6)));
  EXPECT_FALSE(parse_ip_literal(std::string_view("1.2.3.4\0", 8)));
}

TEST(AclIpAddress, CidrParsing) {
  struct {
    const char* in;
    const char* out;  // nullptr = invalid
  } cases[] = {
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"192.168.1.1", "192.168.1.1/32"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"172.16.0.0/12", "172.16.0.0/12"},
      {"fd00::/8", "fd00::/8"},
      {"::1", "::1/128"},
      {"::/0", "::/0"},
      {"2001:db8::/32", "2001:db8::/32"},
      {"10.0.0.1/8", nullptr},  // host bits set
      {"172.17.0.0/12", nullptr},
      {"10.0.0.0/33", nullptr},
      {"10.0.0.0/", nullptr},
      {"10.0.0.0/-1", nullptr},
      {"10.0.0.0/08", nullptr},
      {"10.0.0.0/8/8", nullptr},
      {"10/8", nullptr},
      {"fd00::/129", nullptr},
      {"fd00::1/8", nullptr},
      {"/8", nullptr},
      {"", nullptr},
      {"[::1]/128", nullptr},
  };
  for (const auto& c : cases) {
    auto n = parse_cidr(c.in);
    if (c.out) {
      ASSERT_TRUE(n) << c.in;
      EXPECT_EQ(n->to_string(), c.out) << c.in;
    } else {
      EXPECT_FALSE(n) << c.in << " -> " << n->to_string();
    }
  }
}

TEST(AclIpAddress, CidrContains) {
  struct {
    const char* net;
    const char* addr;
    bool in;
  } cases[] = {
      {"10.0.0.0/8", "10.0.0.0", true},
      {"10.0.0.0/8", "10.255.255.255", true},
      {"10.0.0.0/8", "9.255.255.255", false},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"192.168.1.7", "192.168.1.7", true},
      {"192.168.1.7", "192.168.1.8", false},
      {"0.0.0.0/0", "255.255.255.255", true},
      {"0.0.0.0/0", "::1", false},
      {"10.0.0.0/8", "::ffff:10.1.2.3", true},  // mapped judged as v4
      {"10.0.0.0/8", "::10.1.2.3", false},       // compatible is not mapped
      {"10.0.0.0/8", "64:ff9b::10.1.2.3", false},
      {"fd00::/8", "fd12::1", true},
      {"fd00::/8", "fe00::1", false},
      {"fd00::/8", "10.0.0.1", false},
      {"::ffff:10.0.0.0/104", "10.9.9.9", true},
      {"::ffff:10.0.0.0/104", "11.0.0.0", false},
      {"::/0", "8.8.8.8", true},
      {"::1", "::1", true},
      {"::1", "::2", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
  };
  for (const auto& c : cases) {
    auto n = parse_cidr(c.net);
    auto a = parse_ip_strict(c.addr);
    ASSERT_TRUE(n) << c.net;
    ASSERT_TRUE(a) << c.addr;
    EXPECT_EQ(n->contains(*a), c.in) << c.net << " ∋ " << c.addr;
  }
}

}  // namespace
}  // namespace egressd::acl
