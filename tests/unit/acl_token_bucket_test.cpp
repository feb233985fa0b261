#include "acl/token_bucket.hpp"
#include "acl/token_bucket_table.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace egressd::acl {
namespace {

using namespace std::chrono_literals;
using clock_t_ = token_bucket::clock;

// An arbitrary origin far from the clock's epoch, as steady_clock::now() is.
const clock_t_::time_point t0 = clock_t_::time_point{} + 1000h;

TEST(token_bucket, starts_full_and_allows_exactly_burst) {
  token_bucket b(3.0 / 60, 3);  // rate=3/m
  EXPECT_DOUBLE_EQ(b.available(t0), 3.0);
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  double retry = 0;
  EXPECT_FALSE(b.try_take(t0, &retry));
  EXPECT_DOUBLE_EQ(retry, 20.0);  // one token every 20 s
  EXPECT_DOUBLE_EQ(b.available(t0), 0.0);
}

TEST(token_bucket, retry_after_is_whole_seconds_rounded_up) {
  token_bucket b(3.0 / 60, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.try_take(t0));
  double retry = 0;
  EXPECT_FALSE(b.try_take(t0 + 1500ms, &retry));
  EXPECT_DOUBLE_EQ(retry, 19.0);  // 18.5 s -> 19
  EXPECT_FALSE(b.try_take(t0 + 19900ms, &retry));
  EXPECT_DOUBLE_EQ(retry, 1.0);  // 0.1 s -> 1, never 0
  EXPECT_FALSE(b.try_take(t0 + 20s - 1ns, &retry));
  EXPECT_DOUBLE_EQ(retry, 1.0);
  EXPECT_TRUE(b.try_take(t0 + 20s));
  EXPECT_FALSE(b.try_take(t0 + 20s, &retry));
  EXPECT_DOUBLE_EQ(retry, 20.0);
}

TEST(token_bucket, a_failed_take_costs_nothing) {
  token_bucket b(1, 1);
  ASSERT_TRUE(b.try_take(t0));
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(b.try_take(t0 + 500ms));
  EXPECT_TRUE(b.try_take(t0 + 1s));
}

TEST(token_bucket, refills_at_rate_up_to_burst) {
  token_bucket b(10, 5);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.try_take(t0));
  ASSERT_FALSE(b.try_take(t0));
  EXPECT_NEAR(b.available(t0 + 250ms), 2.5, 1e-9);
  EXPECT_TRUE(b.try_take(t0 + 100ms));
  EXPECT_FALSE(b.try_take(t0 + 100ms));
  // Idle for a long time: capped at burst, not rate * idle time.
  EXPECT_DOUBLE_EQ(b.available(t0 + 1h), 5.0);
  int taken = 0;
  while (b.try_take(t0 + 1h)) ++taken;
  EXPECT_EQ(taken, 5);
}

TEST(token_bucket, steady_rate_over_time) {
  token_bucket b(100, 10);  // 100/s
  int taken = 0;
  for (auto t = t0; t < t0 + 10s; t += 1ms) {
    while (b.try_take(t)) ++taken;
  }
  // The burst plus 100/s for 10 s (the last token at exactly t0+10s excluded).
  EXPECT_NEAR(taken, 10 + 1000, 1);
}

TEST(token_bucket, hourly_rate_and_zero_burst) {
  token_bucket b(1.0 / 3600, 0);  // burst 0 -> 1
  EXPECT_EQ(b.burst(), 1u);
  EXPECT_TRUE(b.try_take(t0));
  double retry = 0;
  EXPECT_FALSE(b.try_take(t0 + 1s, &retry));
  EXPECT_DOUBLE_EQ(retry, 3599.0);
}

TEST(token_bucket, works_from_the_clock_epoch) {
  token_bucket b(1, 2);
  const clock_t_::time_point zero{};
  EXPECT_TRUE(b.try_take(zero));
  EXPECT_TRUE(b.try_take(zero));
  EXPECT_FALSE(b.try_take(zero));
  EXPECT_TRUE(b.try_take(zero + 1s));
}

TEST(token_bucket, carry_from_keeps_fill_level) {
  token_bucket old_b(1, 10);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(old_b.try_take(t0));
  token_bucket bigger(2, 20);
  bigger.carry_from(old_b, t0);
  EXPECT_NEAR(bigger.available(t0), 3.0, 1e-9);
  token_bucket smaller(1, 2);
  smaller.carry_from(old_b, t0);
  EXPECT_NEAR(smaller.available(t0), 2.0, 1e-9);
  token_bucket fresh(1, 5);
  token_bucket from_full(1, 5);
  fresh.carry_from(from_full, t0);
  EXPECT_DOUBLE_EQ(fresh.available(t0), 5.0);
}

TEST(token_bucket, concurrent_takes_never_exceed_budget) {
  token_bucket b(1000, 500);
  constexpr int threads = 4;
  std::atomic<int> taken{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      // Same simulated instants on every thread: 100 ms, 1 ms apart.
      for (int ms = 0; ms < 100; ++ms) {
        for (int k = 0; k < 20; ++k) {
          if (b.try_take(t0 + std::chrono::milliseconds(ms))) taken.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  // Burst 500 plus 1000/s over 99 ms: exactly 599 tokens exist.
  EXPECT_EQ(taken.load(), 599);
}

TEST(token_bucket_table, clients_have_separate_buckets) {
  token_bucket_table table(3.0 / 60, 3, 16);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(table.try_take("127.0.2.1", t0));
  double retry = 0;
  EXPECT_FALSE(table.try_take("127.0.2.1", t0, &retry));
  EXPECT_DOUBLE_EQ(retry, 20.0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(table.try_take("127.0.2.2", t0));
  EXPECT_FALSE(table.try_take("127.0.2.2", t0));
  EXPECT_EQ(table.size(), 2u);
  EXPECT_DOUBLE_EQ(table.available("127.0.2.9", t0), 3.0);
}

TEST(token_bucket_table, evicts_least_recently_used_client) {
  token_bucket_table table(1, 1, 2);
  ASSERT_TRUE(table.try_take("a", t0));
  ASSERT_TRUE(table.try_take("b", t0));
  ASSERT_FALSE(table.try_take("a", t0));  // touches a: b is now least recent
  ASSERT_TRUE(table.try_take("c", t0));   // evicts b
  EXPECT_EQ(table.size(), 2u);
  EXPECT_FALSE(table.try_take("a", t0));  // a kept its (empty) bucket
  EXPECT_FALSE(table.try_take("c", t0));
  EXPECT_TRUE(table.try_take("b", t0));   // b came back with a full bucket
}

TEST(token_bucket_table, size_is_bounded_when_sharded) {
  token_bucket_table table(1, 1, 1000);
  for (int i = 0; i < 50000; ++i) table.try_take("10.0." + std::to_string(i), t0);
  EXPECT_EQ(table.size(), 1000u);
}

TEST(token_bucket_table, concurrent_clients) {
  token_bucket_table table(1, 10, 4096);
  std::atomic<int> taken{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (table.try_take("client" + std::to_string(i % 100), t0)) taken.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(taken.load(), 100 * 10);
}

}  // namespace
}  // namespace egressd::acl
