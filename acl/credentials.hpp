#pragma once
// Proxy credentials (SPEC "Agents by name"): parsing Proxy-Authorization
// (Basic base64(NAME:TOKEN), Bearer TOKEN), finding the agent, and the one
// per-request decision that combines the auth mode, the failure throttle and
// the credentials. Pure (no Asio); thread-safe (per-thread scratch only).
// Nothing here keeps, logs or returns a token.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "acl/agents.hpp"
#include "acl/auth_throttle.hpp"
#include "acl/ip_address.hpp"
#include "acl/policy.hpp"

namespace egressd::acl {

// Strict RFC 4648 base64 (padding required, no whitespace, no URL-safe
// alphabet, unused bits zero). False on anything else; `out` is replaced.
bool decode_base64(std::string_view in, std::string* out);

// One Proxy-Authorization value against the agents: the agent it names, or
// null when it is malformed, names no agent, or (Basic) the name and the
// token do not belong together. The token is hashed once (SHA-256) and
// looked up in the table; no scan over agents.
const agent* check_credentials(const agent_table& agents, std::string_view value);

// What a forward-proxy request presented.
struct presented_credentials {
  unsigned fields = 0;     // Proxy-Authorization fields in the request
  std::string_view value;  // the first one's value
};

struct auth_outcome {
  reason why = reason::none;  // none, auth_required, auth_failed or auth_throttled
  const agent* who = nullptr; // the agent named, when why == none
  uint64_t retry_after = 0;   // auth_throttled: seconds
};

// The per-request decision, in this order: no credentials -> auth_required
// under `required`, else anonymous (not a failure); credentials from a
// throttled address -> auth_throttled (not checked); more than one field or
// credentials that name no agent -> auth_failed (counted towards the
// throttle) under `optional` and `required`; under `off` credentials are
// ignored and nothing is checked.
auth_outcome authenticate(auth_mode mode, const agent_table& agents, auth_throttle& throttle,
                          const ip_address& addr, const presented_credentials& creds,
                          auth_throttle::clock::time_point now);

}  // namespace egressd::acl
