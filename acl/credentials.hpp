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

// The credentials last accepted on one client connection, so a keep-alive
// client that repeats them (every client does) is not decoded and hashed
// again. Owned by the session (its thread only); valid for one agent_table:
// the session resets it when its config snapshot changes. Holds a copy of the
// Proxy-Authorization value, wiped (OPENSSL_cleanse) on reset and destruction.
class credential_cache {
 public:
  static constexpr size_t max_value = 4096;  // longer values are not cached
  credential_cache() = default;
  ~credential_cache() { reset(); }
  credential_cache(const credential_cache&) = delete;
  credential_cache& operator=(const credential_cache&) = delete;
  void reset();
  // The agent `value` named last time on this table, or null (compared in
  // constant time over the value's length).
  const agent* find(const agent_table& t, std::string_view value) const;
  void remember(const agent_table& t, std::string_view value, const agent* who);

 private:
  std::string value_;
  const agent_table* table_ = nullptr;
  const agent* who_ = nullptr;
};

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
// ignored and nothing is checked. `cache` (optional): the connection's
// last accepted credentials; consulted after the throttle, updated on success.
auth_outcome authenticate(auth_mode mode, const agent_table& agents, auth_throttle& throttle,
                          const ip_address& addr, const presented_credentials& creds,
                          auth_throttle::clock::time_point now, credential_cache* cache = nullptr);

}  // namespace egressd::acl
