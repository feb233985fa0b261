#include "acl/bandwidth_limiter.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace egressd::acl {
namespace {

using namespace std::chrono_literals;
using dir = bandwidth_limiter::direction;
const bandwidth_limiter::clock::time_point t0 = bandwidth_limiter::clock::time_point{} + 1000h;

TEST(bandwidth_limiter, default_burst_and_min_grant) {
  bandwidth_limiter a(512 * 1024);
  EXPECT_EQ(a.burst_bytes(), 64u * 1024);  // 1/8 s
  EXPECT_EQ(a.min_grant(), 16u * 1024);
  bandwidth_limiter slow(1000);
  EXPECT_EQ(slow.burst_bytes(), 1000u);  // never more than 1 s worth
  EXPECT_EQ(slow.min_grant(), 250u);
  bandwidth_limiter fast(100 * 1024 * 1024);
  EXPECT_EQ(fast.burst_bytes(), 100u * 1024 * 1024 / 8);
  EXPECT_EQ(fast.min_grant(), 16u * 1024);
}

TEST(bandwidth_limiter, burst_then_paced_with_exact_wait) {
  bandwidth_limiter bw(1000, 1000);  // 1000 B/s, burst 1000, min grant 250
  EXPECT_EQ(bw.grant(dir::up, t0, 600), 600u);
  EXPECT_EQ(bw.grant(dir::up, t0, 600), 400u);  // the rest of the burst
  bandwidth_limiter::clock::duration wait{};
  EXPECT_EQ(bw.grant(dir::up, t0, 600, &wait), 0u);
  EXPECT_EQ(wait, 250ms);  // until min_grant bytes are earned
  EXPECT_EQ(bw.grant(dir::up, t0 + 100ms, 600, &wait), 0u);
  EXPECT_EQ(wait, 150ms);
  EXPECT_EQ(bw.grant(dir::up, t0 + 250ms, 600, &wait), 250u);
  EXPECT_EQ(wait, 0ns);
  // A small request below min_grant only waits for itself.
  EXPECT_EQ(bw.grant(dir::up, t0 + 250ms, 10, &wait), 0u);
  EXPECT_EQ(wait, 10ms);
  EXPECT_EQ(bw.grant(dir::up, t0 + 260ms, 10), 10u);
}

TEST(bandwidth_limiter, directions_are_independent) {
  bandwidth_limiter bw(1000, 1000);
  EXPECT_EQ(bw.grant(dir::up, t0, 5000), 1000u);
  EXPECT_EQ(bw.grant(dir::up, t0, 5000), 0u);
  EXPECT_EQ(bw.grant(dir::down, t0, 5000), 1000u);
}

TEST(bandwidth_limiter, refund_returns_unsent_bytes) {
  bandwidth_limiter bw(1000, 1000);
  EXPECT_EQ(bw.grant(dir::down, t0, 1000), 1000u);
  bw.refund(dir::down, 700);  // the splice moved only 300
  EXPECT_EQ(bw.grant(dir::down, t0, 1000), 700u);
  bandwidth_limiter fresh(1000, 1000);
  fresh.refund(dir::up, 5000);  // nothing granted yet: no effect, no wrap
  EXPECT_EQ(fresh.grant(dir::up, t0, 5000), 1000u);
}

TEST(bandwidth_limiter, two_mib_at_512k_takes_about_four_seconds) {
  bandwidth_limiter bw(512 * 1024);
  uint64_t sent = 0;
  auto now = t0;
  int grants = 0;
  while (sent < 2 * 1024 * 1024) {
    bandwidth_limiter::clock::duration wait{};
    size_t n = bw.grant(dir::down, now, 65536, &wait);
    if (n == 0) {
      ASSERT_GT(wait, 0ns);
      now += wait;
      continue;
    }
    sent += n;
    ++grants;
  }
  const double seconds = std::chrono::duration<double>(now - t0).count();
  EXPECT_NEAR(seconds, 2.0 * 1024 / 512 - 1.0 / 8, 0.01);  // the first burst is free
  EXPECT_LT(grants, 200);  // chunks, not a dribble
}

TEST(bandwidth_limiter, idle_time_is_capped_at_burst) {
  bandwidth_limiter bw(1000, 1000);
  EXPECT_EQ(bw.grant(dir::up, t0, 1000), 1000u);
  EXPECT_EQ(bw.grant(dir::up, t0 + 1h, 100000), 1000u);
}

TEST(bandwidth_limiter, shared_across_threads) {
  bandwidth_limiter bw(1'000'000, 100'000);
  std::atomic<uint64_t> total{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int ms = 0; ms <= 1000; ++ms) {
        for (int k = 0; k < 5; ++k) total += bw.grant(dir::up, t0 + std::chrono::milliseconds(ms), 4096);
      }
    });
  }
  for (auto& t : ts) t.join();
  // Burst + 1 s at 1 MB/s, minus at most one min_grant left unclaimed.
  EXPECT_LE(total.load(), 1'100'000u);
  EXPECT_GE(total.load(), 1'100'000u - 16 * 1024);
}

}  // namespace
}  // namespace egressd::acl
