// Failed-authentication throttle (see auth_throttle.hpp).
#include "acl/auth_throttle.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace egressd::acl {

namespace {
constexpr size_t probe_len = 4;  // slots looked at per address
}

// The last max_failures failure times of one address (a ring).
struct auth_throttle::failures {
  std::array<clock::time_point, max_failures> at{};
  unsigned count = 0;  // valid entries, <= max_failures
  unsigned next = 0;   // ring position of the next write
  clock::time_point last{};
};

auth_throttle::auth_throttle(size_t max_clients, clock::time_point epoch)
    : epoch_(epoch), max_clients_(std::max<size_t>(1, max_clients)) {
  size_t n = 64;
  while (n < 2 * max_clients_) n <<= 1;
  mask_ = n - 1;
  blocks_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  for (size_t i = 0; i < n; ++i) blocks_[i].store(0, std::memory_order_relaxed);
}

auth_throttle::~auth_throttle() = default;

uint64_t auth_throttle::hash(const ip_address& a) {
  // FNV-1a over family and bytes, then a final mix (splitmix64).
  uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(a.family);
  const size_t n = a.is_v4() ? 4 : 16;
  for (size_t i = 0; i < n; ++i) h = (h ^ a.bytes[i]) * 1099511628211ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

uint32_t auth_throttle::seconds(clock::time_point t) const {
  if (t <= epoch_) return 0;
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t - epoch_).count();
  return static_cast<uint32_t>(std::min<int64_t>(s, UINT32_MAX - 1));
}

uint64_t auth_throttle::throttled(const ip_address& a, clock::time_point now) const {
  const uint64_t h = hash(a);
  const uint64_t tag = (h >> 32) | 1;
  const uint32_t now_s = seconds(now);
  for (size_t i = 0; i < probe_len; ++i) {
    const uint64_t w = blocks_[(h + i) & mask_].load(std::memory_order_relaxed);
    if ((w >> 32) != tag) continue;
    const uint32_t until = static_cast<uint32_t>(w);
    if (until > now_s) return until - now_s;
  }
  return 0;
}

// Under mu_. Reuses this address's slot, else an empty or expired one, else
// the one that ends soonest.
void auth_throttle::mark(uint64_t h, uint32_t until) {
  const uint64_t tag = (h >> 32) | 1;
  size_t pick = h & mask_;
  uint32_t pick_until = UINT32_MAX;
  for (size_t i = 0; i < probe_len; ++i) {
    const size_t slot = (h + i) & mask_;
    const uint64_t w = blocks_[slot].load(std::memory_order_relaxed);
    if ((w >> 32) == tag || w == 0) {
      pick = slot;
      break;
    }
    if (static_cast<uint32_t>(w) < pick_until) {
      pick_until = static_cast<uint32_t>(w);
      pick = slot;
    }
  }
  blocks_[pick].store(tag << 32 | until, std::memory_order_relaxed);
}

bool auth_throttle::fail(const ip_address& a, clock::time_point now) {
  std::string key(reinterpret_cast<const char*>(a.bytes.data()), a.is_v4() ? 4 : 16);
  std::lock_guard lock(mu_);
  auto it = failing_.find(key);
  if (it == failing_.end()) {
    if (failing_.size() >= max_clients_) {
      // Bounded: forget addresses whose failures have all aged out, else the
      // one seen longest ago.
      for (auto i = failing_.begin(); i != failing_.end();)
        i = now - i->second.last >= window ? failing_.erase(i) : std::next(i);
      if (failing_.size() >= max_clients_) {
        auto oldest = std::min_element(failing_.begin(), failing_.end(),
                                       [](const auto& x, const auto& y) { return x.second.last < y.second.last; });
        failing_.erase(oldest);
      }
    }
    it = failing_.emplace(std::move(key), failures{}).first;
  }
  failures& f = it->second;
  f.at[f.next] = now;
  f.next = (f.next + 1) % max_failures;
  f.count = std::min(f.count + 1, max_failures);
  f.last = now;
  // The oldest of the last max_failures failures: inside the window?
  if (f.count < max_failures || now - f.at[f.next] >= window) return false;
  mark(hash(a), seconds(now + block_for));
  failing_.erase(it);  // a new count starts after the throttle
  return true;
}

size_t auth_throttle::tracked() const {
  std::lock_guard lock(mu_);
  return failing_.size();
}

}  // namespace egressd::acl
