#pragma once
// Parsing of proxy request targets: absolute-form URIs (RFC 9112 3.2.2) and
// CONNECT authorities (3.2.3). Pure; no allocation (views into the input).

#include <cstdint>
#include <string_view>

namespace egressd::proxy {

struct target {
  std::string_view host;  // without brackets for IPv6; not yet normalised
  uint16_t port = 0;
  std::string_view path;  // origin-form ("/" when empty), query included
  bool bracketed = false;  // host was written as [v6]
};

// "http://host[:port]/path?query". Rejects other schemes, userinfo ('@' in the
// authority: `http://allowed@evil/` must never be judged as "allowed"),
// fragments, empty hosts and bad ports. Scheme is case-insensitive.
bool parse_absolute_form(std::string_view uri, target* out);

// "host:port" with a mandatory port, or "[v6]:port".
bool parse_authority_form(std::string_view authority, target* out);

// A Host header value: "host", "host:port", "[v6]" or "[v6]:port";
// default_port when it has none.
bool parse_host_header(std::string_view value, uint16_t default_port, target* out);

// Path without the query string, for the access log.
std::string_view path_without_query(std::string_view path);

}  // namespace egressd::proxy
