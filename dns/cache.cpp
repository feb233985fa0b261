#include "dns/cache.hpp"

#include <utility>

namespace egressd::dns {

cache::cache(size_t capacity) : capacity_(capacity) {}

std::optional<result> cache::find(std::string_view name, clock::time_point now) {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  auto node = it->second;
  if (node->expires <= now) {
    index_.erase(it);
    lru_.erase(node);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, node);
  return result{node->st, node->addresses, true};
}

void cache::insert(std::string_view name, status st, std::vector<acl::ip_address> addresses,
                   clock::time_point expires) {
  if (capacity_ == 0) return;
  if (auto it = index_.find(name); it != index_.end()) {
    auto node = it->second;
    node->st = st;
    node->addresses = std::move(addresses);
    node->expires = expires;
    lru_.splice(lru_.begin(), lru_, node);
    return;
  }
  while (index_.size() >= capacity_) {
    index_.erase(lru_.back().name);
    lru_.pop_back();
  }
  lru_.push_front(entry{std::string(name), st, std::move(addresses), expires});
  index_.emplace(lru_.front().name, lru_.begin());
}

void cache::clear() {
  index_.clear();
  lru_.clear();
}

}  // namespace egressd::dns
