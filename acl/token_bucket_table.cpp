#include "acl/token_bucket_table.hpp"

#include <algorithm>
#include <functional>

namespace egressd::acl {

token_bucket_table::token_bucket_table(double per_second, uint32_t burst, size_t max_clients)
    : per_second_(per_second), burst_(burst), max_clients_(std::max<size_t>(max_clients, 1)) {
  const size_t n = max_clients_ < 256 ? 1 : 16;
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<shard>();
    // Shard capacities add up to exactly max_clients.
    s->capacity = max_clients_ / n + (i < max_clients_ % n ? 1 : 0);
    shards_.push_back(std::move(s));
  }
}

token_bucket_table::~token_bucket_table() = default;

token_bucket_table::shard& token_bucket_table::shard_for(std::string_view client) const {
  if (shards_.size() == 1) return *shards_[0];
  return *shards_[std::hash<std::string_view>{}(client) % shards_.size()];
}

bool token_bucket_table::try_take(std::string_view client, clock::time_point now,
                                  double* retry_after_seconds) {
  shard& s = shard_for(client);
  std::lock_guard lk(s.mu);
  auto it = s.index.find(client);
  if (it != s.index.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);
  } else {
    if (s.lru.size() >= s.capacity) {
      s.index.erase(s.lru.back().key);
      s.lru.pop_back();
    }
    s.lru.emplace_front(std::string(client), per_second_, burst_);
    it = s.index.emplace(s.lru.front().key, s.lru.begin()).first;
  }
  return it->second->bucket.try_take(now, retry_after_seconds);
}

double token_bucket_table::available(std::string_view client, clock::time_point now) const {
  shard& s = shard_for(client);
  std::lock_guard lk(s.mu);
  auto it = s.index.find(client);
  return it == s.index.end() ? static_cast<double>(std::max<uint32_t>(burst_, 1))
                             : it->second->bucket.available(now);
}

size_t token_bucket_table::size() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lk(s->mu);
    n += s->lru.size();
  }
  return n;
}

}  // namespace egressd::acl
