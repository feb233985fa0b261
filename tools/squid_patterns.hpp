#pragma once
// Squid destination values -> egressd patterns. Pure functions; thread-safe.
//
// dstdomain: `.example.com` means example.com and every name below it, as
// egressd's `.example.com`; `example.com` is that name only. An IP literal is
// reported as such (egressd matches addresses with allow_net, never with a
// pattern).
// dstdom_regex: Squid searches the host name with a POSIX extended regex;
// egressd full-matches the lower-case name with RE2. The expression is kept
// and anchored so the match is the same (`^a\.b$` -> `~a\.b`, `\.b$` ->
// `~.*\.b`), `-i` becomes `(?i)`, and anything RE2 refuses (GNU `\<` `\>`,
// back-references) is reported as not convertible.

#include <optional>
#include <string>
#include <string_view>

#include "acl/ip_address.hpp"

namespace egressd::tools {

struct converted_pattern {
  std::string pattern;               // egressd pattern, empty when not convertible
  std::optional<acl::ip_address> ip;  // set when the value is an IP literal
  std::string why;                   // not convertible: the reason
  std::string note;                  // convertible but worth a remark
};

converted_pattern convert_dstdomain(std::string_view value);
converted_pattern convert_dstdom_regex(std::string_view regex, bool icase);

}  // namespace egressd::tools
