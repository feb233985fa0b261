#pragma once
// Parser for /etc/hosts-format text (`hosts FILE`). Pure function;
// thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace egressd::config {

// Adds every "ADDRESS NAME [ALIAS...]" line of `text` to *table (names
// lower-cased, one trailing dot dropped; an address listed twice for a name
// is kept once, in file order). `#` starts a comment. Malformed lines are
// reported in *errors as FILE:LINE diagnostics, or skipped silently when
// errors is null (the system /etc/hosts, as the C library does).
void parse_hosts(std::string_view text, const std::string& file, hosts_table* table,
                 std::vector<diagnostic>* errors);

}  // namespace egressd::config
