#pragma once
// Bounded LRU cache of lookup outcomes (ok with its addresses, or nxdomain),
// each with an absolute expiry. Not thread-safe: owned by one resolver on one
// worker thread. Time is passed in so the cache stays pure and testable.

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dns/result.hpp"

namespace egressd::dns {

class cache {
 public:
  using clock = std::chrono::steady_clock;

  // capacity 0 disables caching.
  explicit cache(size_t capacity);
  cache(const cache&) = delete;
  cache& operator=(const cache&) = delete;

  // A live entry as a result with from_cache = true (and marks it most
  // recently used); an expired entry is dropped and nullopt returned.
  std::optional<result> find(std::string_view name, clock::time_point now);

  // Inserts or replaces; evicts the least recently used entry when full.
  // Only ok and nxdomain outcomes belong here.
  void insert(std::string_view name, status st, std::vector<acl::ip_address> addresses,
              clock::time_point expires);

  void clear();
  size_t size() const { return index_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  struct entry {
    std::string name;
    status st;
    std::vector<acl::ip_address> addresses;
    clock::time_point expires;
  };
  using list_t = std::list<entry>;

  size_t capacity_;
  list_t lru_;  // front = most recently used
  // Keys view entry::name inside lru_ (list nodes never move).
  std::unordered_map<std::string_view, list_t::iterator> index_;
};

}  // namespace egressd::dns
