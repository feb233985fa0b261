// libFuzzer target: load_string on arbitrary text must never crash, never
// touch the file system (includes and hosts files are refused), and either
// return a snapshot with no errors or errors with no snapshot.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  egressd::config::load_options opts;
  opts.file_access = false;
  // Even-length inputs also exercise the parsers of unsupported features.
  opts.allow_unsupported = size % 2 == 0;
  auto r = egressd::config::load_string(text, "fuzz.conf", opts);
  if (r.snap) {
    if (!r.errors.empty() || !r.snap->policy) std::abort();
    std::string s = egressd::config::summary(*r.snap);
    if (s.empty()) std::abort();
  } else {
    if (r.errors.empty()) std::abort();
    for (const auto& e : r.errors)
      if (e.str().empty()) std::abort();
  }
  return 0;
}
