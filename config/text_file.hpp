#pragma once
// Whole-file reads for the config loader, the state file and the admin
// token. Blocking; control path only.

#include <cstddef>
#include <limits>
#include <string>

namespace egressd::config {

// Reads the whole file into *out. On failure returns false with *err a
// sentence such as "No such file or directory", "is a directory" or "is
// larger than N bytes" (past max_bytes), and *error_number the errno
// (EISDIR, EFBIG for those two) when it is given.
bool read_text_file(const std::string& path, std::string* out, std::string* err,
                    size_t max_bytes = std::numeric_limits<size_t>::max(), int* error_number = nullptr);

}  // namespace egressd::config
