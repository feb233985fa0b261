// Agents by name, the pure side: token hashes, the digest table, parsing
// Proxy-Authorization (Basic / Bearer, malformed base64), the per-request
// authenticate() decision, the failure throttle's window, and agent= /
// agent-group matching in the policy.
#include <openssl/evp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "acl/agents.hpp"
#include "acl/auth_throttle.hpp"
#include "acl/credentials.hpp"
#include "acl/policy.hpp"

namespace egressd::acl {
namespace {

using namespace std::chrono_literals;

token_digest digest_of(std::string_view token) {
  token_digest d{};
  EXPECT_TRUE(sha256(token, &d));
  return d;
}

agent make_agent(std::string name, std::string_view token, std::vector<std::string> groups = {}) {
  agent a;
  a.name = std::move(name);
  a.digest = digest_of(token);
  a.groups = std::move(groups);
  return a;
}

// Standard base64 by OpenSSL (the oracle the strict decoder is held to).
std::string b64(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::vector<agent> two_agents() {
  std::vector<agent> v;
  v.push_back(make_agent("build-7", "s3cret-one", {"ci"}));
  v.push_back(make_agent("reviewer", "s3cret-two"));
  return v;
}

TEST(AclAgents, Sha256KnownAnswer) {
  // printf 'abc' | sha256sum
  EXPECT_EQ(format_token_hash(digest_of("abc")),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AclAgents, ParseTokenHash) {
  const std::string hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  auto d = parse_token_hash("sha256:" + hex);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, digest_of("abc"));
  std::string upper = hex;
  for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(parse_token_hash("sha256:" + upper), d);  // hex is case-insensitive
  EXPECT_EQ(parse_token_hash("SHA256:" + hex), d);
  EXPECT_FALSE(parse_token_hash(hex));                          // no prefix
  EXPECT_FALSE(parse_token_hash("sha256:" + hex.substr(1)));    // 63 digits
  EXPECT_FALSE(parse_token_hash("sha256:" + hex + "0"));        // 65 digits
  EXPECT_FALSE(parse_token_hash("sha256:" + hex.substr(1) + "g"));
  EXPECT_FALSE(parse_token_hash("md5:" + hex));
  EXPECT_FALSE(parse_token_hash(""));
}

TEST(AclAgents, AgentNames) {
  EXPECT_TRUE(valid_agent_name("build-7"));
  EXPECT_TRUE(valid_agent_name("A.b_c-9"));
  EXPECT_TRUE(valid_agent_name(std::string(64, 'a')));
  EXPECT_FALSE(valid_agent_name(std::string(65, 'a')));
  EXPECT_FALSE(valid_agent_name(""));
  EXPECT_FALSE(valid_agent_name("a:b"));
  EXPECT_FALSE(valid_agent_name("a b"));
  EXPECT_FALSE(valid_agent_name("agent/1"));
}

TEST(AclAgents, TableFindsByDigestOnly) {
  agent_table t(two_agents());
  ASSERT_NE(t.find(digest_of("s3cret-one")), nullptr);
  EXPECT_EQ(t.find(digest_of("s3cret-one"))->name, "build-7");
  EXPECT_EQ(t.find(digest_of("s3cret-two"))->name, "reviewer");
  EXPECT_EQ(t.find(digest_of("s3cret-three")), nullptr);
  // A digest equal in its first 8 bytes (the hash) but not the rest must
  // not match: the whole digest is compared.
  token_digest near = digest_of("s3cret-one");
  near[31] ^= 1;
  EXPECT_EQ(t.find(near), nullptr);
  near = digest_of("s3cret-one");
  near[8] ^= 0x80;
  EXPECT_EQ(t.find(near), nullptr);
  EXPECT_EQ(t.index_of(t.find(digest_of("s3cret-two"))), 1);
  EXPECT_EQ(t.find_name("reviewer"), t.find(digest_of("s3cret-two")));
  EXPECT_EQ(t.find_name("nobody"), nullptr);
}

TEST(AclAgents, Base64Strict) {
  std::string out;
  EXPECT_TRUE(decode_base64("YWxpY2U6dG9rMQ==", &out));
  EXPECT_EQ(out, "alice:tok1");
  EXPECT_TRUE(decode_base64("YWJj", &out));
  EXPECT_EQ(out, "abc");
  EXPECT_TRUE(decode_base64("YWI=", &out));
  EXPECT_EQ(out, "ab");
  EXPECT_FALSE(decode_base64("", &out));
  EXPECT_FALSE(decode_base64("YWJ", &out));        // not a multiple of 4
  EXPECT_FALSE(decode_base64("YW=j", &out));       // data after padding
  EXPECT_FALSE(decode_base64("Y===", &out));       // too much padding
  EXPECT_FALSE(decode_base64("YWI=YWJj", &out));   // padding in the middle
  EXPECT_FALSE(decode_base64("YWJ-", &out));       // URL-safe alphabet
  EXPECT_FALSE(decode_base64("YW Jj", &out));      // whitespace
  EXPECT_FALSE(decode_base64("YWJ=", &out));       // unused bits set (J = 9)
  EXPECT_FALSE(decode_base64("YR==", &out));       // unused bits set
  EXPECT_FALSE(decode_base64(std::string_view("YW\0j", 4), &out));
}

TEST(AclAgents, BasicAndBearer) {
  agent_table t(two_agents());
  auto basic = [](std::string_view user_pass) { return "Basic " + b64(user_pass); };
  ASSERT_NE(check_credentials(t, basic("build-7:s3cret-one")), nullptr);
  EXPECT_EQ(check_credentials(t, basic("build-7:s3cret-one"))->name, "build-7");
  EXPECT_EQ(check_credentials(t, "basic " + b64("build-7:s3cret-one"))->name, "build-7");  // scheme case
  EXPECT_EQ(check_credentials(t, "  Basic   " + b64("build-7:s3cret-one") + " ")->name, "build-7");
  EXPECT_EQ(check_credentials(t, "Bearer s3cret-two")->name, "reviewer");
  EXPECT_EQ(check_credentials(t, "BEARER s3cret-two")->name, "reviewer");
  // A token may contain ':' (only the first one separates the name).
  std::vector<agent> v;
  v.push_back(make_agent("c", "a:b:c"));
  agent_table colon(std::move(v));
  EXPECT_EQ(check_credentials(colon, basic("c:a:b:c"))->name, "c");

  // Name and token must both match.
  EXPECT_EQ(check_credentials(t, basic("reviewer:s3cret-one")), nullptr);
  EXPECT_EQ(check_credentials(t, basic("nobody:s3cret-one")), nullptr);
  EXPECT_EQ(check_credentials(t, basic("build-7:wrong")), nullptr);
  EXPECT_EQ(check_credentials(t, basic(":s3cret-one")), nullptr);
  EXPECT_EQ(check_credentials(t, basic("build-7:")), nullptr);
  EXPECT_EQ(check_credentials(t, basic("build-7")), nullptr);  // no colon
  EXPECT_EQ(check_credentials(t, "Bearer wrong"), nullptr);
  // Malformed.
  EXPECT_EQ(check_credentials(t, "Basic"), nullptr);
  EXPECT_EQ(check_credentials(t, "Basic "), nullptr);
  EXPECT_EQ(check_credentials(t, "Basic !!!!"), nullptr);
  EXPECT_EQ(check_credentials(t, "Basic " + b64("build-7:s3cret-one").substr(1)), nullptr);
  EXPECT_EQ(check_credentials(t, "Bearer"), nullptr);
  EXPECT_EQ(check_credentials(t, "Bearer s3cret-two extra"), nullptr);
  EXPECT_EQ(check_credentials(t, "Digest username=\"build-7\""), nullptr);
  EXPECT_EQ(check_credentials(t, "s3cret-two"), nullptr);
  EXPECT_EQ(check_credentials(t, ""), nullptr);
}

TEST(AclAgents, AuthenticateModes) {
  agent_table t(two_agents());
  auth_throttle th(16);
  const auto now = auth_throttle::clock::now();
  const ip_address a = ip_address::v4(0x0a000001);
  const presented_credentials none{};
  const presented_credentials good{1, "Bearer s3cret-one"};
  const presented_credentials bad{1, "Bearer nope"};
  const presented_credentials two{2, "Bearer s3cret-one"};

  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, none, now).why, reason::auth_required);
  EXPECT_EQ(authenticate(auth_mode::optional, t, th, a, none, now).why, reason::none);
  EXPECT_EQ(authenticate(auth_mode::optional, t, th, a, none, now).who, nullptr);
  EXPECT_EQ(th.tracked(), 0u) << "a request without credentials is not a failure";

  auto ok = authenticate(auth_mode::required, t, th, a, good, now);
  EXPECT_EQ(ok.why, reason::none);
  ASSERT_NE(ok.who, nullptr);
  EXPECT_EQ(ok.who->name, "build-7");
  EXPECT_EQ(authenticate(auth_mode::optional, t, th, a, good, now).who->name, "build-7");

  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, bad, now).why, reason::auth_failed);
  EXPECT_EQ(authenticate(auth_mode::optional, t, th, a, bad, now).why, reason::auth_failed);
  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, two, now).why, reason::auth_failed)
      << "two Proxy-Authorization fields are ambiguous";
  EXPECT_EQ(th.tracked(), 1u);

  // off: nothing is checked, credentials are ignored.
  auth_throttle th2(16);
  EXPECT_EQ(authenticate(auth_mode::off, t, th2, a, bad, now).why, reason::none);
  EXPECT_EQ(authenticate(auth_mode::off, t, th2, a, good, now).who, nullptr);
  EXPECT_EQ(th2.tracked(), 0u);
}

TEST(AclAgents, CredentialCacheOnOneConnection) {
  agent_table t(two_agents());
  agent_table other(two_agents());
  auth_throttle th(16);
  const auto now = auth_throttle::clock::now();
  const ip_address a = ip_address::v4(0x0a000001);
  credential_cache cache;
  const std::string good = "Bearer s3cret-one";
  EXPECT_EQ(cache.find(t, good), nullptr);
  auto r = authenticate(auth_mode::required, t, th, a, {1, good}, now, &cache);
  ASSERT_NE(r.who, nullptr);
  EXPECT_EQ(cache.find(t, good), r.who);
  EXPECT_EQ(cache.find(other, good), nullptr) << "another snapshot's table";
  EXPECT_EQ(cache.find(t, "Bearer s3cret-onf"), nullptr);
  EXPECT_EQ(cache.find(t, "Bearer s3cret-on"), nullptr);
  // A different value on the same connection is checked afresh.
  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, {1, "Bearer s3cret-two"}, now, &cache).who->name,
            "reviewer");
  EXPECT_EQ(cache.find(t, good), nullptr);
  // Wrong credentials are never cached, and fail.
  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, {1, "Bearer nope"}, now, &cache).why, reason::auth_failed);
  EXPECT_EQ(cache.find(t, "Bearer nope"), nullptr);
  // The throttle comes before the cache: cached good credentials still get 429.
  authenticate(auth_mode::required, t, th, a, {1, good}, now, &cache);
  for (int i = 0; i < 10; ++i) th.fail(a, now);
  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, {1, good}, now, &cache).why, reason::auth_throttled);
  cache.reset();
  EXPECT_EQ(cache.find(t, good), nullptr);
}

TEST(AclAgents, ThrottleAfterTenFailuresWithinTheWindow) {
  const auto t0 = auth_throttle::clock::now();
  auth_throttle th(64, t0);
  agent_table t(two_agents());
  const ip_address a = ip_address::v4(0x0a000001), b = ip_address::v4(0x0a000002);
  const presented_credentials bad{1, "Bearer nope"}, good{1, "Bearer s3cret-one"};
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(authenticate(auth_mode::required, t, th, a, bad, t0 + std::chrono::seconds(i)).why,
              reason::auth_failed)
        << i;
  const auto t1 = t0 + 10s;
  // Throttled: even good credentials get 429 without being checked.
  auto r = authenticate(auth_mode::required, t, th, a, good, t1);
  EXPECT_EQ(r.why, reason::auth_throttled);
  EXPECT_EQ(r.who, nullptr);
  EXPECT_GE(r.retry_after, 58u);
  EXPECT_LE(r.retry_after, 60u);
  // A request without credentials is not a failure and not throttled.
  EXPECT_EQ(authenticate(auth_mode::optional, t, th, a, {}, t1).why, reason::none);
  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, {}, t1).why, reason::auth_required);
  // Another address is unaffected.
  EXPECT_EQ(authenticate(auth_mode::required, t, th, b, good, t1).why, reason::none);
  // 60 s after the 10th failure the throttle ends.
  EXPECT_GT(th.throttled(a, t0 + 9s + 59s), 0u);
  EXPECT_EQ(th.throttled(a, t0 + 9s + 61s), 0u);
  EXPECT_EQ(authenticate(auth_mode::required, t, th, a, good, t0 + 9s + 61s).why, reason::none);
}

TEST(AclAgents, ThrottleWindowSlides) {
  const auto t0 = auth_throttle::clock::now();
  auth_throttle th(64, t0);
  const ip_address a = ip_address::v4(0x0a000001);
  // 9 failures, then one more 61 s after the first: never 10 within 60 s.
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(th.fail(a, t0 + std::chrono::seconds(i)));
  EXPECT_FALSE(th.fail(a, t0 + 61s));
  EXPECT_EQ(th.throttled(a, t0 + 62s), 0u);
  // Another address: one failure, then nine 30 s later: 10 within 60 s.
  const ip_address b = ip_address::v4(0x0a000002);
  EXPECT_FALSE(th.fail(b, t0));
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(th.fail(b, t0 + 30s + std::chrono::seconds(i)));
  EXPECT_TRUE(th.fail(b, t0 + 59s));
  EXPECT_GT(th.throttled(b, t0 + 60s), 0u);
  EXPECT_EQ(th.throttled(a, t0 + 60s), 0u);
}

TEST(AclAgents, ThrottleTableIsBounded) {
  const auto t0 = auth_throttle::clock::now();
  auth_throttle th(8, t0);
  for (uint32_t i = 0; i < 100; ++i) th.fail(ip_address::v4(0x0a000000 + i), t0);
  EXPECT_LE(th.tracked(), 8u);
  // Throttles of many addresses at once: each one is seen.
  for (uint32_t i = 0; i < 8; ++i)
    for (int k = 0; k < 10; ++k) th.fail(ip_address::v4(0x0b000000 + i), t0 + 1s);
  for (uint32_t i = 0; i < 8; ++i) EXPECT_GT(th.throttled(ip_address::v4(0x0b000000 + i), t0 + 2s), 0u) << i;
  EXPECT_EQ(th.throttled(ip_address::v4(0x0c000000), t0 + 2s), 0u);
}

TEST(AclAgents, ThrottleAcrossThreads) {
  const auto t0 = auth_throttle::clock::now();
  auth_throttle th(1024, t0);
  std::vector<std::thread> ts;
  for (int w = 0; w < 4; ++w)
    ts.emplace_back([&th, t0, w] {
      for (uint32_t i = 0; i < 200; ++i) {
        const ip_address a = ip_address::v4(0x0a000000 + (i % 50));
        th.fail(a, t0 + 1s);
        (void)th.throttled(ip_address::v4(0x0d000000 + uint32_t(w)), t0 + 1s);
      }
    });
  for (auto& t : ts) t.join();
  // 50 addresses with 16 failures each: every one throttled.
  for (uint32_t i = 0; i < 50; ++i) EXPECT_GT(th.throttled(ip_address::v4(0x0a000000 + i), t0 + 2s), 0u) << i;
}

TEST(AclAgents, PolicyAgentRulesAndAgentGroups) {
  std::vector<rule> rules(4);
  rules[0].pattern = "model.test";
  rules[0].ports = {443};
  rules[0].agents = {"build-7", "other"};
  rules[1].pattern = "pypi.test";
  rules[1].ports = {443};
  rules[1].group = "ci";
  rules[2].pattern = "everyone.test";
  rules[2].ports = {443};
  rules[3].pattern = "bad.model.test";
  rules[3].action = rule::action_t::deny;
  std::vector<client_group> groups(1);
  groups[0].name = "ci";
  groups[0].nets.push_back(*parse_cidr("10.9.0.0/16"));
  auto p = policy::build(rules, {}, groups, nullptr);
  ASSERT_TRUE(p);

  agent_table t(two_agents());
  const agent* build7 = t.find_name("build-7");
  const agent* reviewer = t.find_name("reviewer");
  const std::vector<int32_t> ci_index{0};
  client_id anon;
  anon.addr = ip_address::v4(0x0a000001);
  client_id b7 = anon;
  b7.agent = build7->name;
  b7.agent_groups = &build7->groups;
  b7.agent_group_index = ci_index;
  client_id rv = anon;
  rv.agent = reviewer->name;

  EXPECT_TRUE(p->decide("model.test", 443, {}, b7).allowed);
  EXPECT_EQ(p->decide("model.test", 443, {}, rv).why, reason::not_allowed);
  EXPECT_EQ(p->decide("model.test", 443, {}, anon).why, reason::not_allowed);
  // group=ci: the agent's membership or the address.
  EXPECT_TRUE(p->decide("pypi.test", 443, {}, b7).allowed);
  EXPECT_FALSE(p->decide("pypi.test", 443, {}, rv).allowed);
  client_id in_net = rv;
  in_net.addr = ip_address::v4(0x0a090001);
  EXPECT_TRUE(p->decide("pypi.test", 443, {}, in_net).allowed);
  // A rule without agent= applies to everyone.
  EXPECT_TRUE(p->decide("everyone.test", 443, {}, anon).allowed);
  EXPECT_TRUE(p->decide("everyone.test", 443, {}, b7).allowed);
  // A deny still wins over an agent's allow.
  EXPECT_EQ(p->decide("bad.model.test", 443, {}, b7).why, reason::denied_rule);
  // Port reasons stay as they were for the agent a rule names.
  EXPECT_EQ(p->decide("model.test", 80, {}, b7).why, reason::port);
}

}  // namespace
}  // namespace egressd::acl
