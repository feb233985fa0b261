// What proxy credentials add to judging a request (SPEC "Agents by name"):
// authenticate() for Basic and Bearer credentials (parse, base64, one
// SHA-256, one hash probe, CRYPTO_memcmp) against 10 and 100k agents, each
// followed by the same policy::decide; and the decide alone, as a request
// without credentials under `auth off` costs; and `judge_basic_cached`, a
// keep-alive connection repeating its credentials. The difference between a
// `judge_*` row and `judge_anonymous` is the per-request cost of auth
// (target <= 1 us).

#include <openssl/evp.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "acl/agents.hpp"
#include "acl/auth_throttle.hpp"
#include "acl/credentials.hpp"
#include "acl/policy.hpp"

namespace {

using namespace egressd::acl;

std::string token_of(int i) { return "tok-" + std::to_string(i) + "-0123456789abcdef0123456789abcdef"; }

const agent_table& agents_of(int n) {
  static std::map<int, std::unique_ptr<agent_table>> cache;
  auto& t = cache[n];
  if (!t) {
    std::vector<agent> v(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      v[size_t(i)].name = "agent-" + std::to_string(i);
      sha256(token_of(i), &v[size_t(i)].digest);
    }
    t = std::make_unique<agent_table>(std::move(v));
  }
  return *t;
}

const policy& the_policy() {
  static std::unique_ptr<policy> p = [] {
    std::vector<rule> rules;
    for (int i = 0; i < 1000; ++i) {
      rule r;
      r.pattern = ".svc" + std::to_string(i) + ".example.com";
      r.ports = {443};
      if (i % 2) r.agents = {"agent-" + std::to_string(i % 10)};
      rules.push_back(std::move(r));
    }
    return policy::build(std::move(rules), {}, {}, nullptr);
  }();
  return *p;
}

// Standard base64 by OpenSSL (the oracle the strict decoder is held to).
std::string b64(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

void judge(benchmark::State& state, const presented_credentials& creds, auth_mode mode,
           credential_cache* cache = nullptr) {
  const agent_table& t = agents_of(static_cast<int>(state.range(0)));
  const policy& p = the_policy();
  auth_throttle throttle(4096);
  const ip_address addr = ip_address::v4(0x0a000001);
  const auto now = auth_throttle::clock::now();
  for (auto _ : state) {
    auth_outcome a = authenticate(mode, t, throttle, addr, creds, now, cache);
    client_id who;
    who.addr = addr;
    if (a.who) {
      who.agent = a.who->name;
      who.agent_group_index = a.who->group_index;
    }
    decision d = p.decide("api.svc7.example.com", 443, {}, who);
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(d);
  }
}

void judge_anonymous(benchmark::State& state) { judge(state, {}, auth_mode::off); }

void judge_basic(benchmark::State& state) {
  const std::string v = "Basic " + b64("agent-7:" + token_of(7));
  judge(state, presented_credentials{1, v}, auth_mode::required);
}

// A keep-alive connection repeating its credentials (the session's cache).
void judge_basic_cached(benchmark::State& state) {
  const std::string v = "Basic " + b64("agent-7:" + token_of(7));
  credential_cache cache;
  judge(state, presented_credentials{1, v}, auth_mode::required, &cache);
}

void judge_bearer(benchmark::State& state) {
  const std::string v = "Bearer " + token_of(7);
  judge(state, presented_credentials{1, v}, auth_mode::required);
}

// A wrong token: the same work plus the throttle's (locked) failure count.
void judge_basic_wrong(benchmark::State& state) {
  const std::string v = "Basic " + b64("agent-7:not-the-token-0123456789abcdef");
  const agent_table& t = agents_of(static_cast<int>(state.range(0)));
  auth_throttle throttle(1 << 20);
  uint32_t i = 0;
  const auto now = auth_throttle::clock::now();
  for (auto _ : state) {
    // A fresh address per attempt, so no throttle starts.
    auth_outcome a = authenticate(auth_mode::required, t, throttle, ip_address::v4(0x0a000000 + (i++ % 500000)),
                                  presented_credentials{1, v}, now);
    benchmark::DoNotOptimize(a);
  }
}

void sha256_token(benchmark::State& state) {
  const std::string tok = token_of(7);
  token_digest d;
  for (auto _ : state) {
    sha256(tok, &d);
    benchmark::DoNotOptimize(d);
  }
}

BENCHMARK(judge_anonymous)->Arg(10);
BENCHMARK(judge_basic)->Arg(10)->Arg(100000);
BENCHMARK(judge_basic_cached)->Arg(10);
BENCHMARK(judge_bearer)->Arg(10)->Arg(100000);
BENCHMARK(judge_basic_wrong)->Arg(10);
BENCHMARK(sha256_token);

}  // namespace
