#include "acl/concurrency_limiter.hpp"

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace egressd::acl {
namespace {

TEST(concurrency_limiter, refuses_beyond_limit_and_frees_on_release) {
  concurrency_limiter lim(2);
  auto a = lim.try_acquire();
  auto b = lim.try_acquire();
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
  auto c = lim.try_acquire();
  EXPECT_FALSE(c);  // the third tunnel: 429 conns_limited
  EXPECT_EQ(lim.active(), 2u);
  a.release();
  EXPECT_EQ(lim.active(), 1u);
  auto d = lim.try_acquire();
  EXPECT_TRUE(d);
  EXPECT_EQ(lim.active(), 2u);
}

TEST(concurrency_limiter, slot_releases_however_the_scope_ends) {
  concurrency_limiter lim(1);
  {
    auto s = lim.try_acquire();
    ASSERT_TRUE(s);
  }
  EXPECT_EQ(lim.active(), 0u);
  try {
    auto s = lim.try_acquire();
    throw 1;
  } catch (int) {
  }
  EXPECT_EQ(lim.active(), 0u);
}

TEST(concurrency_limiter, slot_moves_without_double_release) {
  concurrency_limiter lim(3);
  auto a = lim.try_acquire();
  concurrency_limiter::slot b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(b);
  EXPECT_EQ(lim.active(), 1u);
  auto c = lim.try_acquire();
  c = std::move(b);  // c's own slot is released, b's is taken over
  EXPECT_EQ(lim.active(), 1u);
  c = concurrency_limiter::slot();
  EXPECT_EQ(lim.active(), 0u);
}

TEST(concurrency_limiter, lowering_the_limit_keeps_live_slots) {
  concurrency_limiter lim(3);
  auto a = lim.try_acquire();
  auto b = lim.try_acquire();
  lim.set_limit(1);
  EXPECT_FALSE(lim.try_acquire());
  a.release();
  EXPECT_FALSE(lim.try_acquire());
  b.release();
  EXPECT_TRUE(lim.try_acquire());
}

TEST(concurrency_limiter, zero_limit_refuses_everything) {
  concurrency_limiter lim(0);
  EXPECT_FALSE(lim.try_acquire());
}

TEST(concurrency_limiter, never_exceeded_under_contention) {
  concurrency_limiter lim(3);
  std::atomic<int> inside{0}, max_inside{0}, acquired{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        auto s = lim.try_acquire();
        if (!s) continue;
        acquired.fetch_add(1);
        int now = inside.fetch_add(1) + 1;
        int prev = max_inside.load();
        while (now > prev && !max_inside.compare_exchange_weak(prev, now)) {
        }
        inside.fetch_sub(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_LE(max_inside.load(), 3);
  EXPECT_GT(acquired.load(), 0);
  EXPECT_EQ(lim.active(), 0u);
}

}  // namespace
}  // namespace egressd::acl
