// Decision semantics of the compiled allowlist: patterns, specificity,
// deny precedence, port/method/group reasons, address checks.

#include "acl/policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

namespace egressd::acl {
namespace {

rule allow(std::string pattern, std::vector<uint16_t> ports = {80, 443},
           std::vector<std::string> methods = {}, std::string group = {}) {
  rule r;
  r.action = rule::action_t::allow;
  r.pattern = std::move(pattern);
  r.ports = std::move(ports);
  r.methods = std::move(methods);
  r.group = std::move(group);
  return r;
}

rule deny(std::string pattern) {
  rule r;
  r.action = rule::action_t::deny;
  r.pattern = std::move(pattern);
  r.ports.clear();
  return r;
}

ip_address ip(const char* s) { return *parse_ip_strict(s); }

cidr net(const char* s) { return *parse_cidr(s); }

std::unique_ptr<policy> make(std::vector<rule> rules, std::vector<net_rule> nets = {},
                             std::vector<client_group> groups = {}) {
  std::vector<build_error> errs;
  auto p = policy::build(std::move(rules), std::move(nets), std::move(groups), &errs);
  EXPECT_TRUE(errs.empty()) << errs.front().message;
  EXPECT_TRUE(p);
  return p;
}

const ip_address any_client = ip("10.1.2.3");

struct name_case {
  const char* host;
  bool allowed;
  int rule_index;  // expected rule, -1 = none
};

void check(const policy& p, const std::vector<name_case>& cases, uint16_t port = 443,
           std::string_view method = {}) {
  for (const auto& c : cases) {
    decision d = p.decide(c.host, port, method, any_client);
    EXPECT_EQ(d.allowed, c.allowed) << c.host;
    EXPECT_EQ(d.rule_index, c.rule_index) << c.host;
    if (c.rule_index >= 0) {
      ASSERT_NE(d.matched, nullptr) << c.host;
      EXPECT_EQ(d.matched, &p.rules()[static_cast<size_t>(c.rule_index)]) << c.host;
    } else {
      EXPECT_EQ(d.matched, nullptr) << c.host;
    }
    EXPECT_EQ(d.why, c.allowed ? reason::none
                     : c.rule_index >= 0 ? reason::denied_rule
                                         : reason::not_allowed)
        << c.host;
  }
}

TEST(AclPolicy, PatternSemantics) {
  auto p = make({allow("allowed.test"), allow(".suffix.test"), allow("*.wild.test"),
                 allow("~api[0-9]+\\.regex\\.test")});
  check(*p, {
                {"allowed.test", true, 0},
                {"ALLOWED.Test", true, 0},
                {"allowed.test.", true, 0},
                {"allowed.test..", false, -1},
                {"allowed.test.evil.test", false, -1},
                {"sub.allowed.test", false, -1},
                {"evilallowed.test", false, -1},
                {"allowed.tes", false, -1},
                {"llowed.test", false, -1},
                {"suffix.test", true, 1},
                {"a.suffix.test", true, 1},
                {"a.b.c.suffix.test", true, 1},
                {"A.SUFFIX.TEST.", true, 1},
                {"evilsuffix.test", false, -1},
                {"suffix.test.evil", false, -1},
                {"wild.test", false, -1},
                {"a.wild.test", true, 2},
                {"a.b.wild.test", true, 2},
                {"evilwild.test", false, -1},
                {"api1.regex.test", true, 3},
                {"API42.regex.test.", true, 3},
                {"api.regex.test", false, -1},
                {"xapi1.regex.test", false, -1},  // full match, not search
                {"api1.regex.test.evil", false, -1},
                {"", false, -1},
                {".", false, -1},
                {"bad host", false, -1},
                {"*.wild.test", false, -1},
            });
}

TEST(AclPolicy, OverlapMostSpecificSuppliesLimits) {
  auto p = make({allow(".github.com"), allow("api.github.com"), allow("*.api.github.com"),
                 allow("~.*\\.github\\.com"), allow(".com")});
  check(*p, {
                {"api.github.com", true, 1},    // exact beats suffix
                {"github.com", true, 0},        // suffix github.com beats .com and regex
                {"x.api.github.com", true, 2},  // longer wildcard beats shorter suffix
                {"codeload.github.com", true, 0},
                {"example.com", true, 4},  // .com beats nothing; regex needs a dot prefix
                {"com", true, 4},
            });
}

TEST(AclPolicy, SuffixAndWildcardSameDomainEarlierWins) {
  auto a = make({allow("*.x.test"), allow(".x.test")});
  check(*a, {{"a.x.test", true, 0}, {"x.test", true, 1}});
  auto b = make({allow(".x.test"), allow("*.x.test")});
  check(*b, {{"a.x.test", true, 0}, {"x.test", true, 0}});
  auto c = make({allow("a.test"), allow("a.test")});
  check(*c, {{"a.test", true, 0}});
}

TEST(AclPolicy, RegexAfterNamesThenEarliest) {
  auto p = make({allow("~.*"), allow("~a\\..*"), allow(".b.test")});
  check(*p, {{"a.b.test", true, 2}, {"a.c.test", true, 0}, {"z", true, 0}});
}

TEST(AclPolicy, DenyOverridesRegardlessOfOrder) {
  std::vector<rule> rules = {allow(".example.com"), allow("api.example.com"),
                             deny("bad.example.com"), deny("*.evil.example.com"),
                             deny("~.*\\.tracker\\.example\\.com")};
  for (int perm = 0; perm < 20; ++perm) {
    std::vector<rule> shuffled = rules;
    std::mt19937 rng(static_cast<unsigned>(perm));
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    auto p = make(shuffled);
    auto expect = [&](const char* host, bool allowed, const char* rule_pattern) {
      decision d = p->decide(host, 443, {}, any_client);
      EXPECT_EQ(d.allowed, allowed) << host;
      ASSERT_NE(d.matched, nullptr) << host;
      EXPECT_EQ(d.matched->pattern, rule_pattern) << host;
      EXPECT_EQ(d.why, allowed ? reason::none : reason::denied_rule) << host;
    };
    expect("example.com", true, ".example.com");
    expect("api.example.com", true, "api.example.com");
    expect("bad.example.com", false, "bad.example.com");
    expect("evil.example.com", true, ".example.com");
    expect("x.evil.example.com", false, "*.evil.example.com");
    expect("a.tracker.example.com", false, "~.*\\.tracker\\.example\\.com");
  }
}

TEST(AclPolicy, DenyIgnoresPortAndMethod) {
  auto p = make({deny(".blocked.test"), allow("*.blocked.test", {1, 2, 3})});
  for (uint16_t port : {1, 80, 443, 65535}) {
    decision d = p->decide("x.blocked.test", port, "GET", any_client);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.why, reason::denied_rule);
    EXPECT_EQ(d.rule_index, 0);
  }
}

TEST(AclPolicy, PortAndMethodReasons) {
  auto p = make({allow("api.test", {443}, {"GET", "POST"}), allow(".api.test", {8443}),
                 allow("other.test", {80}, {"GET"})});
  struct {
    const char* host;
    uint16_t port;
    const char* method;
    reason why;
    int rule_index;
  } cases[] = {
      {"api.test", 443, "GET", reason::none, 0},
      {"api.test", 443, "POST", reason::none, 0},
      {"api.test", 443, "", reason::none, 0},        // tunnel: methods not checked
      {"api.test", 443, "DELETE", reason::method, -1},
      {"api.test", 443, "get", reason::method, -1},  // methods are case-sensitive
      {"api.test", 80, "GET", reason::port, -1},
      {"api.test", 8443, "DELETE", reason::none, 1},  // the suffix rule fits instead
      {"x.api.test", 443, "GET", reason::port, -1},
      {"x.api.test", 8443, "", reason::none, 1},
      {"other.test", 80, "GET", reason::none, 2},
      {"other.test", 80, "PUT", reason::method, -1},
      {"other.test", 80, "", reason::none, 2},
      {"other.test", 443, "PUT", reason::port, -1},
      {"unknown.test", 443, "GET", reason::not_allowed, -1},
  };
  for (const auto& c : cases) {
    decision d = p->decide(c.host, c.port, c.method, any_client);
    SCOPED_TRACE(std::string(c.host) + ":" + std::to_string(c.port) + " " + c.method);
    EXPECT_EQ(d.allowed, c.why == reason::none);
    EXPECT_STREQ(to_string(d.why), to_string(c.why));
    EXPECT_EQ(d.rule_index, c.rule_index);
  }
}

TEST(AclPolicy, EmptyPortsMeanDefault) {
  auto p = make({allow("a.test", {})});
  EXPECT_TRUE(p->decide("a.test", 80, {}, any_client).allowed);
  EXPECT_TRUE(p->decide("a.test", 443, {}, any_client).allowed);
  EXPECT_EQ(p->decide("a.test", 22, {}, any_client).why, reason::port);
}

TEST(AclPolicy, Groups) {
  std::vector<client_group> groups = {{"ci", {net("10.0.0.0/24"), net("fd00::/8")}},
                                      {"dev", {net("10.0.1.0/24")}}};
  auto p = make({allow("ci.test", {443}, {}, "ci"), allow(".shared.test"),
                 allow("x.shared.test", {443}, {}, "dev"), allow("port.test", {443}, {}, "ci"),
                 allow("port.test", {80}, {}, "dev")},
                {}, groups);
  struct {
    const char* host;
    uint16_t port;
    const char* client;
    reason why;
    int rule_index;
  } cases[] = {
      {"ci.test", 443, "10.0.0.5", reason::none, 0},
      {"ci.test", 443, "::ffff:10.0.0.5", reason::none, 0},
      {"ci.test", 443, "fd00::5", reason::none, 0},
      {"ci.test", 443, "10.0.1.5", reason::not_allowed, -1},
      {"ci.test", 80, "10.0.0.5", reason::port, -1},
      {"ci.test", 80, "10.0.1.5", reason::not_allowed, -1},  // group never fit
      {"x.shared.test", 443, "10.0.1.5", reason::none, 2},   // most specific for dev
      {"x.shared.test", 443, "10.0.0.5", reason::none, 1},   // everyone else: the suffix
      {"port.test", 443, "10.0.0.5", reason::none, 3},
      {"port.test", 80, "10.0.1.5", reason::none, 4},
      {"port.test", 80, "10.0.0.5", reason::port, -1},
      {"port.test", 443, "192.168.0.1", reason::not_allowed, -1},
  };
  for (const auto& c : cases) {
    decision d = p->decide(c.host, c.port, {}, ip(c.client));
    SCOPED_TRACE(std::string(c.host) + ":" + std::to_string(c.port) + " from " + c.client);
    EXPECT_EQ(d.allowed, c.why == reason::none);
    EXPECT_STREQ(to_string(d.why), to_string(c.why));
    EXPECT_EQ(d.rule_index, c.rule_index);
  }
}

TEST(AclPolicy, BuildErrors) {
  std::vector<build_error> errs;
  auto p = policy::build({allow("ok.test"), allow("~(unclosed"), allow("g.test", {443}, {}, "nope"),
                          allow("a..b"), allow("~[a-")},
                         {}, {}, &errs);
  EXPECT_EQ(p, nullptr);  // never a partial policy
  ASSERT_EQ(errs.size(), 4u);
  std::sort(errs.begin(), errs.end(),
            [](const build_error& a, const build_error& b) { return a.rule_index < b.rule_index; });
  EXPECT_EQ(errs[0].rule_index, 1);
  EXPECT_NE(errs[0].message.find("regular expression"), std::string::npos) << errs[0].message;
  EXPECT_EQ(errs[1].rule_index, 2);
  EXPECT_NE(errs[1].message.find("unknown group 'nope'"), std::string::npos);
  EXPECT_EQ(errs[2].rule_index, 3);
  EXPECT_EQ(errs[3].rule_index, 4);
  EXPECT_EQ(policy::build({allow("~(")}, {}, {}, nullptr), nullptr);  // errors optional
}

TEST(AclPolicy, EmptyPolicyDeniesEverything) {
  auto p = make({});
  EXPECT_EQ(p->decide("example.com", 443, {}, any_client).why, reason::not_allowed);
  policy empty;
  EXPECT_FALSE(empty.decide("example.com", 443, {}, any_client).allowed);
  EXPECT_TRUE(empty.rules().empty());
  policy moved = std::move(*p);
  EXPECT_FALSE(moved.decide("example.com", 443, {}, any_client).allowed);
}

TEST(AclPolicy, AddressChecks) {
  net_rule internal;
  internal.nets = {net("10.5.0.0/16"), net("fd00:1::/32")};
  net_rule db;
  db.nets = {net("192.168.1.10")};
  db.ports = {5432};
  auto p = make({}, {internal, db});
  struct {
    const char* addr;
    uint16_t port;
    bool covered;
    bool allowed;
  } cases[] = {
      {"8.8.8.8", 443, false, true},
      {"::ffff:8.8.8.8", 443, false, true},
      {"2606:4700:4700::1111", 443, false, true},
      {"10.5.1.1", 443, true, true},
      {"10.5.1.1", 1, true, true},
      {"::ffff:10.5.1.1", 22, true, true},  // mapped judged as v4
      {"10.6.0.1", 443, false, false},
      {"192.168.1.10", 5432, true, true},
      {"192.168.1.10", 443, false, false},
      {"192.168.1.11", 5432, false, false},
      {"fd00:1::5", 443, true, true},
      {"fd00:2::5", 443, false, false},
      {"127.0.0.1", 80, false, false},
      {"::1", 80, false, false},
      {"169.254.169.254", 80, false, false},
      {"::ffff:169.254.169.254", 80, false, false},
      {"64:ff9b::a9fe:a9fe", 80, false, false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(p->covered_by_allow_net(ip(c.addr), c.port), c.covered) << c.addr << ":" << c.port;
    EXPECT_EQ(p->address_allowed(ip(c.addr), c.port), c.allowed) << c.addr << ":" << c.port;
  }
}

TEST(AclPolicy, ReasonCodes) {
  struct {
    reason r;
    const char* code;
  } cases[] = {
      {reason::not_allowed, "not_allowed"},
      {reason::denied_rule, "denied_rule"},
      {reason::port, "port"},
      {reason::method, "method"},
      {reason::non_public_address, "non_public_address"},
      {reason::ip_literal, "ip_literal"},
      {reason::self, "self"},
      {reason::anomaly_block, "anomaly_block"},
      {reason::rate_limited, "rate_limited"},
      {reason::conns_limited, "conns_limited"},
      {reason::bad_request, "bad_request"},
      {reason::header_too_large, "header_too_large"},
      {reason::uri_too_long, "uri_too_long"},
      {reason::dns_failure, "dns_failure"},
      {reason::dns_timeout, "dns_timeout"},
      {reason::upstream_unreachable, "upstream_unreachable"},
      {reason::upstream_reset, "upstream_reset"},
      {reason::upstream_timeout, "upstream_timeout"},
      {reason::sni_mismatch, "sni_mismatch"},
      {reason::no_sni, "no_sni"},
      {reason::not_tls, "not_tls"},
      {reason::client_closed, "client_closed"},
      {reason::idle_timeout, "idle_timeout"},
      {reason::shutdown, "shutdown"},
  };
  for (const auto& c : cases) EXPECT_STREQ(to_string(c.r), c.code);
}

TEST(AclPolicy, ManyRulesAndManyRegexes) {
  std::vector<rule> rules;
  for (int i = 0; i < 5000; ++i) rules.push_back(allow("host" + std::to_string(i) + ".test"));
  for (int i = 0; i < 200; ++i)
    rules.push_back(allow("~r" + std::to_string(i) + "-[a-z]+\\.(x|y)\\.test"));
  rules.push_back(deny("~.*\\.deny\\.test"));
  auto p = make(std::move(rules));
  EXPECT_EQ(p->decide("host4999.test", 443, {}, any_client).rule_index, 4999);
  EXPECT_EQ(p->decide("r137-abc.y.test", 443, {}, any_client).rule_index, 5137);
  EXPECT_FALSE(p->decide("r137-abc.z.test", 443, {}, any_client).allowed);
  EXPECT_EQ(p->decide("a.deny.test", 443, {}, any_client).why, reason::denied_rule);
}

}  // namespace
}  // namespace egressd::acl
