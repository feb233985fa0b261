#include "proxy/rule_limits.hpp"

#include <chrono>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "state/redis_state.hpp"

namespace egressd::proxy {

std::shared_ptr<const rule_limits> rule_limits::build(const config::snapshot& snap, const rule_limits* previous,
                                                      monitor::metrics& metrics, state::redis_state* shared) {
  auto out = std::make_shared<rule_limits>();
  std::unordered_map<std::string, const rule_runtime*> old;
  if (previous)
    for (const auto& r : previous->rules_) old.emplace(r.key, &r);
  // Pattern (and group) identify a rule across reloads; its limits may change.
  const auto now = acl::token_bucket::clock::now();
  const auto& rules = snap.policy->rules();
  out->rules_.resize(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    const acl::rule& r = rules[i];
    rule_runtime& rt = out->rules_[i];
    rt.key = fmt::format("{}|{}|{}|{}", r.action == acl::rule::action_t::allow ? "allow" : "deny", r.pattern,
                         r.group, fmt::join(r.agents, ","));
    rt.metric = metrics.rule_series(r.pattern);
    if (r.action != acl::rule::action_t::allow) continue;
    auto it = old.find(rt.key);
    const rule_runtime* prev = it == old.end() ? nullptr : it->second;
    const auto& lim = r.limits;
    if (lim.rate && !lim.rate->per_client && shared) {
      // The fleet's bucket: same pattern, group and parameters = same key on
      // every replica (a rollout that changes rate= gets a fresh bucket).
      rt.lease = shared->lease(fmt::format("{}|{}|{}|{}", r.pattern, r.group, lim.rate->per_second, lim.rate->burst),
                               lim.rate->per_second, lim.rate->burst);
    } else if (lim.rate && shared) {
      rt.client_leases = shared->lease_table(
          fmt::format("{}|{}|{}|{}", r.pattern, r.group, lim.rate->per_second, lim.rate->burst), lim.rate->per_second,
          lim.rate->burst, snap.limit.max_clients);
    } else if (lim.rate && !lim.rate->per_client) {
      if (prev && prev->bucket && prev->bucket->per_second() == lim.rate->per_second &&
          prev->bucket->burst() == lim.rate->burst) {
        rt.bucket = prev->bucket;
      } else {
        rt.bucket = std::make_shared<acl::token_bucket>(lim.rate->per_second, lim.rate->burst);
        if (prev && prev->bucket) rt.bucket->carry_from(*prev->bucket, now);
      }
    } else if (lim.rate) {
      if (prev && prev->client_buckets && prev->rate_per_second == lim.rate->per_second &&
          prev->rate_burst == lim.rate->burst)
        rt.client_buckets = prev->client_buckets;
      else
        rt.client_buckets = std::make_shared<acl::token_bucket_table>(lim.rate->per_second, lim.rate->burst,
                                                                      snap.limit.max_clients);
    }
    if (lim.rate) {
      rt.rate_per_second = lim.rate->per_second;
      rt.rate_burst = lim.rate->burst;
    }
    if (lim.conns) {
      if (prev && prev->conns) {
        rt.conns = prev->conns;
        rt.conns->set_limit(*lim.conns);
      } else {
        rt.conns = std::make_shared<acl::concurrency_limiter>(*lim.conns);
      }
    }
    if (lim.bandwidth_bps) {
      if (prev && prev->bandwidth && prev->bandwidth->bytes_per_second() == *lim.bandwidth_bps)
        rt.bandwidth = prev->bandwidth;
      else
        rt.bandwidth = std::make_shared<acl::bandwidth_limiter>(*lim.bandwidth_bps);
    }
  }
  // Series exist from the start for every configured agent (a scrape shows
  // 0 rather than nothing); an agent removed by a reload keeps its last
  // counts until restart, like a removed rule.
  if (snap.agents)
    for (const auto& a : snap.agents->agents()) out->agents_.push_back(metrics.agent_series(a.name));
  return out;
}

}  // namespace egressd::proxy
