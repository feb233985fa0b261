// state::rate_lease: the data-path side of a fleet-wide rate= limit.
#include "state/rate_lease.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace egressd::state {
namespace {

TEST(RateLease, EmptyLeaseRefusesAtOnceAndCountsDemand) {
  rate_lease l("k", 0.5, 10);  // one token per 2 s
  double wait = 0;
  EXPECT_FALSE(l.try_take(&wait));
  EXPECT_EQ(wait, 2.0);
  EXPECT_FALSE(l.try_take(nullptr));
  EXPECT_EQ(l.take_demand(), 2u);
  EXPECT_EQ(l.take_demand(), 0u);
}

TEST(RateLease, TakesExactlyWhatWasLeased) {
  rate_lease l("k", 100, 10);
  l.add(3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.try_take(nullptr));
  double wait = 0;
  EXPECT_FALSE(l.try_take(&wait));
  EXPECT_EQ(wait, 1.0);  // at least one second, as Retry-After
  EXPECT_EQ(l.tokens(), 0);
  EXPECT_EQ(l.take_demand(), 4u);  // 3 admitted + 1 refused
}

TEST(RateLease, ConcurrentWorkersNeverOverspend) {
  rate_lease l("k", 1000, 1000);
  l.add(5000);
  std::atomic<int> admitted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 4000; ++i)
        if (l.try_take(nullptr)) admitted.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(admitted.load(), 5000);
  EXPECT_EQ(l.tokens(), 0);
  EXPECT_EQ(l.take_demand(), 16000u);
}

TEST(RateLease, DropReturnsWhatWasHeld) {
  rate_lease l("k", 10, 5);
  l.add(4);
  EXPECT_EQ(l.drop(), 4);
  EXPECT_FALSE(l.try_take(nullptr));
}

}  // namespace
}  // namespace egressd::state
