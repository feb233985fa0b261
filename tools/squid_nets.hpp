#pragma once
// Set relations between lists of networks (IPv4 and IPv6 never mix), and
// SPEC's non-public destination ranges. Pure functions; thread-safe.

#include <vector>

#include "acl/ip_address.hpp"

namespace egressd::tools {

// `inner` is inside `outer`.
bool cidr_within(const acl::cidr& inner, const acl::cidr& outer);
// Every network of `a` is inside some network of `b`.
bool nets_within(const std::vector<acl::cidr>& a, const std::vector<acl::cidr>& b);
// Some address is in both.
bool nets_overlap(const std::vector<acl::cidr>& a, const std::vector<acl::cidr>& b);
// True when every address of `c` is one egressd refuses unless allow_net
// covers it (SPEC "Patterns and decisions": loopback, RFC 1918, CGNAT,
// link-local, ...).
bool non_public_net(const acl::cidr& c);
bool all_non_public(const std::vector<acl::cidr>& nets);
// "10.0.0.0/8 fd00::/8"
std::string nets_str(const std::vector<acl::cidr>& nets);

}  // namespace egressd::tools
