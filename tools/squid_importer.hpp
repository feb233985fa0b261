#pragma once
// `egressd import-squid FILE`: a squid.conf allowlist -> an egressd config.
// Reads the file (and its includes and ACL value files), translates the
// server directives and the http_access rules, lists every squid line it
// did not translate as a comment with the reason, then loads the result
// with egressd's own config parser: a line egressd refuses is turned into a
// comment too (a refused deny line fails the import instead, since leaving
// it out would widen access), so the output always passes `--check`.
// One importer per import, used by one thread; control path only.

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace egressd::tools {

struct import_result {
  std::string text;                         // the egressd config ("" on error)
  std::vector<config::diagnostic> errors;   // non-empty: the import failed
  std::vector<config::diagnostic> warnings; // "FILE:LINE: warning: ..."
  size_t allow_lines = 0;                   // allow / allow_net lines in text
};

struct import_options {
  // false: never touch the file system (fuzzing): include lines, ACL value
  // files and `hosts FILE` checks are refused.
  bool file_access = true;
};

import_result import_squid_file(const std::string& path, const import_options& opts = {});
// `name` is used in diagnostics; relative paths are relative to `dir`.
import_result import_squid_string(std::string_view text, const std::string& name, const std::string& dir = ".",
                                  const import_options& opts = {});

}  // namespace egressd::tools
