#pragma once
// `conns=N`: concurrent tunnels/requests of one rule across all workers. One
// atomic counter; try_acquire() is a lock-free CAS loop that never lets the
// count exceed the limit, release() a decrement. A `slot` is the RAII handle a
// session holds for its lifetime, so the slot is freed however the session
// ends (error, timeout, client abort, exception). The limiter must outlive its
// slots: sessions pin the config snapshot that owns it (carry it across
// reloads by rule key, adjusting set_limit(), so live slots stay counted).

#include <atomic>
#include <cstdint>

namespace egressd::acl {

class concurrency_limiter {
 public:
  class slot {
   public:
    slot() = default;
    slot(slot&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
    slot& operator=(slot&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = o.owner_;
        o.owner_ = nullptr;
      }
      return *this;
    }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { release(); }

    explicit operator bool() const { return owner_ != nullptr; }
    void release() {
      if (owner_) owner_->release();
      owner_ = nullptr;
    }

   private:
    friend class concurrency_limiter;
    explicit slot(concurrency_limiter* owner) : owner_(owner) {}
    concurrency_limiter* owner_ = nullptr;
  };

  explicit concurrency_limiter(uint32_t limit) : limit_(limit) {}
  concurrency_limiter(const concurrency_limiter&) = delete;
  concurrency_limiter& operator=(const concurrency_limiter&) = delete;

  // An engaged slot, or an empty one when `limit` slots are in use (429
  // conns_limited).
  slot try_acquire() { return try_acquire_raw() ? slot(this) : slot(); }

  // Unpaired forms for callers that manage the release themselves.
  bool try_acquire_raw();
  void release() { active_.fetch_sub(1, std::memory_order_release); }

  // A lower limit refuses new slots until enough live ones end.
  void set_limit(uint32_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  uint32_t limit() const { return limit_.load(std::memory_order_relaxed); }
  uint32_t active() const { return active_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> limit_;
  std::atomic<uint32_t> active_{0};
};

}  // namespace egressd::acl
