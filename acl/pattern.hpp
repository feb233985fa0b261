#pragma once
// Host-name normalisation and pattern syntax. Pure; thread-safe.

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::acl {

enum class pattern_kind : uint8_t {
  exact,     // api.example.com
  suffix,    // .example.com  : example.com and every name below it
  wildcard,  // *.example.com : every name below example.com, not itself
  regex,     // ~RE2          : full match against the lower-case name
};

struct pattern {
  pattern_kind kind = pattern_kind::exact;
  // exact/suffix/wildcard: the normalised domain without the leading '.'
  // or '*.'; regex: the expression text after '~'.
  std::string text;
};

// Lower-cases, strips one trailing dot, and checks the name is a plausible
// ASCII DNS name (letters, digits, '-', '_', dots; labels 1..63; total <= 253).
// Non-ASCII, empty labels, '*' or other characters -> nullopt.
std::optional<std::string> normalize_host(std::string_view host);

// Allocation-free variant for the data path: same rules, the normalised name
// is written into buf and the result views it (valid while buf lives).
using host_buffer = std::array<char, 256>;
std::optional<std::string_view> normalize_host(std::string_view host, host_buffer& buf);

// Parses a pattern as written in `allow`/`deny`. On error returns nullopt and
// sets *error to a sentence (e.g. "'*' is only allowed as a leading '*.'",
// "non-ASCII pattern: write it as punycode (xn--...)"). Regex syntax is
// checked by policy::build, not here.
std::optional<pattern> parse_pattern(std::string_view text, std::string* error);

}  // namespace egressd::acl
