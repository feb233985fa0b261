#include "acl/concurrency_limiter.hpp"

namespace egressd::acl {

bool concurrency_limiter::try_acquire_raw() {
  uint32_t cur = active_.load(std::memory_order_relaxed);
  for (;;) {
    // Not fetch_add-then-undo: a transient overshoot would refuse a
    // concurrent acquire that should have fit.
    if (cur >= limit_.load(std::memory_order_relaxed)) return false;
    if (active_.compare_exchange_weak(cur, cur + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      return true;
    }
  }
}

}  // namespace egressd::acl
