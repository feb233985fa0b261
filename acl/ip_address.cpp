// IP address value type and literal parsers (see ip_address.hpp).
// Pure functions over their arguments; no shared state, safe from any thread.

#include "acl/ip_address.hpp"

#include <charconv>

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace egressd::acl {
namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True for a label that inet_aton or a URL parser would read as a number:
// all decimal digits, or 0x/0X followed by hex digits (possibly none).
// Such a last label makes the whole host "IPv4-shaped" (WHATWG "ends in a
// number"), so it must never be resolved as a name.
bool is_numeric_label(std::string_view label) {
  if (label.empty()) return false;
  if (label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
    for (char c : label.substr(2))
      if (hex_value(c) < 0) return false;
    return true;
  }
  for (char c : label)
    if (!is_digit(c)) return false;
  return true;
}

// One inet_aton part: decimal, 0x hex (at least one digit) or 0-prefixed
// octal. Values above 2^32-1 are rejected rather than wrapped.
std::optional<uint32_t> parse_aton_part(std::string_view s) {
  if (s.empty()) return std::nullopt;
  unsigned base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
    if (s.empty()) return std::nullopt;
  } else if (s.size() >= 2 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  uint64_t v = 0;
  for (char c : s) {
    int d = hex_value(c);
    if (d < 0 || static_cast<unsigned>(d) >= base) return std::nullopt;
    v = v * base + static_cast<unsigned>(d);
    if (v > 0xffffffffULL) return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

std::optional<ip_address> parse_aton(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);  // one trailing dot
  if (s.empty()) return std::nullopt;
  uint32_t parts[4];
  size_t n = 0;
  while (true) {
    size_t dot = s.find('.');
    std::string_view part = s.substr(0, dot);
    if (n == 4) return std::nullopt;
    auto v = parse_aton_part(part);
    if (!v) return std::nullopt;
    parts[n++] = *v;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  uint32_t addr = 0;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (parts[i] > 0xff) return std::nullopt;
    addr |= parts[i] << (8 * (3 - i));
  }
  // The last part fills the remaining 5-n bytes.
  const uint32_t last = parts[n - 1];
  const unsigned bits = 8 * static_cast<unsigned>(5 - n);
  if (bits < 32 && last >= (1u << bits)) return std::nullopt;
  addr |= last;
  return ip_address::v4(addr);
}

// inet_pton needs a NUL-terminated string; copy to the stack (no allocation).
std::optional<ip_address> pton(int af, std::string_view s) {
  char buf[64];
  if (s.empty() || s.size() >= sizeof buf) return std::nullopt;
  // An embedded NUL would silently truncate the text inet_pton sees.
  if (s.find('\0') != std::string_view::npos) return std::nullopt;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  if (af == AF_INET) {
    in_addr a{};
    if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
    return ip_address::v4(ntohl(a.s_addr));
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, buf, &a) != 1) return std::nullopt;
  std::array<uint8_t, 16> b{};
  std::memcpy(b.data(), &a, 16);
  return ip_address::v6(b);
}

bool is_mapped(const std::array<uint8_t, 16>& b) {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

bool prefix_equal(const uint8_t* a, const uint8_t* b, unsigned prefix) {
  unsigned full = prefix / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (a[full] & mask) == (b[full] & mask);
}

bool host_bits_zero(const uint8_t* a, unsigned prefix, unsigned total_bits) {
  for (unsigned bit = prefix; bit < total_bits; ++bit)
    if (a[bit / 8] & (0x80u >> (bit % 8))) return false;
  return true;
}

ip_address to_mapped(const ip_address& v4) {
  std::array<uint8_t, 16> b{};
  b[10] = b[11] = 0xff;
  std::memcpy(&b[12], v4.bytes.data(), 4);
  return ip_address::v6(b);
}

}  // namespace

ip_address ip_address::v4(uint32_t host_order) {
  ip_address a;
  a.family = family_t::v4;
  a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<uint8_t>(host_order);
  return a;
}

ip_address ip_address::v6(const std::array<uint8_t, 16>& b) {
  ip_address a;
  a.family = family_t::v6;
  a.bytes = b;
  return a;
}

uint32_t ip_address::v4_host_order() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         uint32_t{bytes[3]};
}

ip_address ip_address::unmapped() const {
  if (is_v4() || !is_mapped(bytes)) return *this;
  return v4((uint32_t{bytes[12]} << 24) | (uint32_t{bytes[13]} << 16) |
            (uint32_t{bytes[14]} << 8) | uint32_t{bytes[15]});
}

std::string ip_address::to_string() const {
  char buf[64];
  if (is_v4()) {
    // Hot: every connection's client address and upstream (no printf).
    std::string out;
    out.reserve(15);
    char d[4];
    for (int i = 0; i < 4; ++i) {
      if (i) out.push_back('.');
      out.append(d, std::to_chars(d, d + sizeof d, bytes[i]).ptr);
    }
    return out;
  }
  if (is_mapped(bytes)) {
    std::snprintf(buf, sizeof buf, "::ffff:%u.%u.%u.%u", bytes[12], bytes[13], bytes[14],
                  bytes[15]);
    return buf;
  }
  // RFC 5952: lower-case hex, no leading zeros, the longest run (>= 2) of
  // zero groups compressed to "::", the first one on a tie.
  uint16_t w[8];
  for (int i = 0; i < 8; ++i) w[i] = static_cast<uint16_t>((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (w[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && w[j] == 0) ++j;
    if (j - i > best_len) best = i, best_len = j - i;
    i = j;
  }
  if (best_len < 2) best = -1;
  std::string out;
  for (int i = 0; i < 8;) {
    if (i == best) {
      out += "::";
      i += best_len;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buf, sizeof buf, "%x", w[i]);
    out += buf;
    ++i;
  }
  return out;
}

std::optional<ip_address> parse_ip_literal(std::string_view host) {
  if (host.empty()) return std::nullopt;
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
    // Brackets only ever hold IPv6 (RFC 3986 IP-literal); zone ids ("%eth0")
    // are refused by inet_pton.
    if (host.find(':') == std::string_view::npos) return std::nullopt;
    return pton(AF_INET6, host);
  }
  if (host.find(':') != std::string_view::npos) return pton(AF_INET6, host);
  return parse_aton(host);
}

bool looks_like_ip_literal(std::string_view host) {
  if (host.empty()) return false;
  if (host.find_first_of(":[]") != std::string_view::npos) return true;
  if (parse_ip_literal(host)) return true;
  while (!host.empty() && host.back() == '.') host.remove_suffix(1);
  size_t dot = host.rfind('.');
  std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  return is_numeric_label(last);
}

std::optional<ip_address> parse_ip_strict(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return pton(AF_INET6, text);
  return pton(AF_INET, text);
}

bool cidr::contains(const ip_address& a) const {
  const ip_address u = a.unmapped();
  if (network.is_v4())
    return u.is_v4() && prefix_equal(u.bytes.data(), network.bytes.data(), prefix);
  // A v6 network covering ::ffff:0:0/96 (e.g. ::/0 or ::ffff:10.0.0.0/104)
  // also covers the plain IPv4 address.
  const ip_address v6 = u.is_v4() ? to_mapped(u) : u;
  return prefix_equal(v6.bytes.data(), network.bytes.data(), prefix);
}

std::string cidr::to_string() const {
  return network.to_string() + "/" + std::to_string(prefix);
}

std::optional<cidr> parse_cidr(std::string_view text) {
  size_t slash = text.find('/');
  auto addr = parse_ip_strict(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const unsigned max = addr->is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    if (p.size() > 1 && p[0] == '0') return std::nullopt;
    prefix = 0;
    for (char c : p) {
      if (!is_digit(c)) return std::nullopt;
      prefix = prefix * 10 + static_cast<unsigned>(c - '0');
    }
    if (prefix > max) return std::nullopt;
  }
  if (!host_bits_zero(addr->bytes.data(), prefix, max)) return std::nullopt;
  return cidr{*addr, static_cast<uint8_t>(prefix)};
}

}  // namespace egressd::acl
