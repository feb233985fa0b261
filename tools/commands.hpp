#pragma once
// Entry points of the `egressd learn`, `import-squid` and `hash-token` commands
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

// `egressd hash-token`: reads a token on `in` (one trailing newline, LF or
// CRLF, stripped), prints `sha256:HEX` on `out`. 0; 2 with a sentence on
// `err` when the token is empty or spans lines. Never echoes the token.
int hash_token_command(std::FILE* in = stdin, std::FILE* out = stdout, std::FILE* err = stderr);

}  // namespace egressd::tools
