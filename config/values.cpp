// Value grammar: sizes, durations, rates, ports and endpoints.
#include "config/values.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include "acl/ip_address.hpp"
#include "acl/pattern.hpp"
#include "config/config.hpp"

namespace egressd::config {

bool parse_u64(std::string_view v, uint64_t* out) {
  if (v.empty() || v.front() < '0' || v.front() > '9') return false;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return false;
  *out = n;
  return true;
}

// Splits "123abc" into the leading digits and the rest.
static bool split_number(std::string_view v, uint64_t* n, std::string_view* unit) {
  size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  if (i == 0) return false;
  *unit = v.substr(i);
  return parse_u64(v.substr(0, i), n);
}

bool parse_size(std::string_view v, uint64_t* out) {
  uint64_t n = 0;
  std::string_view unit;
  if (!split_number(v, &n, &unit)) return false;
  uint64_t mult = 1;
  if (unit.empty()) {
    mult = 1;
  } else if (unit.size() == 1) {
    switch (unit[0]) {
      case 'K': case 'k': mult = 1ull << 10; break;
      case 'M': case 'm': mult = 1ull << 20; break;
      case 'G': case 'g': mult = 1ull << 30; break;
      default: return false;
    }
  } else {
    return false;
  }
  if (n > std::numeric_limits<uint64_t>::max() / mult) return false;
  *out = n * mult;
  return true;
}

bool parse_duration(std::string_view v, milliseconds* out) {
  uint64_t n = 0;
  std::string_view unit;
  if (!split_number(v, &n, &unit)) return false;
  uint64_t mult;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  else return false;  // a unit is required: "30" could mean s or ms
  constexpr uint64_t max_ms = uint64_t(std::numeric_limits<milliseconds::rep>::max());
  if (n > max_ms / mult) return false;
  *out = milliseconds(milliseconds::rep(n * mult));
  return true;
}

bool parse_rate_parts(std::string_view v, rate_parts* out) {
  auto slash = v.find('/');
  if (slash == std::string_view::npos) return false;
  uint64_t n = 0;
  if (!parse_u64(v.substr(0, slash), &n)) return false;
  std::string_view unit = v.substr(slash + 1);
  uint64_t period;
  if (unit == "s") period = 1;
  else if (unit == "m") period = 60;
  else if (unit == "h") period = 3600;
  else return false;
  out->count = n;
  out->period_seconds = period;
  return true;
}

bool parse_rate(std::string_view v, double* per_second) {
  rate_parts r;
  if (!parse_rate_parts(v, &r)) return false;
  *per_second = r.per_second();
  return true;
}

bool parse_port(std::string_view v, uint16_t* out) {
  uint64_t n = 0;
  if (!parse_u64(v, &n) || n < 1 || n > 65535) return false;
  *out = uint16_t(n);
  return true;
}

bool parse_port_list(std::string_view v, std::vector<uint16_t>* out, std::string_view* bad) {
  size_t start = 0;
  while (true) {
    size_t comma = v.find(',', start);
    std::string_view item = v.substr(start, comma == std::string_view::npos ? v.npos : comma - start);
    uint16_t p = 0;
    if (!parse_port(item, &p)) {
      *bad = item;
      return false;
    }
    if (std::find(out->begin(), out->end(), p) == out->end()) out->push_back(p);
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
}

// HOST is a strict IP literal (canonical text) or a DNS name (lower-case).
static bool parse_host(std::string_view h, std::string* out) {
  if (h.empty()) return false;
  if (auto ip = acl::parse_ip_strict(h)) {
    *out = ip->to_string();
    return true;
  }
  // Shaped like an address but not a valid one ("300.1.1.1", "127.1"):
  // refuse rather than treat as a name.
  if (acl::looks_like_ip_literal(h)) return false;
  auto name = acl::normalize_host(h);
  if (!name) return false;
  *out = std::move(*name);
  return true;
}

bool parse_host_port(std::string_view v, endpoint* out, bool* has_port_out) {
  std::string_view host, port;
  bool has_port = false;
  if (!v.empty() && v.front() == '[') {
    auto close = v.find(']');
    if (close == std::string_view::npos) return false;
    host = v.substr(1, close - 1);
    std::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      has_port = true;
    }
    auto ip = acl::parse_ip_strict(host);
    if (!ip || ip->is_v4()) return false;
  } else {
    auto colon = v.find(':');
    if (colon != std::string_view::npos && v.find(':', colon + 1) != std::string_view::npos) {
      // Bare IPv6 (several colons): only without a port.
      auto ip = acl::parse_ip_strict(v);
      if (!ip || ip->is_v4()) return false;
      host = v;
    } else if (colon != std::string_view::npos) {
      host = v.substr(0, colon);
      port = v.substr(colon + 1);
      has_port = true;
    } else {
      host = v;
    }
  }
  endpoint e;
  if (!parse_host(host, &e.host)) return false;
  if (has_port) {
    uint64_t n = 0;
    if (!parse_u64(port, &n) || n > 65535) return false;
    e.port = uint16_t(n);
  }
  *out = std::move(e);
  *has_port_out = has_port;
  return true;
}

bool parse_endpoint(std::string_view v, endpoint* out, bool port_required) {
  endpoint e;
  bool has_port = false;
  if (!parse_host_port(v, &e, &has_port)) return false;
  if (port_required && !has_port) return false;
  if (has_port && e.port == 0) return false;
  *out = std::move(e);
  return true;
}

std::string explain_cidr(std::string_view v) {
  std::string head = "invalid network '" + std::string(v) + "'";
  auto slash = v.find('/');
  auto ip = acl::parse_ip_strict(v.substr(0, slash));
  if (!ip) return head + " (write ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8)";
  if (slash == v.npos) return head;
  uint64_t prefix = 0;
  unsigned max = ip->is_v4() ? 32 : 128;
  if (!parse_u64(v.substr(slash + 1), &prefix) || prefix > max)
    return head + " (the prefix length is 0.." + std::to_string(max) + ")";
  acl::ip_address net = *ip;
  for (unsigned bit = unsigned(prefix); bit < max; ++bit)
    net.bytes[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
  return head + ": host bits are set (did you mean " + net.to_string() + "/" +
         std::to_string(prefix) + "?)";
}


}  // namespace egressd::config
