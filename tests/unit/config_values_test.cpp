// Value grammar: sizes, durations, rates, ports, endpoints.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "config/config.hpp"
#include "config/values.hpp"

namespace egressd::config {
namespace {

TEST(ConfigValues, Sizes) {
  struct {
    const char* in;
    bool ok;
    uint64_t out;
  } cases[] = {
      {"0", true, 0},
      {"100", true, 100},
      {"64K", true, 64 * 1024},
      {"64k", true, 64 * 1024},
      {"1M", true, 1024 * 1024},
      {"2G", true, 2ull << 30},
      {"16777216G", true, 16777216ull << 30},
      {"17179869184G", false, 0},  // 2^34 G = 2^64: overflow
      {"18446744073709551615", true, UINT64_MAX},
      {"18446744073709551616", false, 0},
      {"", false, 0},
      {"K", false, 0},
      {"1KB", false, 0},
      {"1T", false, 0},
      {"-1", false, 0},
      {"+1", false, 0},
      {" 1", false, 0},
      {"1.5M", false, 0},
      {"1 K", false, 0},
  };
  for (const auto& c : cases) {
    uint64_t v = 12345;
    EXPECT_EQ(parse_size(c.in, &v), c.ok) << c.in;
    if (c.ok) {
      EXPECT_EQ(v, c.out) << c.in;
    }
  }
}

TEST(ConfigValues, Durations) {
  struct {
    const char* in;
    bool ok;
    int64_t ms;
  } cases[] = {
      {"0s", true, 0},          {"500ms", true, 500},      {"10s", true, 10'000},
      {"5m", true, 300'000},    {"1h", true, 3'600'000},   {"300s", true, 300'000},
      {"10", false, 0},         {"10S", false, 0},         {"1d", false, 0},
      {"1.5s", false, 0},       {"s", false, 0},           {"", false, 0},
      {"-1s", false, 0},        {"10sec", false, 0},       {"10 s", false, 0},
      {"9223372036854775807ms", true, INT64_MAX},
      {"9223372036854775808ms", false, 0},
      {"2562047788015216h", false, 0},  // overflows milliseconds
      {"99999999999999999999s", false, 0},
  };
  for (const auto& c : cases) {
    milliseconds v{7};
    EXPECT_EQ(parse_duration(c.in, &v), c.ok) << c.in;
    if (c.ok) {
      EXPECT_EQ(v.count(), c.ms) << c.in;
    }
  }
}

TEST(ConfigValues, Rates) {
  double r = 0;
  ASSERT_TRUE(parse_rate("10/s", &r));
  EXPECT_DOUBLE_EQ(r, 10.0);
  ASSERT_TRUE(parse_rate("3/m", &r));
  EXPECT_DOUBLE_EQ(r, 0.05);
  ASSERT_TRUE(parse_rate("120/m", &r));
  EXPECT_DOUBLE_EQ(r, 2.0);
  ASSERT_TRUE(parse_rate("100/h", &r));
  EXPECT_DOUBLE_EQ(r, 100.0 / 3600);
  for (const char* bad : {"10", "10/", "/s", "10/d", "10/sec", "1.5/s", "-1/s", "10/S", "10//s",
                          "99999999999999999999/s", ""})
    EXPECT_FALSE(parse_rate(bad, &r)) << bad;
  rate_parts p;
  ASSERT_TRUE(parse_rate_parts("7/h", &p));
  EXPECT_EQ(p.count, 7u);
  EXPECT_EQ(p.period_seconds, 3600u);
}

TEST(ConfigValues, Ports) {
  uint16_t p = 0;
  EXPECT_TRUE(parse_port("1", &p));
  EXPECT_TRUE(parse_port("65535", &p));
  EXPECT_EQ(p, 65535);
  for (const char* bad : {"0", "65536", "", "80a", "-80", "99999999999999999999"})
    EXPECT_FALSE(parse_port(bad, &p)) << bad;

  std::vector<uint16_t> list;
  std::string_view bad;
  ASSERT_TRUE(parse_port_list("443,80,443", &list, &bad));
  EXPECT_EQ(list, (std::vector<uint16_t>{443, 80}));
  list.clear();
  EXPECT_FALSE(parse_port_list("443,,80", &list, &bad));
  EXPECT_EQ(bad, "");
  EXPECT_FALSE(parse_port_list("443,70000", &list, &bad));
  EXPECT_EQ(bad, "70000");
  EXPECT_FALSE(parse_port_list("443,", &list, &bad));
}

TEST(ConfigValues, Endpoints) {
  endpoint e;
  ASSERT_TRUE(parse_endpoint("127.0.0.1:3128", &e, true));
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 3128);
  EXPECT_EQ(e.to_string(), "127.0.0.1:3128");

  ASSERT_TRUE(parse_endpoint("[::1]:53", &e, true));
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.to_string(), "[::1]:53");

  ASSERT_TRUE(parse_endpoint("[2001:DB8:0:0::1]:80", &e, true));
  EXPECT_EQ(e.host, "2001:db8::1");  // canonical text

  ASSERT_TRUE(parse_endpoint("Host.Docker.Internal:5432", &e, true));
  EXPECT_EQ(e.host, "host.docker.internal");
  EXPECT_EQ(e.port, 5432);

  ASSERT_TRUE(parse_endpoint("10.0.0.2", &e, false));
  EXPECT_EQ(e.port, 0);
  ASSERT_TRUE(parse_endpoint("fd00::53", &e, false));
  EXPECT_EQ(e.host, "fd00::53");
  ASSERT_TRUE(parse_endpoint("[fd00::53]", &e, false));

  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:53",
                          "[::1]", "[::1]x", "[127.0.0.1]:80", "127.1:80", "300.0.0.1:80",
                          "bad_host!:80", ":80", "[::1:80", "a..b:80"})
    EXPECT_FALSE(parse_endpoint(bad, &e, true)) << bad;

  bool has_port = true;
  ASSERT_TRUE(parse_host_port("0.0.0.0:0", &e, &has_port));
  EXPECT_TRUE(has_port);
  EXPECT_EQ(e.port, 0);
  ASSERT_TRUE(parse_host_port("1.2.3.4", &e, &has_port));
  EXPECT_FALSE(has_port);
}

TEST(ConfigValues, U64) {
  uint64_t n = 0;
  EXPECT_TRUE(parse_u64("0", &n));
  EXPECT_TRUE(parse_u64("18446744073709551615", &n));
  EXPECT_EQ(n, UINT64_MAX);
  EXPECT_FALSE(parse_u64("18446744073709551616", &n));
  EXPECT_FALSE(parse_u64("", &n));
  EXPECT_FALSE(parse_u64("1e3", &n));
  EXPECT_FALSE(parse_u64("0x10", &n));
}

}  // namespace
}  // namespace egressd::config
