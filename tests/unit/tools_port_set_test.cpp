// tools/port_set: Squid port lists as interval sets.
#include <gtest/gtest.h>

#include "tools/port_set.hpp"

namespace egressd::tools {
namespace {

port_set parse(std::initializer_list<const char*> items) {
  port_set s;
  for (const char* i : items) {
    port_set::interval iv;
    EXPECT_TRUE(port_set::parse_item(i, &iv)) << i;
    s.add(iv);
  }
  return s;
}

TEST(tools_port_set, parse_items) {
  struct { const char* text; bool ok; uint16_t a, b; } cases[] = {
      {"443", true, 443, 443},     {"1025-65535", true, 1025, 65535}, {"1", true, 1, 1},
      {"65535", true, 65535, 65535}, {"0", false, 0, 0},             {"65536", false, 0, 0},
      {"80-79", false, 0, 0},      {"-80", false, 0, 0},             {"80-", false, 0, 0},
      {"", false, 0, 0},           {"8o", false, 0, 0},              {"000443", false, 0, 0},
  };
  for (const auto& c : cases) {
    port_set::interval iv{};
    EXPECT_EQ(port_set::parse_item(c.text, &iv), c.ok) << c.text;
    if (c.ok) {
      EXPECT_EQ(iv, port_set::interval(c.a, c.b)) << c.text;
    }
  }
}

TEST(tools_port_set, squid_safe_ports_merge_and_print) {
  auto safe = parse({"80", "21", "443", "70", "210", "1025-65535", "280", "488", "591", "777"});
  EXPECT_EQ(safe.str(), "21,70,80,210,280,443,488,591,777,1025-65535");
  EXPECT_TRUE(safe.contains(8080));
  EXPECT_FALSE(safe.contains(22));
  EXPECT_EQ(parse({"80", "81", "82-90", "79"}).str(), "79-90");
  EXPECT_TRUE(parse({"1-65535"}).is_all());
  EXPECT_EQ(parse({"1-10"}).size(), 10u);
}

TEST(tools_port_set, intersect_and_subtract) {
  auto safe = parse({"80", "443", "1025-65535"});
  auto ssl = parse({"443"});
  EXPECT_EQ(safe.intersect(ssl).str(), "443");
  EXPECT_EQ(safe.subtract(ssl).str(), "80,1025-65535");
  EXPECT_EQ(port_set::all().subtract(parse({"1-79", "81-65535"})).str(), "80");
  EXPECT_EQ(port_set::all().subtract(port_set::all()).str(), "");
  EXPECT_TRUE(ssl.intersect(parse({"80"})).empty());
  EXPECT_EQ(parse({"100-200"}).subtract(parse({"150", "120-130"})).str(), "100-119,131-149,151-200");
  EXPECT_EQ(port_set::range(5, 3).str(), "");
}

}  // namespace
}  // namespace egressd::tools
