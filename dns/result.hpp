#pragma once
// Outcome of one name lookup: plain values, no Asio, safe to copy between
// threads. Shared by the resolver and its cache.

#include <cstdint>
#include <vector>

#include "acl/ip_address.hpp"

namespace egressd::dns {

enum class status : uint8_t { ok, nxdomain, timeout, failure };
const char* to_string(status s);

struct result {
  status st = status::failure;
  std::vector<acl::ip_address> addresses;  // IPv4 first, then IPv6, deduplicated
  bool from_cache = false;
};

}  // namespace egressd::dns
