// Every SPEC address range, with edges just inside and just outside.

#include "acl/address_class.hpp"

#include <gtest/gtest.h>

namespace egressd::acl {
namespace {

using ac = address_class;

struct class_case {
  const char* addr;
  address_class cls;
};

const class_case cases[] = {
    // 0.0.0.0/8
    {"0.0.0.0", ac::this_network},
    {"0.255.255.255", ac::this_network},
    {"1.0.0.0", ac::public_address},
    // 127/8
    {"126.255.255.255", ac::public_address},
    {"127.0.0.0", ac::loopback},
    {"127.0.0.1", ac::loopback},
    {"127.255.255.255", ac::loopback},
    {"128.0.0.0", ac::public_address},
    // 10/8
    {"9.255.255.255", ac::public_address},
    {"10.0.0.0", ac::private_network},
    {"10.255.255.255", ac::private_network},
    {"11.0.0.0", ac::public_address},
    // 172.16/12
    {"172.15.255.255", ac::public_address},
    {"172.16.0.0", ac::private_network},
    {"172.31.255.255", ac::private_network},
    {"172.32.0.0", ac::public_address},
    // 192.168/16
    {"192.167.255.255", ac::public_address},
    {"192.168.0.0", ac::private_network},
    {"192.168.255.255", ac::private_network},
    {"192.169.0.0", ac::public_address},
    // 100.64/10
    {"100.63.255.255", ac::public_address},
    {"100.64.0.0", ac::cgnat},
    {"100.127.255.255", ac::cgnat},
    {"100.128.0.0", ac::public_address},
    // 169.254/16
    {"169.253.255.255", ac::public_address},
    {"169.254.0.0", ac::link_local},
    {"169.254.169.254", ac::link_local},
    {"169.254.255.255", ac::link_local},
    {"169.255.0.0", ac::public_address},
    // 192.0.0.0/24 and 192.0.2/24
    {"191.255.255.255", ac::public_address},
    {"192.0.0.0", ac::ietf_protocol},
    {"192.0.0.255", ac::ietf_protocol},
    {"192.0.1.0", ac::public_address},
    {"192.0.1.255", ac::public_address},
    {"192.0.2.0", ac::documentation},
    {"192.0.2.255", ac::documentation},
    {"192.0.3.0", ac::public_address},
    // 198.51.100/24
    {"198.51.99.255", ac::public_address},
    {"198.51.100.0", ac::documentation},
    {"198.51.100.255", ac::documentation},
    {"198.51.101.0", ac::public_address},
    // 203.0.113/24
    {"203.0.112.255", ac::public_address},
    {"203.0.113.0", ac::documentation},
    {"203.0.113.255", ac::documentation},
    {"203.0.114.0", ac::public_address},
    // 198.18/15
    {"198.17.255.255", ac::public_address},
    {"198.18.0.0", ac::benchmarking},
    {"198.19.255.255", ac::benchmarking},
    {"198.20.0.0", ac::public_address},
    // 224/4 multicast, 240/4 reserved, broadcast
    {"223.255.255.255", ac::public_address},
    {"224.0.0.0", ac::multicast},
    {"239.255.255.255", ac::multicast},
    {"240.0.0.0", ac::reserved},
    {"255.255.255.254", ac::reserved},
    {"255.255.255.255", ac::broadcast},
    // Azure wire server: one address.
    {"168.63.129.15", ac::public_address},
    {"168.63.129.16", ac::azure_wireserver},
    {"168.63.129.17", ac::public_address},
    // Public examples.
    {"8.8.8.8", ac::public_address},
    {"1.1.1.1", ac::public_address},
    {"140.82.112.3", ac::public_address},
    // IPv6.
    {"::", ac::unspecified},
    {"::1", ac::loopback},
    {"::2", ac::reserved},                  // IPv4-compatible ::/96: fail closed
    {"::127.0.0.1", ac::reserved},
    {"::8.8.8.8", ac::reserved},
    {"::ffff:8.8.8.8", ac::public_address},  // mapped: judged as the IPv4 inside
    {"::ffff:127.0.0.1", ac::loopback},
    {"::ffff:10.0.0.1", ac::private_network},
    {"::ffff:169.254.169.254", ac::link_local},
    {"::ffff:255.255.255.255", ac::broadcast},
    {"::ffff:0:8.8.8.8", ac::reserved},       // IPv4-translated, not mapped
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::reserved},
    {"fc00::", ac::unique_local},
    {"fd12:3456::1", ac::unique_local},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::unique_local},
    {"fe00::", ac::reserved},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::reserved},
    {"fe80::", ac::link_local},
    {"fe80::1", ac::link_local},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::link_local},
    {"fec0::1", ac::reserved},  // deprecated site-local
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::reserved},
    {"ff00::", ac::multicast},
    {"ff02::1", ac::multicast},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::multicast},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", ac::public_address},
    {"2001:db8::", ac::documentation},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", ac::documentation},
    {"2001:db9::", ac::public_address},
    {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", ac::reserved},
    {"64:ff9b::", ac::nat64},
    {"64:ff9b::8.8.8.8", ac::nat64},
    {"64:ff9b::ffff:ffff", ac::nat64},
    {"64:ff9b::1:0:0", ac::reserved},  // outside the /96, outside 2000::/3
    {"64:ff9b:1::a00:1", ac::nat64},   // RFC 8215 local-use prefix
    {"2001:ffff::", ac::public_address},
    {"2001::", ac::teredo},
    {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", ac::teredo},
    {"2001:1::", ac::public_address},
    {"2001:4860:4860::8888", ac::public_address},
    {"2002::", ac::six_to_four},
    {"2002:c000:0204::1", ac::six_to_four},
    {"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::six_to_four},
    {"2003::", ac::public_address},
    {"2000::", ac::public_address},
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::reserved},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ac::public_address},
    {"4000::", ac::reserved},
    {"100::1", ac::reserved},  // discard-only
    {"2606:4700:4700::1111", ac::public_address},
};

TEST(AclAddressClass, Ranges) {
  for (const auto& c : cases) {
    auto a = parse_ip_strict(c.addr);
    ASSERT_TRUE(a) << c.addr;
    EXPECT_EQ(to_string(classify(*a)), std::string(to_string(c.cls))) << c.addr;
    EXPECT_EQ(is_public(classify(*a)), c.cls == ac::public_address) << c.addr;
  }
}

TEST(AclAddressClass, OtherSpellingsClassifyTheSame) {
  struct {
    const char* literal;
    address_class cls;
  } spellings[] = {
      {"127.1", ac::loopback},
      {"2130706433", ac::loopback},
      {"0x7f000001", ac::loopback},
      {"0177.0.0.1", ac::loopback},
      {"0", ac::this_network},
      {"0xa9fea9fe", ac::link_local},
      {"[::1]", ac::loopback},
      {"[::ffff:169.254.169.254]", ac::link_local},
      {"[::ffff:a9fe:a9fe]", ac::link_local},
      {"10.1", ac::private_network},
      {"8.8.8.8.", ac::public_address},
  };
  for (const auto& s : spellings) {
    auto a = parse_ip_literal(s.literal);
    ASSERT_TRUE(a) << s.literal;
    EXPECT_EQ(to_string(classify(*a)), std::string(to_string(s.cls))) << s.literal;
  }
}

TEST(AclAddressClass, NamesAreDistinct) {
  EXPECT_STREQ(to_string(ac::public_address), "public");
  EXPECT_STREQ(to_string(ac::private_network), "private");
  EXPECT_STREQ(to_string(ac::six_to_four), "6to4");
}

}  // namespace
}  // namespace egressd::acl
