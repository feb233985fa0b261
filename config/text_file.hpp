#pragma once
// Whole-file reads for the config loader. Blocking; control path only.

#include <string>

namespace egressd::config {

// Reads the whole file into *out. On failure returns false with *err a
// sentence such as "No such file or directory" or "is a directory".
bool read_text_file(const std::string& path, std::string* out, std::string* err);

}  // namespace egressd::config
