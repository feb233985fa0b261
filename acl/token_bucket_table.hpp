#pragma once
// The buckets of one `rate=... per=client` rule: one token_bucket per client
// address, created full on first sight. Bounded: at most max_clients buckets;
// beyond that the least recently used client's bucket is evicted (it comes
// back full, so an evicted client gains at most one burst). Thread-safe: the
// table is split into shards, each a short mutex-protected LRU map (lookup +
// a CAS on the bucket; no allocation except for a new client). Owned by the
// rule's limit state; must outlive every thread that uses it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "acl/token_bucket.hpp"

namespace egressd::acl {

class token_bucket_table {
 public:
  using clock = token_bucket::clock;

  // max_clients >= 1. With fewer than 256 clients the table is one exact LRU;
  // above that it is sharded and the LRU is exact within each shard.
  token_bucket_table(double per_second, uint32_t burst, size_t max_clients);
  ~token_bucket_table();
  token_bucket_table(const token_bucket_table&) = delete;
  token_bucket_table& operator=(const token_bucket_table&) = delete;

  // client: the source address as text (without the port, so that all the
  // connections of one client share a bucket). Same contract as
  // token_bucket::try_take.
  bool try_take(std::string_view client, clock::time_point now,
                double* retry_after_seconds = nullptr);

  // Tokens left for a client (burst if unknown); for tests.
  double available(std::string_view client, clock::time_point now) const;
  size_t size() const;  // buckets held, <= max_clients
  size_t max_clients() const { return max_clients_; }

 private:
  struct entry {
    entry(std::string k, double per_second, uint32_t burst)
        : key(std::move(k)), bucket(per_second, burst) {}
    std::string key;
    token_bucket bucket;
  };
  struct shard {
    mutable std::mutex mu;
    std::list<entry> lru;  // most recently used first
    std::unordered_map<std::string_view, std::list<entry>::iterator> index;  // views into lru keys
    size_t capacity = 0;
  };

  shard& shard_for(std::string_view client) const;

  double per_second_;
  uint32_t burst_;
  size_t max_clients_;
  std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace egressd::acl
