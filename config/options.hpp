#pragma once
// Option checking for one directive line, and "did you mean" suggestions.
// Pure functions over the caller's data; thread-safe.

#include <initializer_list>
#include <optional>
#include <string_view>

#include "config/line_tokens.hpp"
#include "config/parse_context.hpp"

namespace egressd::config {

// The closest candidate (case-insensitive equal, a prefix either way, or
// within edit distance 2), or empty when none is close.
std::string_view suggest(std::string_view word, std::initializer_list<std::string_view> candidates);

// Checks the line's options against `keys`: reports each unknown option
// ("unknown option 'port=' for allow (did you mean ports=?)"), each repeated
// one, and each empty value. values[i] receives the value of keys[i].
// Returns false when anything was reported.
bool take_options(parse_context& ctx, std::string_view directive, const line_tokens& t,
                  std::initializer_list<std::string_view> keys, std::optional<std::string_view>* values);


// Checks the number of positional arguments; on a mismatch reports
// "<usage>" as the expected form ("listen needs ADDR:PORT (usage: ...)").
bool expect_args(parse_context& ctx, const line_tokens& t, size_t min, size_t max,
                 std::string_view usage);

}  // namespace egressd::config
