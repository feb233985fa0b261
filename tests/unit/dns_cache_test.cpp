// dns::cache: LRU bound, expiry, replacement.
#include <gtest/gtest.h>

#include <string>

#include "dns/cache.hpp"

namespace egressd::dns {
namespace {

using namespace std::chrono_literals;

acl::ip_address v4(uint8_t last) {
  acl::ip_address a;
  a.bytes[0] = 192;
  a.bytes[1] = 0;
  a.bytes[2] = 2;
  a.bytes[3] = last;
  return a;
}

TEST(DnsCache, HitUntilExpiry) {
  cache c(10);
  const auto t0 = cache::clock::time_point{} + 1000s;
  c.insert("a.test", status::ok, {v4(1)}, t0 + 5s);
  auto hit = c.find("a.test", t0 + 4s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->st, status::ok);
  EXPECT_TRUE(hit->from_cache);
  ASSERT_EQ(hit->addresses.size(), 1u);
  EXPECT_EQ(hit->addresses[0], v4(1));
  EXPECT_FALSE(c.find("a.test", t0 + 5s));
  EXPECT_EQ(c.size(), 0u);
  EXPECT_FALSE(c.find("b.test", t0));
}

TEST(DnsCache, NegativeEntry) {
  cache c(10);
  const auto t0 = cache::clock::time_point{} + 1000s;
  c.insert("nx.test", status::nxdomain, {}, t0 + 1s);
  auto hit = c.find("nx.test", t0);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->st, status::nxdomain);
  EXPECT_TRUE(hit->addresses.empty());
}

TEST(DnsCache, EvictsLeastRecentlyUsed) {
  cache c(2);
  const auto t0 = cache::clock::time_point{} + 1000s;
  c.insert("a", status::ok, {v4(1)}, t0 + 60s);
  c.insert("b", status::ok, {v4(2)}, t0 + 60s);
  ASSERT_TRUE(c.find("a", t0));  // a becomes most recent
  c.insert("c", status::ok, {v4(3)}, t0 + 60s);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_TRUE(c.find("a", t0));
  EXPECT_FALSE(c.find("b", t0));
  EXPECT_TRUE(c.find("c", t0));
}

TEST(DnsCache, ReplaceKeepsOneEntry) {
  cache c(2);
  const auto t0 = cache::clock::time_point{} + 1000s;
  c.insert("a", status::ok, {v4(1)}, t0 + 1s);
  c.insert("a", status::ok, {v4(9)}, t0 + 60s);
  EXPECT_EQ(c.size(), 1u);
  auto hit = c.find("a", t0 + 30s);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->addresses[0], v4(9));
}

TEST(DnsCache, ZeroCapacityDisables) {
  cache c(0);
  const auto t0 = cache::clock::time_point{} + 1000s;
  c.insert("a", status::ok, {v4(1)}, t0 + 60s);
  EXPECT_FALSE(c.find("a", t0));
  EXPECT_EQ(c.size(), 0u);
}

TEST(DnsCache, ManyEntriesStayBounded) {
  cache c(100);
  const auto t0 = cache::clock::time_point{} + 1000s;
  for (int i = 0; i < 1000; ++i) {
    std::string name(1, 'h');  // not "h" + to_string(i): GCC 12 -Wrestrict false positive
    name += std::to_string(i);
    c.insert(name, status::ok, {v4(1)}, t0 + 60s);
  }
  EXPECT_EQ(c.size(), 100u);
  EXPECT_TRUE(c.find("h999", t0));
  EXPECT_FALSE(c.find("h0", t0));
  c.clear();
  EXPECT_EQ(c.size(), 0u);
}

}  // namespace
}  // namespace egressd::dns
