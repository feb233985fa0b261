#pragma once
// The set of requests an http_access allow rule still admits, as a
// conjunction of Squid ACL literals grouped by what they test: client
// networks, destination names, destination networks, ports and methods.
// Ports are tracked separately for CONNECT and for plain HTTP, because
// `http_access deny CONNECT !SSL_ports` restricts only tunnels. Built from
// the constraints carried by earlier deny rules plus the rule's own ACLs.
// Value type; one thread.

#include <optional>
#include <string>
#include <vector>

#include "tools/port_set.hpp"
#include "tools/squid_acl_table.hpp"

namespace egressd::tools {

struct squid_region {
  bool never = false;       // matches no request at all
  std::string never_why;
  std::string unsupported;  // non-empty: an ACL egressd cannot evaluate
  std::vector<const squid_acl*> src_pos, src_neg;  // client networks
  std::vector<const squid_acl*> dom_pos, dom_neg;  // destination names
  std::vector<const squid_acl*> dst_pos, dst_neg;  // destination networks
  port_set http_ports = port_set::all();     // plain HTTP (any method but CONNECT)
  port_set connect_ports = port_set::all();  // CONNECT tunnels
  // Plain-HTTP methods admitted; nullopt = any. Empty = none (tunnels only).
  std::optional<std::vector<std::string>> methods;

  // AND the region with `[!]acl`. A `manager` ACL (Squid's cache manager,
  // which egressd does not have) matches nothing here.
  void apply(const squid_acl& a, bool negated);
  // Restrict only CONNECT (connect=true) or only plain HTTP to ports:
  // keep (restrict=true) or remove (false) `ports`.
  void restrict_ports(bool connect, const port_set& ports, bool keep);
};

// Methods used for a negated method ACL ("any method but PURGE"): egressd
// lists methods, so "any other" becomes these standard ones.
const std::vector<std::string>& standard_http_methods();

}  // namespace egressd::tools
