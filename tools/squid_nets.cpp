#include "tools/squid_nets.hpp"

#include <algorithm>
#include <string>

namespace egressd::tools {

bool cidr_within(const acl::cidr& inner, const acl::cidr& outer) {
  if (inner.network.is_v4() != outer.network.is_v4() || inner.prefix < outer.prefix) return false;
  unsigned full = outer.prefix / 8, rest = outer.prefix % 8;
  for (unsigned i = 0; i < full; ++i)
    if (inner.network.bytes[i] != outer.network.bytes[i]) return false;
  if (rest == 0) return true;
  uint8_t mask = uint8_t(0xff << (8 - rest));
  return (inner.network.bytes[full] & mask) == (outer.network.bytes[full] & mask);
}

bool nets_within(const std::vector<acl::cidr>& a, const std::vector<acl::cidr>& b) {
  return std::all_of(a.begin(), a.end(), [&](const acl::cidr& x) {
    return std::any_of(b.begin(), b.end(), [&](const acl::cidr& y) { return cidr_within(x, y); });
  });
}

bool nets_overlap(const std::vector<acl::cidr>& a, const std::vector<acl::cidr>& b) {
  for (const auto& x : a)
    for (const auto& y : b)
      if (cidr_within(x, y) || cidr_within(y, x)) return true;
  return false;
}

bool non_public_net(const acl::cidr& c) {
  static const std::vector<acl::cidr> blocks = [] {
    std::vector<acl::cidr> v;
    for (const char* s :
         {"0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
          "169.254.0.0/16", "192.0.0.0/24", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
          "198.18.0.0/15", "240.0.0.0/4", "224.0.0.0/4", "168.63.129.16/32", "::/128", "::1/128",
          "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "64:ff9b::/96", "2002::/16",
          "2001::/32"})
      v.push_back(*acl::parse_cidr(s));
    return v;
  }();
  return std::any_of(blocks.begin(), blocks.end(), [&](const acl::cidr& b) { return cidr_within(c, b); });
}

bool all_non_public(const std::vector<acl::cidr>& nets) {
  return !nets.empty() && std::all_of(nets.begin(), nets.end(), non_public_net);
}

std::string nets_str(const std::vector<acl::cidr>& nets) {
  std::string s;
  for (const auto& n : nets) {
    if (!s.empty()) s += ' ';
    s += n.to_string();
  }
  return s;
}

}  // namespace egressd::tools
