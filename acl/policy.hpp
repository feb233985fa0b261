#pragma once
// The compiled allowlist: name decisions and destination-address checks.
// Built once per config snapshot off the data path, immutable afterwards and
// shared read-only by every worker (no locks). Lookup cost does not depend on
// the number of rules: hashed exact names and suffixes (one probe per label)
// plus one RE2::Set for all regex patterns.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "acl/address_class.hpp"
#include "acl/client_id.hpp"
#include "acl/ip_address.hpp"
#include "acl/rule.hpp"

namespace egressd::acl {

// SPEC reason codes (the X-Egressd-Reason header, the log and metrics).
enum class reason : uint8_t {
  none,
  not_allowed,
  denied_rule,
  port,
  method,
  non_public_address,
  ip_literal,
  self,
  anomaly_block,
  rate_limited,
  conns_limited,
  bad_request,
  header_too_large,
  uri_too_long,
  dns_failure,
  dns_timeout,
  upstream_unreachable,
  upstream_reset,
  upstream_timeout,
  sni_mismatch,
  no_sni,
  not_tls,
  client_closed,
  idle_timeout,
  shutdown,
  // Added for agents, TLS privacy extensions and overload (SPEC reason codes).
  auth_required,
  auth_failed,
  auth_throttled,
  bad_sni,
  ech,
  overloaded,
};
const char* to_string(reason r);

struct decision {
  bool allowed = false;
  reason why = reason::not_allowed;  // reason::none when allowed
  // Allowed: the most specific fitting allow rule (supplies limits).
  // Denied by a deny rule: that rule. Otherwise nullptr.
  const rule* matched = nullptr;
  int rule_index = -1;  // index into policy::rules(), -1 when none
};

struct build_error {
  int rule_index;  // index into the rules given to build()
  std::string message;
};

class policy {
 public:
  policy();
  ~policy();
  policy(policy&&) noexcept;
  policy& operator=(policy&&) noexcept;

  // Compiles rules (in config order). Patterns must already be valid
  // (parse_pattern); invalid regexes are reported here.
  static std::unique_ptr<policy> build(std::vector<rule> rules, std::vector<net_rule> nets,
                                       std::vector<client_group> groups,
                                       std::vector<build_error>* errors);

  // host: as the client wrote it (normalised here: case, one trailing dot).
  // method: the HTTP method, or empty for a tunnel (CONNECT / SNI), in which
  // case methods= is not checked. client: who asks: its source address and,
  // when it named itself, its agent (agent= rules apply only to the agents
  // they name; group= fits when the address is in the group's networks or the
  // agent is a member of the group).
  // Decision order (SPEC): a matching deny denies (denied_rule); else the most
  // specific allow whose pattern, port, method and group fit allows (exact,
  // then longest suffix, then regex, then earliest); else deny with the most
  // telling reason: `port` if a rule matched the name but not the port,
  // `method` if the port fit but not the method, else `not_allowed`.
  decision decide(std::string_view host, uint16_t port, std::string_view method,
                  const client_id& client) const;
  // An anonymous client: the address alone decides.
  decision decide(std::string_view host, uint16_t port, std::string_view method,
                  const ip_address& client) const {
    client_id c;
    c.addr = client;
    return decide(host, port, method, c);
  }

  // Destination address check for a resolved or literal address: allowed if
  // an allow_net covers it (and the port), else only if it is public.
  bool address_allowed(const ip_address& a, uint16_t port) const;
  // True when an allow_net covers the address and port (IP literals need it).
  bool covered_by_allow_net(const ip_address& a, uint16_t port) const;

  const std::vector<rule>& rules() const;
  const std::vector<net_rule>& nets() const;
  const std::vector<client_group>& groups() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace egressd::acl
