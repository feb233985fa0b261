#pragma once
// Value grammar helpers shared by the directive handlers (the public ones,
// parse_size/parse_duration/parse_rate/parse_endpoint, are in config.hpp).
// Pure functions; thread-safe; no allocation except parse_port_list's output.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace egressd::config {

// Plain decimal, no sign, no spaces; false on overflow.
bool parse_u64(std::string_view v, uint64_t* out);

// "N/s", "N/m", "N/h": the count and the period in seconds.
struct rate_parts {
  uint64_t count = 0;
  uint64_t period_seconds = 1;
  double per_second() const { return double(count) / double(period_seconds); }
};
bool parse_rate_parts(std::string_view v, rate_parts* out);

// 1..65535.
bool parse_port(std::string_view v, uint16_t* out);

// "443,80": appended to *out without duplicates. On failure *bad is the
// offending element.
bool parse_port_list(std::string_view v, std::vector<uint16_t>* out, std::string_view* bad);

// HOST[:PORT] with any port 0..65535; *has_port tells whether one was
// written. parse_endpoint() is this plus "port 1..65535, required or not".
bool parse_host_port(std::string_view v, endpoint* out, bool* has_port);

// Why acl::parse_cidr refused `v`, as advice for a config error.
std::string explain_cidr(std::string_view v);

}  // namespace egressd::config
