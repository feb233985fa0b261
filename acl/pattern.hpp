#pragma once
// Host-name normalisation and pattern syntax. Pure; thread-safe.

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

// Parses a pattern as written in `allow`/`deny`. On error returns nullopt and
// sets *error to a sentence (e.g. "'*' is only allowed as a leading '*.'",
// "non-ASCII pattern: write it as punycode (xn--...)"). Regex syntax is
// checked by policy::build, not here.
std::optional<pattern> parse_pattern(std::string_view text, std::string* error);

}  // namespace egressd::acl
