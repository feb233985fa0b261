#pragma once
// Entry points of the `egressd learn` and `egressd import-squid` commands
// (SPEC "Command line"): file I/O, output and exit status around
// allowlist_learner and the squid importer. Blocking; main thread only.

#include <cstdio>
#include <string>
#include <vector>

namespace egressd::tools {

// Prints the learned allowlist as JSON on `out`. "-" reads stdin.
// 0, or 1 with "egressd: cannot read FILE: reason" on `err`.
int learn_command(const std::vector<std::string>& logs, std::FILE* out = stdout, std::FILE* err = stderr);

// Prints the egressd config on `out`, warnings on `err`. 0; 1 on an error
// (FILE:LINE: message, nothing printed on `out`), or when the translation
// allows nothing at all (the config is printed, then the reason on `err`).
int import_squid_command(const std::string& path, std::FILE* out = stdout, std::FILE* err = stderr);

}  // namespace egressd::tools
