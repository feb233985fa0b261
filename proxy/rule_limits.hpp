#pragma once
// The mutable side of allow rules: rate buckets, concurrency limiters and
// bandwidth limiters (SPEC allow options rate=/burst=/per=/conns=/bandwidth=),
// plus each rule's metric series. Built on the main thread next to every
// config snapshot, immutable afterwards; the limiters inside are shared by
// all workers (atomics, no lock on the data path) and carried over a reload
// by rule key, so a reload neither refills a bucket nor forgets open slots.
// A session pins the table it started with, which keeps its limiters alive.

#include <memory>
#include <string>
#include <vector>

#include "acl/bandwidth_limiter.hpp"
#include "acl/concurrency_limiter.hpp"
#include "acl/token_bucket.hpp"
#include "acl/token_bucket_table.hpp"
#include "config/config.hpp"
#include "monitor/metrics.hpp"
#include "state/rate_lease.hpp"
#include "state/rate_lease_table.hpp"

namespace egressd::state {
class redis_state;
}

namespace egressd::proxy {

struct rule_runtime {
  std::string key;  // pattern + options: what must match to carry state over
  std::shared_ptr<acl::token_bucket> bucket;                 // rate=, shared
  std::shared_ptr<state::rate_lease> lease;                  // rate= under state redis:// (instead of bucket)
  std::shared_ptr<state::rate_lease_table> client_leases;    // rate= per=client under state redis://
  std::shared_ptr<acl::token_bucket_table> client_buckets;   // rate= per=client
  std::shared_ptr<acl::concurrency_limiter> conns;           // conns=
  std::shared_ptr<acl::bandwidth_limiter> bandwidth;         // bandwidth=
  double rate_per_second = 0;  // the rate= the buckets were made for
  uint32_t rate_burst = 0;
  monitor::metrics_registry::counter_id metric{};
};

class rule_limits {
 public:
  // previous: the table of the snapshot being replaced (may be null).
  // shared: the fleet's state (state redis://), or null: a rule-wide rate=
  // then leases from the fleet's bucket instead of a local one.
  static std::shared_ptr<const rule_limits> build(const config::snapshot& snap, const rule_limits* previous,
                                                  monitor::metrics& metrics, state::redis_state* shared = nullptr);
  // rule_index from acl::decision; null for -1.
  const rule_runtime* at(int rule_index) const {
    return rule_index >= 0 && static_cast<size_t>(rule_index) < rules_.size() ? &rules_[rule_index] : nullptr;
  }
  // egressd_agent_requests_total ids of the snapshot's agent (agent_table
  // index); null for -1.
  const monitor::metrics::agent_ids* agent(int agent_index) const {
    return agent_index >= 0 && static_cast<size_t>(agent_index) < agents_.size() ? &agents_[agent_index] : nullptr;
  }

 private:
  std::vector<rule_runtime> rules_;
  std::vector<monitor::metrics::agent_ids> agents_;  // parallel to snapshot.agents->agents()
};

}  // namespace egressd::proxy
