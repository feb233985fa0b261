#pragma once
// What a client is told (SPEC "What a client is told"): the one mapping from
// a reason code to the HTTP status, plus the one-line body an agent can act
// on. Pure; no Asio.

#include <cstdint>
#include <string>
#include <string_view>

#include "acl/policy.hpp"

namespace egressd::proxy {

// Status for a refusal reason (403, 429, 400, 431, 414, 502, 504).
int status_for(acl::reason r);
const char* status_text(int status);

struct refusal_detail {
  std::string_view host;
  uint16_t port = 0;
  std::string_view method;
  std::string_view rule;     // for denied_rule
  std::string_view address;  // for non_public_address
  std::string_view what;     // for bad_request: what was wrong
  uint64_t retry_after = 0;  // 429
  std::string_view agent;    // the agent the request was judged for ("" = none)
  bool grantable = false;    // the admin API is on: a grant can allow it
};

// The whole response: status line, X-Egressd-Reason, Content-Type,
// Content-Length, Connection, Retry-After on a 429, Proxy-Authenticate on a
// 407, and the body line.
std::string refusal_response(acl::reason r, const refusal_detail& d, bool keep_alive);

// The body line alone (ends with '\n').
std::string refusal_body(acl::reason r, const refusal_detail& d);

}  // namespace egressd::proxy
