#pragma once
// `bandwidth=SIZE/s`: one byte budget per direction shared by all the
// connections of a rule, on every worker. Each direction is a byte-granular
// token bucket in GCRA form (one 64-bit atomic, lock-free CAS), so pacing a
// splice relay costs one CAS per chunk. Time is a parameter (callers pass
// steady_clock::now(); tests drive it). The owner (the rule's limit state,
// carried across reloads by rule key) must outlive every user.
//
// Use from a relay: before moving data, n = grant(dir, now, want, &wait);
// n == 0 -> wait `wait` (timer), then ask again; else move at most n bytes
// (splice len = n) and refund() what was granted but not moved.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace egressd::acl {

class bandwidth_limiter {
 public:
  using clock = std::chrono::steady_clock;
  enum class direction : uint8_t { up, down };  // up: client -> upstream

  // bytes_per_second > 0 in each direction. burst_bytes: what may go at once
  // after idling; 0 picks rate/8 (but at least min(rate, 16 KiB)), so a long
  // transfer runs at the rate from its start, give or take 1/8 s.
  explicit bandwidth_limiter(uint64_t bytes_per_second, uint64_t burst_bytes = 0);
  bandwidth_limiter(const bandwidth_limiter&) = delete;
  bandwidth_limiter& operator=(const bandwidth_limiter&) = delete;

  // How many of `want` bytes may go now, in [0, want]. It is 0 when fewer
  // than min(want, min_grant()) bytes are available (no dribbling in tiny
  // pieces); then *wait (if given) is how long until that many are.
  size_t grant(direction d, clock::time_point now, size_t want, clock::duration* wait = nullptr);

  // Gives back bytes granted but not sent (a short splice or write).
  void refund(direction d, size_t bytes);

  uint64_t bytes_per_second() const { return rate_; }
  uint64_t burst_bytes() const { return burst_; }
  uint64_t min_grant() const { return min_grant_; }

 private:
  int64_t cost_ns(uint64_t bytes) const;     // rounded up
  uint64_t bytes_for(int64_t ns) const;      // rounded down
  int64_t refund_ns(uint64_t bytes) const;   // rounded down

  uint64_t rate_;
  uint64_t burst_;
  uint64_t min_grant_;
  int64_t tolerance_ns_;  // cost of burst_ bytes
  // Per direction, on its own cache line: theoretical time (ns, steady clock)
  // when the bytes granted so far will have been paid for.
  struct alignas(64) budget {
    std::atomic<int64_t> tat;
  };
  budget budgets_[2];
};

}  // namespace egressd::acl
