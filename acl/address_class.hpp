#pragma once
// Classification of destination addresses: every non-public range of SPEC.
// Pure function; thread-safe.

#include "acl/ip_address.hpp"

namespace egressd::acl {

enum class address_class : uint8_t {
  public_address,
  this_network,      // 0.0.0.0/8
  loopback,          // 127/8, ::1
  private_network,   // 10/8, 172.16/12, 192.168/16
  cgnat,             // 100.64/10
  link_local,        // 169.254/16 (cloud metadata), fe80::/10
  ietf_protocol,     // 192.0.0.0/24
  documentation,     // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32
  benchmarking,      // 198.18/15
  reserved,          // 240/4
  broadcast,         // 255.255.255.255
  multicast,         // 224/4, ff00::/8
  azure_wireserver,  // 168.63.129.16
  unspecified,       // ::/128
  unique_local,      // fc00::/7
  nat64,             // 64:ff9b::/96
  six_to_four,       // 2002::/16
  teredo,            // 2001::/32
};

// An IPv4-mapped IPv6 address (::ffff:0:0/96) is judged as the IPv4 inside.
address_class classify(const ip_address& a);
const char* to_string(address_class c);
inline bool is_public(address_class c) { return c == address_class::public_address; }

}  // namespace egressd::acl
