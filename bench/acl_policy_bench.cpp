// Micro-benchmarks for acl::policy::decide at 1k, 100k and 1M rules (exact,
// suffix and wildcard names plus a few regexes; hits and misses), for the
// policy build (the reload cost), and for IP-literal parsing + classification.
// Policies are built once per size outside the timed loops.

#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "acl/address_class.hpp"
#include "acl/ip_address.hpp"
#include "acl/policy.hpp"

namespace {

using namespace egressd::acl;

rule make_rule(rule::action_t action, std::string pattern) {
  rule r;
  r.action = action;
  r.pattern = std::move(pattern);
  if (action == rule::action_t::allow) r.ports = {80, 443};
  return r;
}

// One third each exact / suffix / wildcard, a deny every 97 rules, and five
// regexes (one deny).
std::vector<rule> make_rules(int n) {
  std::vector<rule> rules;
  rules.reserve(static_cast<size_t>(n) + 5);
  for (int i = 0; i < n; ++i) {
    const std::string id = std::to_string(i);
    const auto act = i % 97 == 0 ? rule::action_t::deny : rule::action_t::allow;
    std::string pattern;
    switch (i % 3) {
      case 0: pattern = "api" + id + ".svc" + std::to_string(i % 1000) + ".com"; break;
      case 1: pattern = ".s" + id + ".example.net"; break;
      default: pattern = "*.w" + id + ".example.org"; break;
    }
    rules.push_back(make_rule(act, std::move(pattern)));
  }
  using act = rule::action_t;
  rules.push_back(make_rule(act::allow, "~[a-z0-9-]+\\.s3\\.[a-z0-9-]+\\.amazonaws\\.com"));
  rules.push_back(make_rule(act::allow, "~(www|api)[0-9]*\\.regex\\.test"));
  rules.push_back(make_rule(act::allow, "~.*\\.blob\\.core\\.windows\\.net"));
  rules.push_back(make_rule(act::allow, "~runner-[0-9a-f]{8}\\.ci\\.internal"));
  rules.push_back(make_rule(act::deny, "~.*(tracker|telemetry).*"));
  return rules;
}

const policy& policy_of(int n) {
  static std::map<int, std::unique_ptr<policy>> cache;
  auto& p = cache[n];
  if (!p) p = policy::build(make_rules(n), {}, {}, nullptr);
  return *p;
}

std::vector<std::string> hit_hosts(int n) {
  std::vector<std::string> hosts;
  for (int k = 0; k < 1024; ++k) {
    int i = static_cast<int>((static_cast<uint64_t>(k) * 2654435761u) % static_cast<uint64_t>(n));
    if (i % 97 == 0) ++i;  // skip the deny rules: measure allows
    const std::string id = std::to_string(i);
    switch (i % 3) {
      case 0: hosts.push_back("API" + id + ".svc" + std::to_string(i % 1000) + ".com."); break;
      case 1: hosts.push_back("deep.sub.s" + id + ".example.net"); break;
      default: hosts.push_back("x.w" + id + ".example.org"); break;
    }
  }
  return hosts;
}

std::vector<std::string> miss_hosts() {
  std::vector<std::string> hosts;
  for (int k = 0; k < 1024; ++k)
    hosts.push_back("nohost" + std::to_string(k) + ".a.b.c.unknown-domain.io");
  return hosts;
}

const ip_address client = ip_address::v4(0x0a000001);

void BM_decide_hit(benchmark::State& state) {
  const policy& p = policy_of(static_cast<int>(state.range(0)));
  const auto hosts = hit_hosts(static_cast<int>(state.range(0)));
  size_t k = 0, allowed = 0;
  for (auto _ : state) {
    decision d = p.decide(hosts[k++ & 1023], 443, {}, client);
    allowed += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  if (allowed != static_cast<size_t>(state.iterations())) state.SkipWithError("expected hits");
}

void BM_decide_miss(benchmark::State& state) {
  const policy& p = policy_of(static_cast<int>(state.range(0)));
  const auto hosts = miss_hosts();
  size_t k = 0, allowed = 0;
  for (auto _ : state) {
    decision d = p.decide(hosts[k++ & 1023], 443, {}, client);
    allowed += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  if (allowed != 0) state.SkipWithError("expected misses");
}

void BM_decide_regex_hit(benchmark::State& state) {
  const policy& p = policy_of(static_cast<int>(state.range(0)));
  const std::vector<std::string> hosts = {"my-bucket.s3.us-east-1.amazonaws.com",
                                          "api42.regex.test", "acct.blob.core.windows.net",
                                          "runner-0badf00d.ci.internal"};
  size_t k = 0, allowed = 0;
  for (auto _ : state) {
    decision d = p.decide(hosts[k++ & 3], 443, {}, client);
    allowed += d.allowed;
    benchmark::DoNotOptimize(d);
  }
  if (allowed != static_cast<size_t>(state.iterations())) state.SkipWithError("expected hits");
}

void BM_build(benchmark::State& state) {
  const auto rules = make_rules(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto p = policy::build(rules, {}, {}, nullptr);
    benchmark::DoNotOptimize(p);
  }
}

void BM_parse_ip_literal_classify(benchmark::State& state) {
  const std::vector<std::string> hosts = {"8.8.8.8", "127.1", "2130706433", "0x7f000001",
                                          "0177.0.0.1", "[::1]", "[::ffff:169.254.169.254]",
                                          "2001:4860:4860::8888", "api.github.com",
                                          "256.256.256.256"};
  size_t k = 0, public_count = 0;
  for (auto _ : state) {
    const std::string& h = hosts[k++ % hosts.size()];
    if (auto a = parse_ip_literal(h)) {
      public_count += is_public(classify(*a));
    } else {
      benchmark::DoNotOptimize(looks_like_ip_literal(h));
    }
  }
  benchmark::DoNotOptimize(public_count);
}

BENCHMARK(BM_decide_hit)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_decide_miss)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_decide_regex_hit)->Arg(1000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_build)
    ->Arg(1000)
    ->Arg(100000)
    ->Arg(1000000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_parse_ip_literal_classify);

}  // namespace
