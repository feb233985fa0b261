// self_set (the `self` check's address and port set) and the interface read.
#include "proxy/self_addresses.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using egressd::acl::ip_address;
using egressd::acl::parse_ip_strict;
using egressd::proxy::read_interface_addresses;
using egressd::proxy::self_set;

namespace {

ip_address ip(const char* s) { return *parse_ip_strict(s); }

TEST(SelfSet, OwnPortOnOwnAddress) {
  self_set s({ip("10.1.2.3"), ip("fd00::5"), ip("fe80::1")}, {3128, 9090, 53});
  EXPECT_TRUE(s.contains(ip("10.1.2.3"), 3128));
  EXPECT_TRUE(s.contains(ip("10.1.2.3"), 9090));
  EXPECT_TRUE(s.contains(ip("10.1.2.3"), 53));
  EXPECT_TRUE(s.contains(ip("fd00::5"), 3128));
  EXPECT_TRUE(s.contains(ip("fe80::1"), 9090));
  EXPECT_TRUE(s.contains(ip("::ffff:10.1.2.3"), 3128));  // mapped: judged as IPv4
}

TEST(SelfSet, LoopbackAndUnspecifiedAlwaysOwn) {
  self_set s({}, {3128});
  EXPECT_TRUE(s.contains(ip("127.0.0.1"), 3128));
  EXPECT_TRUE(s.contains(ip("127.9.9.9"), 3128));
  EXPECT_TRUE(s.contains(ip("::1"), 3128));
  EXPECT_TRUE(s.contains(ip("0.0.0.0"), 3128));
  EXPECT_TRUE(s.contains(ip("::"), 3128));
  EXPECT_TRUE(s.contains(ip("::ffff:127.0.0.1"), 3128));
}

TEST(SelfSet, OtherPortsAndAddressesAreNot) {
  self_set s({ip("10.1.2.3")}, {3128});
  EXPECT_FALSE(s.contains(ip("10.1.2.3"), 80));
  EXPECT_FALSE(s.contains(ip("127.0.0.1"), 80));
  EXPECT_FALSE(s.contains(ip("10.1.2.4"), 3128));
  EXPECT_FALSE(s.contains(ip("fd00::5"), 3128));
}

TEST(SelfSet, SortedAndUnique) {
  self_set s({ip("10.0.0.2"), ip("::ffff:10.0.0.1"), ip("10.0.0.1"), ip("fd00::1")}, {9, 3, 9});
  EXPECT_EQ(s.addresses().size(), 3u);
  EXPECT_EQ(s.ports(), (std::vector<uint16_t>{3, 9}));
  EXPECT_TRUE(s.contains(ip("10.0.0.1"), 3));
}

TEST(InterfaceAddresses, IncludesLoopback) {
  std::vector<ip_address> v;
  std::string error;
  ASSERT_TRUE(read_interface_addresses(&v, &error)) << error;
  EXPECT_NE(std::find(v.begin(), v.end(), ip("127.0.0.1")), v.end());
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end(), [](const ip_address& a, const ip_address& b) {
    return a.family != b.family ? a.family < b.family : a.bytes < b.bytes;
  }));
}

}  // namespace
