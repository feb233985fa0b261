// Hot-path costs of limits and metrics (issue 3): a shared token-bucket take,
// a metric increment, and the other per-request calls, each under 1 and 2
// threads. Run: build-*/bench/monitor_hot_path_bench

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "acl/bandwidth_limiter.hpp"
#include "acl/concurrency_limiter.hpp"
#include "acl/token_bucket.hpp"
#include "acl/token_bucket_table.hpp"
#include "monitor/access_log.hpp"
#include "monitor/anomaly_detector.hpp"
#include "monitor/metrics.hpp"

namespace {

using namespace egressd;
using clk = std::chrono::steady_clock;

// One bucket shared by every thread, refilling fast enough never to deny:
// the successful CAS path a rate-limited rule takes per request.
void BM_token_bucket_take(benchmark::State& state) {
  static acl::token_bucket bucket(1e12, 1u << 30);
  for (auto _ : state) benchmark::DoNotOptimize(bucket.try_take(clk::now()));
}
BENCHMARK(BM_token_bucket_take)->Threads(1)->Threads(2);

// Same, without the clock read (the proxy may reuse one now() per request).
void BM_token_bucket_take_no_clock(benchmark::State& state) {
  static acl::token_bucket bucket(1e12, 1u << 30);
  auto now = clk::now();
  for (auto _ : state) {
    benchmark::DoNotOptimize(bucket.try_take(now));
    now += std::chrono::nanoseconds(1);
  }
}
BENCHMARK(BM_token_bucket_take_no_clock)->Threads(1)->Threads(2);

// An exhausted bucket: the 429 path (no write at all).
void BM_token_bucket_denied(benchmark::State& state) {
  static acl::token_bucket bucket(1e-6, 1);
  const auto now = clk::now();
  double retry = 0;
  for (auto _ : state) benchmark::DoNotOptimize(bucket.try_take(now, &retry));
}
BENCHMARK(BM_token_bucket_denied)->Threads(1)->Threads(2);

// per=client: shard lock + hash lookup + CAS.
void BM_token_bucket_table_take(benchmark::State& state) {
  static acl::token_bucket_table table(1e12, 1u << 30, 4096);
  const std::string client = "10.0.0." + std::to_string(state.thread_index());
  for (auto _ : state) benchmark::DoNotOptimize(table.try_take(client, clk::now()));
}
BENCHMARK(BM_token_bucket_table_take)->Threads(1)->Threads(2);

// A counter increment from the worker's own shard (the data-path form).
void BM_metric_increment(benchmark::State& state) {
  static monitor::metrics m(2);
  const auto shard = static_cast<unsigned>(state.thread_index());
  for (auto _ : state) {
    m.bytes(shard, monitor::metrics::direction::up, 1);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_metric_increment)->Threads(1)->Threads(2);

// The same counter through the shared shard (atomic RMW on one cache line):
// what per-worker shards avoid.
void BM_metric_increment_shared_shard(benchmark::State& state) {
  static monitor::metrics m(2);
  for (auto _ : state) {
    m.bytes(m.shared_shard(), monitor::metrics::direction::up, 1);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_metric_increment_shared_shard)->Threads(1)->Threads(2);

// Everything one request end records: requests_total, rule, bytes x2,
// duration histogram.
void BM_metrics_per_request(benchmark::State& state) {
  static monitor::metrics m(2);
  static const auto rule = m.rule_series(".example.com");
  const auto shard = static_cast<unsigned>(state.thread_index());
  for (auto _ : state) {
    m.request(shard, monitor::metrics::kind::http, monitor::metrics::decision::allow,
              acl::reason::none);
    m.rule_request(shard, rule);
    m.bytes(shard, monitor::metrics::direction::up, 300);
    m.bytes(shard, monitor::metrics::direction::down, 5000);
    m.request_duration(shard, 0.012);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_metrics_per_request)->Threads(1)->Threads(2);

void BM_concurrency_slot(benchmark::State& state) {
  static acl::concurrency_limiter lim(1000);
  for (auto _ : state) {
    auto slot = lim.try_acquire();
    benchmark::DoNotOptimize(slot);
  }
}
BENCHMARK(BM_concurrency_slot)->Threads(1)->Threads(2);

void BM_bandwidth_grant(benchmark::State& state) {
  static acl::bandwidth_limiter bw(uint64_t{1} << 50);
  for (auto _ : state) {
    benchmark::DoNotOptimize(bw.grant(acl::bandwidth_limiter::direction::up, clk::now(), 65536));
  }
}
BENCHMARK(BM_bandwidth_grant)->Threads(1)->Threads(2);

// anomaly_detector::observe once per request end: each thread its own client
// (different shards, usually), and all threads one client (same shard).
void BM_anomaly_observe(benchmark::State& state) {
  static monitor::anomaly_detector det(monitor::anomaly_thresholds{});
  const std::string client = "10.0.0." + std::to_string(state.thread_index());
  for (auto _ : state) {
    benchmark::DoNotOptimize(det.observe(client, "api.example.com", 300, false, clk::now()));
  }
}
BENCHMARK(BM_anomaly_observe)->Threads(1)->Threads(2);

void BM_anomaly_observe_same_client(benchmark::State& state) {
  static monitor::anomaly_detector det(monitor::anomaly_thresholds{});
  for (auto _ : state) {
    benchmark::DoNotOptimize(det.observe("10.0.0.1", "api.example.com", 300, false, clk::now()));
  }
}
BENCHMARK(BM_anomaly_observe_same_client)->Threads(1)->Threads(2);

void BM_anomaly_is_blocked(benchmark::State& state) {
  monitor::anomaly_thresholds t;
  t.block_for = std::chrono::seconds(60);
  static monitor::anomaly_detector det(t);
  const std::string client = "10.0.0." + std::to_string(state.thread_index());
  for (auto _ : state) benchmark::DoNotOptimize(det.is_blocked(client, clk::now()));
}
BENCHMARK(BM_anomaly_is_blocked)->Threads(1)->Threads(2);

// The worker's side of the access log: a move into the queue. The writer
// thread drains to /dev/null concurrently.
void BM_access_log_write(benchmark::State& state) {
  static std::string error;
  static auto log = monitor::access_log::open("/dev/null", &error, 1u << 20);
  monitor::access_record proto;
  proto.client = "10.0.0.1:50000";
  proto.host = "api.example.com";
  proto.path = "/v1/chat/completions";
  proto.method = "POST";
  proto.rule = ".example.com";
  proto.upstream = "93.184.216.34:443";
  for (auto _ : state) {
    auto r = proto;  // the session builds its record anyway; copying stands in for that
    log->write(std::move(r));
  }
  if (state.thread_index() == 0) state.counters["dropped"] = static_cast<double>(log->dropped());
}
BENCHMARK(BM_access_log_write)->Threads(1)->Threads(2);

void BM_access_log_format(benchmark::State& state) {
  monitor::access_record r;
  r.ts = std::chrono::system_clock::now();
  r.client = "10.0.0.1:50000";
  r.host = "api.example.com";
  r.path = "/v1/chat/completions";
  r.method = "POST";
  r.rule = ".example.com";
  r.upstream = "93.184.216.34:443";
  for (auto _ : state) benchmark::DoNotOptimize(monitor::to_json(r));
}
BENCHMARK(BM_access_log_format);

}  // namespace
