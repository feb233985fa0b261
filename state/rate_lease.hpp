#pragma once
// The data-path side of a fleet-wide `rate=` limit (state redis://): tokens
// this replica holds, leased in small batches from the shared GCRA bucket in
// Redis by the state thread (state/redis_state), or — while Redis cannot be
// reached — refilled locally at this replica's share of the limit. A request
// takes one token with a lock-free CAS loop and never waits for Redis; an
// empty lease is an immediate 429.
//
// Thread contract: try_take() from any worker; everything else from the state
// thread only. Shared (shared_ptr) by the rule tables that use it and the
// state thread; carried over reloads by key.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>

namespace egressd::state {

class rate_lease {
 public:
  rate_lease(std::string key, double per_second, uint32_t burst)
      : key_(std::move(key)), per_second_(per_second > 0 ? per_second : 1e-9), burst_(std::max<uint32_t>(burst, 1)) {}
  rate_lease(const rate_lease&) = delete;
  rate_lease& operator=(const rate_lease&) = delete;

  // Any worker: one token, or false with the whole seconds to wait.
  bool try_take(double* retry_after_seconds) {
    int64_t t = tokens_.load(std::memory_order_relaxed);
    while (t > 0) {
      if (tokens_.compare_exchange_weak(t, t - 1, std::memory_order_relaxed)) {
        taken_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
    }
    misses_.fetch_add(1, std::memory_order_relaxed);
    if (retry_after_seconds) *retry_after_seconds = std::max(1.0, std::ceil(1.0 / per_second_));
    return false;
  }

  // --- state thread -------------------------------------------------------
  const std::string& key() const { return key_; }
  double per_second() const { return per_second_; }
  uint32_t burst() const { return burst_; }
  int64_t tokens() const { return tokens_.load(std::memory_order_relaxed); }
  void add(int64_t n) { tokens_.fetch_add(n, std::memory_order_relaxed); }
  int64_t drop() { return tokens_.exchange(0, std::memory_order_relaxed); }
  // Requests seen (admitted + refused for an empty lease) since the last call.
  uint64_t take_demand() {
    return taken_.exchange(0, std::memory_order_relaxed) + misses_.exchange(0, std::memory_order_relaxed);
  }

  // Any thread: requests seen since the last take_demand() (cheap peek).
  bool used() const {
    return taken_.load(std::memory_order_relaxed) + misses_.load(std::memory_order_relaxed) > 0;
  }
  // Per-client leases (rate_lease_table): the address, set once before the
  // lease is shared; the credit token a new client got, paid back by the
  // state thread from the shared bucket.
  void set_client(std::string c) { client_ = std::move(c); }
  const std::string& client() const { return client_; }
  std::atomic<int64_t> owed{0};

  // State-thread bookkeeping (never touched by workers).
  double local_credit = 0;       // fractional tokens of the outage refill
  int64_t granted_at_ms = 0;     // steady ms of the last lease from Redis
  uint64_t demand = 0;           // requests in the last cycle

 private:
  const std::string key_;
  std::string client_;
  const double per_second_;
  const uint32_t burst_;
  alignas(64) std::atomic<int64_t> tokens_{0};
  std::atomic<uint64_t> taken_{0};
  std::atomic<uint64_t> misses_{0};
};

}  // namespace egressd::state
