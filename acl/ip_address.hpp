#pragma once
// Value type for an IPv4 or IPv6 address, and the IP-literal parser.
// Pure (no Asio, no allocation except to_string); safe to use from any thread.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::acl {

struct ip_address {
  enum class family_t : uint8_t { v4, v6 };
  family_t family = family_t::v4;
  // Network byte order. For v4 only bytes[0..3] are used, the rest stay zero.
  std::array<uint8_t, 16> bytes{};

  static ip_address v4(uint32_t host_order);
  static ip_address v6(const std::array<uint8_t, 16>& b);
  bool is_v4() const { return family == family_t::v4; }
  uint32_t v4_host_order() const;  // precondition: is_v4()
  // ::ffff:a.b.c.d -> a.b.c.d; any other address unchanged.
  ip_address unmapped() const;
  // "1.2.3.4" or "2001:db8::1" (RFC 5952 form).
  std::string to_string() const;
  friend bool operator==(const ip_address&, const ip_address&) = default;
};

// Recognises every spelling of an IP literal a client could use as a host:
// everything inet_aton accepts (1 to 4 parts; each part decimal, 0x hex or
// 0-prefixed octal; the last part fills the remaining bytes: "127.1",
// "2130706433", "0x7f.1", "0177.0.0.1"), plain IPv6 ("::1") and bracketed
// IPv6 ("[::1]"), with an optional trailing dot on the IPv4 forms. Returns
// nullopt for anything that is not an IP literal (a host name).
// A string that is all digits/hex-like dotted parts but out of range (e.g.
// "256.1.1.1.1") is *not* a name either: see looks_like_ip_literal().
std::optional<ip_address> parse_ip_literal(std::string_view host);

// True when the host is shaped like a numeric address (digits, dots, 0x
// forms, or contains ':' or '[') even if parse_ip_literal() rejects it, so
// the caller can refuse it as `ip_literal` rather than resolve it.
bool looks_like_ip_literal(std::string_view host);

// Strict address syntax for config files: dotted quad or IPv6 text, no
// inet_aton shortcuts.
std::optional<ip_address> parse_ip_strict(std::string_view text);

struct cidr {
  ip_address network;  // host bits zero
  uint8_t prefix = 0;  // 0..32 for v4, 0..128 for v6
  bool contains(const ip_address& a) const;  // mapped v6 judged as v4
  std::string to_string() const;
};

// "10.0.0.0/8", "192.168.1.1" (= /32), "fd00::/8". Strict syntax; host bits
// set beyond the prefix are an error (nullopt) to catch typos.
std::optional<cidr> parse_cidr(std::string_view text);

}  // namespace egressd::acl
