#include "acl/bandwidth_limiter.hpp"

#include <algorithm>
#include <limits>

namespace egressd::acl {
namespace {

constexpr uint64_t ns_per_s = 1'000'000'000;
constexpr uint64_t max_span_ns = uint64_t{1} << 60;  // sums stay far from overflow

int64_t ticks(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

bandwidth_limiter::bandwidth_limiter(uint64_t bytes_per_second, uint64_t burst_bytes)
    : rate_(std::max<uint64_t>(bytes_per_second, 1)) {
  burst_ = burst_bytes ? burst_bytes : std::max(rate_ / 8, std::min<uint64_t>(rate_, 16 * 1024));
  // A minimum grant of a quarter burst (at most 16 KiB) keeps chunks large
  // enough for splice to be worth it without making the pacing coarse.
  min_grant_ = std::clamp<uint64_t>(burst_ / 4, 1, 16 * 1024);
  tolerance_ns_ = cost_ns(burst_);
  for (auto& b : budgets_) b.tat.store(std::numeric_limits<int64_t>::min(), std::memory_order_relaxed);
}

int64_t bandwidth_limiter::cost_ns(uint64_t bytes) const {
  const unsigned __int128 ns = (static_cast<unsigned __int128>(bytes) * ns_per_s + rate_ - 1) / rate_;
  return static_cast<int64_t>(std::min<unsigned __int128>(ns, max_span_ns));
}

int64_t bandwidth_limiter::refund_ns(uint64_t bytes) const {
  const unsigned __int128 ns = static_cast<unsigned __int128>(bytes) * ns_per_s / rate_;
  return static_cast<int64_t>(std::min<unsigned __int128>(ns, max_span_ns));
}

uint64_t bandwidth_limiter::bytes_for(int64_t ns) const {
  if (ns <= 0) return 0;
  const unsigned __int128 b = static_cast<unsigned __int128>(ns) * rate_ / ns_per_s;
  return static_cast<uint64_t>(std::min<unsigned __int128>(b, std::numeric_limits<uint64_t>::max()));
}

size_t bandwidth_limiter::grant(direction d, clock::time_point now_tp, size_t want,
                                clock::duration* wait) {
  if (want == 0) return 0;
  auto& tat_ref = budgets_[static_cast<int>(d)].tat;
  const int64_t now = ticks(now_tp);
  const uint64_t need = std::min<uint64_t>(want, min_grant_);
  int64_t tat = tat_ref.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t base = std::max(tat, now);
    const int64_t room_ns = now + tolerance_ns_ - base;  // budget earned but unspent
    const uint64_t avail = bytes_for(room_ns);
    if (avail < need) {
      // need <= burst, so the wait is finite: at now + wait, room == cost(need).
      if (wait) *wait = std::chrono::nanoseconds(cost_ns(need) - room_ns);
      return 0;
    }
    const uint64_t n = std::min<uint64_t>(want, avail);
    if (tat_ref.compare_exchange_weak(tat, base + cost_ns(n), std::memory_order_relaxed)) {
      if (wait) *wait = clock::duration::zero();
      return static_cast<size_t>(n);
    }
  }
}

void bandwidth_limiter::refund(direction d, size_t bytes) {
  if (bytes == 0) return;
  auto& tat_ref = budgets_[static_cast<int>(d)].tat;
  const int64_t back = refund_ns(bytes);
  int64_t tat = tat_ref.load(std::memory_order_relaxed);
  // Saturating: never wrap below the "never used" value. Refunding into the
  // past is harmless, grant() never counts more than a burst.
  while (tat > std::numeric_limits<int64_t>::min() + back &&
         !tat_ref.compare_exchange_weak(tat, tat - back, std::memory_order_relaxed)) {
  }
}

}  // namespace egressd::acl
