#pragma once
// Throttling of failed proxy authentications per source address (SPEC
// "Agents by name"): after `max_failures` failures within `window`, the
// address is throttled for `block_for`; while throttled, its requests that
// carry credentials get 429 auth_throttled without being checked.
//
// Thread contract: every method is thread-safe. throttled() is lock-free
// (the success path: a few relaxed atomic loads in a fixed array of packed
// address-tag/expiry words); fail() takes one mutex and touches a map of at
// most max_clients addresses (oldest dropped). Owned by the process
// (server), so a reload neither forgets nor lifts a throttle. Time is a
// parameter (callers pass steady_clock::now()).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "acl/ip_address.hpp"

namespace egressd::acl {

class auth_throttle {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr unsigned max_failures = 10;
  static constexpr std::chrono::seconds window{60};
  static constexpr std::chrono::seconds block_for{60};

  explicit auth_throttle(size_t max_clients, clock::time_point epoch = clock::now());
  ~auth_throttle();
  auth_throttle(const auth_throttle&) = delete;
  auth_throttle& operator=(const auth_throttle&) = delete;

  // Seconds until the throttle on `a` ends (>= 1), or 0 when it is not
  // throttled. Lock-free.
  uint64_t throttled(const ip_address& a, clock::time_point now) const;
  // Records a failed attempt from `a`; true when it starts a throttle (the
  // max_failures-th failure inside the window).
  bool fail(const ip_address& a, clock::time_point now);

  size_t tracked() const;  // addresses with failures in memory (tests)

 private:
  struct failures;
  static uint64_t hash(const ip_address& a);
  uint32_t seconds(clock::time_point t) const;
  void mark(uint64_t h, uint32_t until);

  clock::time_point epoch_;
  size_t max_clients_;
  size_t mask_;
  // Each word: high 32 bits an address tag (never 0), low 32 bits the second
  // (since epoch_) the throttle ends. 0 = empty.
  std::unique_ptr<std::atomic<uint64_t>[]> blocks_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, failures> failing_;  // guarded by mu_; key: address bytes
};

}  // namespace egressd::acl
