#include "state/rate_lease_table.hpp"

#include <algorithm>
#include <functional>

namespace egressd::state {

rate_lease_table::rate_lease_table(std::string key, double per_second, uint32_t burst, size_t max_clients)
    : key_(std::move(key)), per_second_(per_second), burst_(burst) {
  max_clients = std::max<size_t>(max_clients, 1);
  const size_t n = max_clients < 256 ? 1 : 16;
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<shard>();
    s->capacity = max_clients / n + (i < max_clients % n ? 1 : 0);
    shards_.push_back(std::move(s));
  }
}

rate_lease_table::shard& rate_lease_table::shard_for(std::string_view client) {
  if (shards_.size() == 1) return *shards_[0];
  return *shards_[std::hash<std::string_view>{}(client) % shards_.size()];
}

bool rate_lease_table::try_take(std::string_view client, double* retry_after_seconds) {
  shard& s = shard_for(client);
  std::lock_guard lk(s.mu);  // held across the take: no reference count traffic per request
  auto it = s.index.find(client);
  if (it != s.index.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    return (*it->second)->try_take(retry_after_seconds);
  }
  if (s.lru.size() >= s.capacity) {
    s.index.erase(s.lru.back()->client());
    s.lru.pop_back();
  }
  auto l = std::make_shared<rate_lease>(key_ + "|client=" + std::string(client), per_second_, burst_);
  l->set_client(std::string(client));
  l->add(1);  // the credit token
  l->owed.store(1, std::memory_order_relaxed);
  s.lru.push_front(std::move(l));
  s.index.emplace(s.lru.front()->client(), s.lru.begin());
  return s.lru.front()->try_take(retry_after_seconds);
}

std::vector<std::shared_ptr<rate_lease>> rate_lease_table::collect(bool all) {
  std::vector<std::shared_ptr<rate_lease>> out;
  for (auto& s : shards_) {
    std::lock_guard lk(s->mu);
    for (const auto& l : s->lru)
      if (all || l->used() || l->owed.load(std::memory_order_relaxed) > 0) out.push_back(l);
  }
  return out;
}

}  // namespace egressd::state
