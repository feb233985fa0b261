#pragma once
// Plain data for allowlist rules as written in the config. Built by the
// config parser, compiled by acl::policy; immutable afterwards.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "acl/ip_address.hpp"

namespace egressd::acl {

struct rate_spec {
  double per_second = 0;  // refill rate
  uint32_t burst = 0;     // bucket size; the bucket starts full
  bool per_client = false;
};

struct rule_limits {
  std::optional<rate_spec> rate;
  std::optional<uint32_t> conns;          // concurrent tunnels/requests
  std::optional<uint64_t> bandwidth_bps;  // bytes per second, each direction
};

struct rule {
  enum class action_t : uint8_t { allow, deny };
  action_t action = action_t::allow;
  std::string pattern;               // as written: the metric label
  std::vector<uint16_t> ports;       // allow only; never empty (default 80,443)
  std::vector<std::string> methods;  // upper-case; empty = any method
  std::string group;                 // empty = every client
  std::vector<std::string> agents;   // agent=: only these agents; empty = everyone
  rule_limits limits;
  // Where it was written, for diagnostics and the `rule` log field.
  std::string file;
  int line = 0;
};

// `allow_net CIDR... [ports=N,...]`: non-public destinations that are allowed,
// also reachable by IP literal.
struct net_rule {
  std::vector<cidr> nets;
  std::vector<uint16_t> ports;  // empty = any port
  std::string file;
  int line = 0;
};

// `group NAME CIDR...`
struct client_group {
  std::string name;
  std::vector<cidr> nets;
};

}  // namespace egressd::acl
