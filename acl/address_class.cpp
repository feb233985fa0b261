// Destination address classification (see address_class.hpp).
// Pure function over a value; safe from any thread.

#include "acl/address_class.hpp"

#include <cstring>

namespace egressd::acl {
namespace {

struct v4_range {
  uint32_t network;
  unsigned prefix;
  address_class cls;
};

constexpr uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// Most specific first: the first match wins (255.255.255.255 before 240/4).
constexpr v4_range v4_ranges[] = {
    {ip4(255, 255, 255, 255), 32, address_class::broadcast},
    {ip4(168, 63, 129, 16), 32, address_class::azure_wireserver},
    {ip4(0, 0, 0, 0), 8, address_class::this_network},
    {ip4(127, 0, 0, 0), 8, address_class::loopback},
    {ip4(10, 0, 0, 0), 8, address_class::private_network},
    {ip4(172, 16, 0, 0), 12, address_class::private_network},
    {ip4(192, 168, 0, 0), 16, address_class::private_network},
    {ip4(100, 64, 0, 0), 10, address_class::cgnat},
    {ip4(169, 254, 0, 0), 16, address_class::link_local},
    {ip4(192, 0, 0, 0), 24, address_class::ietf_protocol},
    {ip4(192, 0, 2, 0), 24, address_class::documentation},
    {ip4(198, 51, 100, 0), 24, address_class::documentation},
    {ip4(203, 0, 113, 0), 24, address_class::documentation},
    {ip4(198, 18, 0, 0), 15, address_class::benchmarking},
    {ip4(224, 0, 0, 0), 4, address_class::multicast},
    {ip4(240, 0, 0, 0), 4, address_class::reserved},
};

address_class classify_v4(uint32_t a) {
  for (const auto& r : v4_ranges) {
    const uint32_t mask = r.prefix == 0 ? 0 : ~uint32_t{0} << (32 - r.prefix);
    if ((a & mask) == r.network) return r.cls;
  }
  return address_class::public_address;
}

struct v6_range {
  std::array<uint8_t, 16> network;
  unsigned prefix;
  address_class cls;
};

bool in_prefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& net,
               unsigned prefix) {
  const unsigned full = prefix / 8;
  if (std::memcmp(a.data(), net.data(), full) != 0) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (a[full] & mask) == (net[full] & mask);
}

const v6_range v6_ranges[] = {
    {{}, 128, address_class::unspecified},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, address_class::loopback},
    // ::/96 (IPv4-compatible, deprecated): fail closed.
    {{}, 96, address_class::reserved},
    {{0xfc}, 7, address_class::unique_local},
    {{0xfe, 0x80}, 10, address_class::link_local},
    {{0xff}, 8, address_class::multicast},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, address_class::documentation},
    // NAT64: the well-known prefix and the local-use 64:ff9b:1::/48 (RFC 8215).
    {{0x00, 0x64, 0xff, 0x9b}, 96, address_class::nat64},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, address_class::nat64},
    {{0x20, 0x02}, 16, address_class::six_to_four},
    {{0x20, 0x01, 0x00, 0x00}, 32, address_class::teredo},
};

address_class classify_v6(const std::array<uint8_t, 16>& a) {
  for (const auto& r : v6_ranges)
    if (in_prefix(a, r.network, r.prefix)) return r.cls;
  // Everything outside global unicast 2000::/3 is unassigned or special
  // (100::/64 discard, ::ffff:0:0:0/96, fec0::/10 ...): fail closed.
  if ((a[0] & 0xe0) != 0x20) return address_class::reserved;
  return address_class::public_address;
}

}  // namespace

address_class classify(const ip_address& a) {
  const ip_address u = a.unmapped();
  if (u.is_v4()) return classify_v4(u.v4_host_order());
  return classify_v6(u.bytes);
}

const char* to_string(address_class c) {
  switch (c) {
    case address_class::public_address: return "public";
    case address_class::this_network: return "this_network";
    case address_class::loopback: return "loopback";
    case address_class::private_network: return "private";
    case address_class::cgnat: return "cgnat";
    case address_class::link_local: return "link_local";
    case address_class::ietf_protocol: return "ietf_protocol";
    case address_class::documentation: return "documentation";
    case address_class::benchmarking: return "benchmarking";
    case address_class::reserved: return "reserved";
    case address_class::broadcast: return "broadcast";
    case address_class::multicast: return "multicast";
    case address_class::azure_wireserver: return "azure_wireserver";
    case address_class::unspecified: return "unspecified";
    case address_class::unique_local: return "unique_local";
    case address_class::nat64: return "nat64";
    case address_class::six_to_four: return "6to4";
    case address_class::teredo: return "teredo";
  }
  return "unknown";
}

}  // namespace egressd::acl
