// The allowlist directives (allow, deny, allow_net, group), anomaly, and
// the policy they compile to.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "config_test_util.hpp"

namespace egressd::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::errors;
using testing::ok;
using testing::one_error;
using testing::parse;

const acl::rule& only_rule(const std::shared_ptr<const snapshot>& s) {
  EXPECT_TRUE(s && s->policy);
  EXPECT_EQ(s->policy->rules().size(), 1u);
  return s->policy->rules().front();
}

TEST(ConfigRules, AllowDefaults) {
  auto s = ok("\nallow API.Example.com");
  const auto& r = only_rule(s);
  EXPECT_EQ(r.action, acl::rule::action_t::allow);
  EXPECT_EQ(r.pattern, "API.Example.com");  // as written: the metric label
  EXPECT_EQ(r.ports, (std::vector<uint16_t>{80, 443}));
  EXPECT_TRUE(r.methods.empty());
  EXPECT_TRUE(r.group.empty());
  EXPECT_FALSE(r.limits.rate);
  EXPECT_FALSE(r.limits.conns);
  EXPECT_FALSE(r.limits.bandwidth_bps);
  EXPECT_EQ(r.file, "t.conf");
  EXPECT_EQ(r.line, 2);
}

TEST(ConfigRules, AllowOptions) {
  auto s = ok("group dev 10.0.0.0/8\n"
              "allow .example.com ports=443,8443,443 methods=get,Post,GET rate=3/m per=client "
              "conns=5 bandwidth=10M/s group=dev");
  const auto& r = only_rule(s);
  EXPECT_EQ(r.ports, (std::vector<uint16_t>{443, 8443}));
  EXPECT_EQ(r.methods, (std::vector<std::string>{"GET", "POST"}));
  ASSERT_TRUE(r.limits.rate);
  EXPECT_DOUBLE_EQ(r.limits.rate->per_second, 0.05);
  EXPECT_EQ(r.limits.rate->burst, 3u);  // default: N of the rate
  EXPECT_TRUE(r.limits.rate->per_client);
  EXPECT_EQ(r.limits.conns, 5u);
  EXPECT_EQ(r.limits.bandwidth_bps, 10u << 20);
  EXPECT_EQ(r.group, "dev");

  const auto s2 = ok("allow x.com rate=10/s burst=50");  // r2 refers into it
  const auto& r2 = only_rule(s2);
  ASSERT_TRUE(r2.limits.rate);
  EXPECT_EQ(r2.limits.rate->burst, 50u);
  EXPECT_FALSE(r2.limits.rate->per_client);
  EXPECT_DOUBLE_EQ(r2.limits.rate->per_second, 10.0);
}

TEST(ConfigRules, AllowErrors) {
  EXPECT_EQ(one_error("allow x.com port=443"),
            "t.conf:1: unknown option 'port=' for allow (did you mean ports=?)");
  EXPECT_EQ(one_error("allow x.com method=GET"),
            "t.conf:1: unknown option 'method=' for allow (did you mean methods=?)");
  EXPECT_THAT(one_error("allow x.com ports=0"), HasSubstr("invalid port '0' in ports="));
  EXPECT_THAT(one_error("allow x.com ports=65536"), HasSubstr("invalid port '65536' in ports="));
  EXPECT_THAT(one_error("allow x.com ports=80,,443"), HasSubstr("invalid port '' in ports="));
  EXPECT_THAT(one_error("allow x.com ports="), HasSubstr("ports= needs a value"));
  EXPECT_THAT(one_error("allow x.com methods=GET,,POST"), HasSubstr("invalid method ''"));
  EXPECT_THAT(one_error("allow x.com methods=G(ET"), HasSubstr("invalid method 'G(ET'"));
  EXPECT_THAT(one_error("allow x.com rate=10"), HasSubstr("invalid rate= '10'"));
  EXPECT_THAT(one_error("allow x.com rate=0/s"), HasSubstr("rate=0/s is out of range"));
  EXPECT_THAT(one_error("allow x.com rate=1000000001/s"), HasSubstr("out of range"));
  EXPECT_EQ(one_error("allow x.com burst=5"), "t.conf:1: burst= needs rate= on the same line");
  EXPECT_EQ(one_error("allow x.com per=client"), "t.conf:1: per=client needs rate= on the same line");
  EXPECT_THAT(one_error("allow x.com rate=1/s per=host"), HasSubstr("the only value is per=client"));
  EXPECT_THAT(one_error("allow x.com rate=1/s burst=0"), HasSubstr("invalid burst= '0'"));
  EXPECT_THAT(one_error("allow x.com conns=0"), HasSubstr("invalid conns= '0'"));
  EXPECT_THAT(one_error("allow x.com bandwidth=10M"), HasSubstr("invalid bandwidth= '10M'"));
  EXPECT_THAT(one_error("allow x.com bandwidth=0/s"), HasSubstr("bandwidth= must be above 0"));
  EXPECT_THAT(one_error("allow x.com group=a/b"), HasSubstr("invalid group= 'a/b'"));
  EXPECT_THAT(one_error("allow a.com b.com"), HasSubstr("unexpected 'b.com' after allow"));
  EXPECT_THAT(one_error("allow"), HasSubstr("allow needs an argument"));
  EXPECT_THAT(one_error("allow x.com ports=80 ports=443"), HasSubstr("ports= given twice on one line"));
}

TEST(ConfigRules, Patterns) {
  auto s = ok("allow api.example.com\nallow .example.org\nallow *.example.net\nallow ~^[a-z]+\\.example\\.io$"
              "\ndeny bad.example.org");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->policy->rules().size(), 5u);
  acl::ip_address client = acl::ip_address::v4(0x0a000001);
  EXPECT_TRUE(s->policy->decide("example.org", 443, "", client).allowed);
  EXPECT_FALSE(s->policy->decide("bad.example.org", 443, "", client).allowed);
  EXPECT_FALSE(s->policy->decide("example.net", 443, "", client).allowed);
  EXPECT_TRUE(s->policy->decide("a.example.net", 80, "GET", client).allowed);
  EXPECT_TRUE(s->policy->decide("abc.example.io", 443, "", client).allowed);
  EXPECT_FALSE(s->policy->decide("api.example.com", 22, "", client).allowed);

  EXPECT_THAT(one_error("allow *.x.*.com"), HasSubstr("t.conf:1: invalid pattern '*.x.*.com': '*'"));
  EXPECT_THAT(one_error("allow bücher.de"), HasSubstr("punycode"));
  EXPECT_THAT(one_error("deny 10.0.0.1"), HasSubstr("use allow_net"));
  EXPECT_THAT(one_error("deny a..b"), HasSubstr("t.conf:1: invalid pattern 'a..b'"));
}

TEST(ConfigRules, RegexErrorMapsToItsLine) {
  auto r = parse("allow a.com\n\nallow ~(unclosed\nallow b.com\ndeny ~[z-a]");
  EXPECT_FALSE(r.snap);
  auto e = errors(r);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_THAT(e[0], HasSubstr("t.conf:3: invalid regular expression"));
  EXPECT_THAT(e[1], HasSubstr("t.conf:5: invalid regular expression"));
}

TEST(ConfigRules, Deny) {
  auto s = ok("deny .evil.example");
  const auto& r = only_rule(s);
  EXPECT_EQ(r.action, acl::rule::action_t::deny);
  EXPECT_EQ(one_error("deny x.com ports=80"),
            "t.conf:1: unknown option 'ports=' for deny (deny takes no options)");
}

TEST(ConfigRules, AllowNet) {
  auto s = ok("allow_net 10.20.0.0/16 192.168.1.7 ports=5432,6379\nallow_net fd00::/8");
  ASSERT_TRUE(s);
  const auto& nets = s->policy->nets();
  ASSERT_EQ(nets.size(), 2u);
  ASSERT_EQ(nets[0].nets.size(), 2u);
  EXPECT_EQ(nets[0].nets[0].to_string(), "10.20.0.0/16");
  EXPECT_EQ(nets[0].ports, (std::vector<uint16_t>{5432, 6379}));
  EXPECT_EQ(nets[0].line, 1);
  EXPECT_TRUE(nets[1].ports.empty());
  EXPECT_TRUE(s->policy->covered_by_allow_net(*acl::parse_ip_strict("10.20.3.4"), 5432));
  EXPECT_FALSE(s->policy->covered_by_allow_net(*acl::parse_ip_strict("10.20.3.4"), 22));

  EXPECT_EQ(one_error("allow_net 10.0.0.1/8"),
            "t.conf:1: invalid network '10.0.0.1/8': host bits are set (did you mean 10.0.0.0/8?)");
  EXPECT_EQ(one_error("allow_net fd00::1/8"),
            "t.conf:1: invalid network 'fd00::1/8': host bits are set (did you mean fd00::/8?)");
  EXPECT_THAT(one_error("allow_net 10.0.0.0/33"), HasSubstr("the prefix length is 0..32"));
  EXPECT_THAT(one_error("allow_net internal.net"), HasSubstr("write ADDRESS/PREFIX"));
  EXPECT_THAT(one_error("allow_net ports=80"), HasSubstr("allow_net needs an argument"));
  EXPECT_THAT(one_error("allow_net 10.0.0.0/8 port=80"), HasSubstr("(did you mean ports=?)"));
}

TEST(ConfigRules, Groups) {
  // Defined after use: resolved at the end.
  auto s = ok("allow x.com group=ci\ngroup ci 10.1.0.0/16 fd00:1::/32\ngroup dev 10.2.0.0/16");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->groups.size(), 2u);
  EXPECT_EQ(s->groups[0].name, "ci");
  EXPECT_EQ(s->groups[0].nets.size(), 2u);
  EXPECT_EQ(s->policy->groups().size(), 2u);
  EXPECT_TRUE(s->policy->decide("x.com", 443, "", *acl::parse_ip_strict("10.1.2.3")).allowed);
  EXPECT_FALSE(s->policy->decide("x.com", 443, "", *acl::parse_ip_strict("10.2.2.3")).allowed);

  EXPECT_EQ(one_error("\nallow x.com group=devs"),
            "t.conf:2: group 'devs' is not defined (add a line: group devs CIDR..., or group=devs on an agent line)");
  EXPECT_EQ(one_error("group a 10.0.0.0/8\ngroup a 11.0.0.0/8"), "t.conf:2: group a given twice (first at t.conf:1)");
  EXPECT_THAT(one_error("group a"), HasSubstr("group needs more arguments"));
  EXPECT_THAT(one_error("group a/b 10.0.0.0/8"), HasSubstr("invalid group name 'a/b'"));
  // A bad network in a group: one error, and group= still finds the group.
  EXPECT_THAT(one_error("group a 10.0.0.1/8\nallow x.com group=a"), HasSubstr("t.conf:1: invalid network"));
}

TEST(ConfigRules, AnomalyDefaultsAndValues) {
  auto d = ok("")->anomaly;
  EXPECT_EQ(d.window.count(), 60'000);
  EXPECT_EQ(d.unique_domains, 10u);
  EXPECT_EQ(d.bytes_out, 1u << 20);
  EXPECT_EQ(d.total_bytes_out, 50u << 20);
  EXPECT_DOUBLE_EQ(d.requests_per_second, 2.0);
  EXPECT_DOUBLE_EQ(d.error_rate, 0.30);
  EXPECT_EQ(d.min_requests, 5u);
  EXPECT_EQ(d.action, anomaly_action::log);

  auto a = ok("anomaly window=5m unique_domains=20 bytes_out=2M\n"
              "anomaly total_bytes_out=1G requests=30/s error_rate=12.5% min_requests=0 action=block:10m")
               ->anomaly;
  EXPECT_EQ(a.window.count(), 300'000);
  EXPECT_EQ(a.unique_domains, 20u);
  EXPECT_EQ(a.bytes_out, 2u << 20);
  EXPECT_EQ(a.total_bytes_out, 1u << 30);
  EXPECT_DOUBLE_EQ(a.requests_per_second, 30.0);
  EXPECT_DOUBLE_EQ(a.error_rate, 0.125);
  EXPECT_EQ(a.min_requests, 0u);
  EXPECT_EQ(a.action, anomaly_action::block);
  EXPECT_EQ(a.block_for.count(), 600'000);
  EXPECT_EQ(ok("anomaly action=log")->anomaly.action, anomaly_action::log);
}

TEST(ConfigRules, AnomalyErrors) {
  EXPECT_EQ(one_error("anomaly window=1m\nanomaly window=2m"),
            "t.conf:2: anomaly window= given twice (first at t.conf:1)");
  EXPECT_THAT(one_error("anomaly unique_domain=5"), HasSubstr("(did you mean unique_domains=?)"));
  EXPECT_THAT(one_error("anomaly"), HasSubstr("anomaly needs at least one KEY=VALUE"));
  EXPECT_THAT(one_error("anomaly window=0s"), HasSubstr("anomaly window=0s is out of range (1s to 24h)"));
  EXPECT_THAT(one_error("anomaly error_rate=30"), HasSubstr("invalid error_rate= '30'"));
  EXPECT_THAT(one_error("anomaly error_rate=0%"), HasSubstr("invalid error_rate="));
  EXPECT_THAT(one_error("anomaly error_rate=101%"), HasSubstr("invalid error_rate="));
  EXPECT_THAT(one_error("anomaly requests=120"), HasSubstr("invalid requests= '120'"));
  EXPECT_THAT(one_error("anomaly bytes_out=1X"), HasSubstr("invalid size '1X' for bytes_out="));
  EXPECT_THAT(one_error("anomaly action=block"), HasSubstr("invalid action= 'block'"));
  EXPECT_THAT(one_error("anomaly action=block:5"), HasSubstr("for anomaly action=block:"));
  EXPECT_THAT(one_error("anomaly unique_domains=0"), HasSubstr("invalid unique_domains= '0'"));
}

TEST(ConfigRules, SummaryCountsByKind) {
  auto s = ok("allow a.com\nallow .b.com\nallow *.c.com\nallow ~x+\\.d\\.com\ndeny .e.com\n"
              "allow_net 10.0.0.0/8 11.0.0.0/8\nresolver 10.0.0.2");
  ASSERT_TRUE(s);
  std::string out = summary(*s);
  EXPECT_THAT(out, HasSubstr("allow rules: 4 (1 exact, 1 suffix, 1 wildcard, 1 regex)"));
  EXPECT_THAT(out, HasSubstr("deny rules: 1 (0 exact, 1 suffix, 0 wildcard, 0 regex)"));
  EXPECT_THAT(out, HasSubstr("allow_net: 1 lines, 2 networks"));
  EXPECT_THAT(out, HasSubstr("listen: 127.0.0.9:1 mode=proxy"));
  EXPECT_THAT(out, HasSubstr("resolvers: 10.0.0.2:53"));
  EXPECT_THAT(out, HasSubstr("threads: auto"));
  EXPECT_THAT(out, HasSubstr("files: t.conf"));
  EXPECT_THAT(out, HasSubstr("timeouts: connect=10s idle=300s header=30s drain=30s dns=5s"));
}

}  // namespace
}  // namespace egressd::config
