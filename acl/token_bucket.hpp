#pragma once
// Token bucket for `rate=N/s|m|h burst=N`, shared by every worker thread.
// The whole state is one 64-bit atomic (GCRA form: the "theoretical arrival
// time" of the next token), so try_take() is a lock-free CAS loop and costs a
// few nanoseconds uncontended. Parameters are fixed at construction. Time is a
// parameter (callers pass steady_clock::now(); tests drive it). The owner (a
// rule's limit state, shared across config reloads by rule key) must outlive
// every thread that uses the bucket.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace egressd::acl {

class token_bucket {
 public:
  using clock = std::chrono::steady_clock;

  // per_second > 0: refill rate. burst: bucket size (0 is taken as 1). The
  // bucket starts full.
  token_bucket(double per_second, uint32_t burst);
  token_bucket(const token_bucket&) = delete;
  token_bucket& operator=(const token_bucket&) = delete;

  // Takes one token when available. Otherwise returns false and, when
  // retry_after_seconds is given, stores the whole seconds until a token is
  // available (rounded up, at least 1): the Retry-After value.
  bool try_take(clock::time_point now, double* retry_after_seconds = nullptr);

  // Tokens available at `now`, in [0, burst] (for tests and metrics).
  double available(clock::time_point now) const;

  // Adopts the fill level of the bucket this one replaces (config reload with
  // changed parameters): a client does not get a fresh burst from a reload.
  void carry_from(const token_bucket& old, clock::time_point now);

  double per_second() const { return per_second_; }
  uint32_t burst() const { return burst_; }

 private:
  static int64_t ticks(clock::time_point t);

  double per_second_;
  uint32_t burst_;
  int64_t interval_ns_;   // time to earn one token
  int64_t tolerance_ns_;  // burst * interval: how far tat may run ahead of now
  // Theoretical arrival time (ns on the steady clock) of the token after the
  // last one taken; the bucket is full whenever tat_ <= now.
  std::atomic<int64_t> tat_;
};

}  // namespace egressd::acl
