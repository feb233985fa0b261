// Data-path costs of grants (issue 10): the grant lookup a denied request
// makes (empty view, a miss among 1,000 grants, a hit), and one record into
// the denial feed (an existing group; a fresh group evicting the oldest).
// Run: build/bench/state_grants_bench

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "state/denial_feed.hpp"
#include "state/grant_view.hpp"

namespace {

using namespace egressd;

const auto now = state::clock::now();
const acl::client_id who{acl::ip_address::v4(0x0a000001), {}, nullptr};

std::shared_ptr<const state::grant_view> view_of(int n) {
  std::vector<state::grant> gs;
  for (int i = 0; i < n; ++i) {
    state::grant g;
    char name[64];
    std::snprintf(name, sizeof name, "%shost%d.example%d.test", i % 2 ? "." : "", i, i % 7);
    g.id = std::to_string(i);
    g.pattern = name;
    g.ports = {443};
    g.created = now;
    g.expires = now + std::chrono::hours(1);
    gs.push_back(std::move(g));
  }
  return state::grant_view::build(std::move(gs));
}

void BM_grant_match_empty(benchmark::State& s) {
  auto v = view_of(0);
  for (auto _ : s) benchmark::DoNotOptimize(v->match("files.example.org", 443, who, {}, now));
}
BENCHMARK(BM_grant_match_empty);

void BM_grant_match_miss_1000(benchmark::State& s) {
  auto v = view_of(1000);
  for (auto _ : s) benchmark::DoNotOptimize(v->match("a.b.files.example.org", 443, who, {}, now));
}
BENCHMARK(BM_grant_match_miss_1000);

void BM_grant_match_hit_1000(benchmark::State& s) {
  auto v = view_of(1000);
  for (auto _ : s) benchmark::DoNotOptimize(v->match("x.host501.example4.test", 443, who, {}, now));
}
BENCHMARK(BM_grant_match_hit_1000);

void BM_denial_record_existing(benchmark::State& s) {
  state::denial_feed f(1);
  for (auto _ : s) f.record(0, "", "10.0.0.1", "files.example.org", 443, acl::reason::not_allowed, now);
}
BENCHMARK(BM_denial_record_existing);

void BM_denial_record_fresh(benchmark::State& s) {
  state::denial_feed f(1);
  unsigned i = 0;
  char host[32];
  for (auto _ : s) {
    std::snprintf(host, sizeof host, "h%u.test", i++);
    f.record(0, "", "10.0.0.1", host, 443, acl::reason::not_allowed, now);
  }
}
BENCHMARK(BM_denial_record_fresh);

}  // namespace
