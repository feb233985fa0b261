#pragma once
// The leases of one `rate=... per=client` rule under state redis://: one
// rate_lease per client address, each leased from its own shared bucket
// (egressd:rate:KEY|client=ADDR). Bounded like acl::token_bucket_table: at
// most max_clients leases, least recently used evicted. A client's first
// request on this replica is admitted on credit (the lease starts with one
// token the state thread pays back from the shared bucket at its next
// cycle), so a new client is never refused for want of a round trip.
//
// Thread contract: try_take() from any worker (one shard mutex, as the
// token_bucket_table); collect() from the state thread.

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "state/rate_lease.hpp"

namespace egressd::state {

class rate_lease_table {
 public:
  rate_lease_table(std::string key, double per_second, uint32_t burst, size_t max_clients);
  rate_lease_table(const rate_lease_table&) = delete;
  rate_lease_table& operator=(const rate_lease_table&) = delete;

  bool try_take(std::string_view client, double* retry_after_seconds);

  // State thread: every lease (all = true) or only those used since the
  // last cycle or still owing their credit token.
  std::vector<std::shared_ptr<rate_lease>> collect(bool all);

  const std::string& key() const { return key_; }
  double per_second() const { return per_second_; }
  uint32_t burst() const { return burst_; }

 private:
  struct shard {
    std::mutex mu;
    std::list<std::shared_ptr<rate_lease>> lru;  // most recently used first
    std::unordered_map<std::string_view, std::list<std::shared_ptr<rate_lease>>::iterator> index;
    size_t capacity = 0;
  };
  shard& shard_for(std::string_view client);

  const std::string key_;
  const double per_second_;
  const uint32_t burst_;
  std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace egressd::state
