#include "acl/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace egressd::acl {
namespace {

// Keeps every sum below 2^63 for any steady_clock value in practice.
constexpr double max_span_ns = 1e18;

}  // namespace

token_bucket::token_bucket(double per_second, uint32_t burst)
    : per_second_(per_second > 0 ? per_second : 1e-9),
      burst_(std::max<uint32_t>(burst, 1)),
      interval_ns_(static_cast<int64_t>(std::clamp(std::round(1e9 / per_second_), 1.0, max_span_ns))),
      tolerance_ns_(static_cast<int64_t>(
          std::min(static_cast<double>(interval_ns_) * burst_, max_span_ns))),
      tat_(std::numeric_limits<int64_t>::min()) {}

int64_t token_bucket::ticks(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

bool token_bucket::try_take(clock::time_point now_tp, double* retry_after_seconds) {
  const int64_t now = ticks(now_tp);
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = std::max(tat, now) + interval_ns_;
    if (next - now > tolerance_ns_) {
      if (retry_after_seconds) {
        // At now + wait, taking one token brings tat exactly to the tolerance.
        const int64_t wait_ns = next - tolerance_ns_ - now;
        *retry_after_seconds = std::max(1.0, std::ceil(static_cast<double>(wait_ns) / 1e9));
      }
      return false;
    }
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
  }
}

double token_bucket::available(clock::time_point now_tp) const {
  const int64_t now = ticks(now_tp);
  const int64_t tat = tat_.load(std::memory_order_relaxed);
  const int64_t ahead = tat > now ? tat - now : 0;
  const double tokens = static_cast<double>(tolerance_ns_ - ahead) / static_cast<double>(interval_ns_);
  return std::clamp(tokens, 0.0, static_cast<double>(burst_));
}

void token_bucket::carry_from(const token_bucket& old, clock::time_point now_tp) {
  const double tokens = std::min(old.available(now_tp), static_cast<double>(burst_));
  const int64_t now = ticks(now_tp);
  const auto used_ns = static_cast<int64_t>((burst_ - tokens) * static_cast<double>(interval_ns_));
  // available() = (tolerance - (tat - now)) / interval, solved for tat.
  tat_.store(now + used_ns, std::memory_order_relaxed);
}

}  // namespace egressd::acl
