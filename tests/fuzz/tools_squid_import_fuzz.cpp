// libFuzzer target: import-squid on arbitrary squid.conf text must never
// crash, never touch the file system (includes and ACL value files are
// refused), and either fail with FILE:LINE errors and no output, or produce a
// config that egressd's own parser loads without a single error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "tools/squid_importer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  egressd::tools::import_options opts;
  opts.file_access = false;
  auto r = egressd::tools::import_squid_string(text, "fuzz.squid.conf", ".", opts);
  if (!r.errors.empty()) {
    if (!r.text.empty()) std::abort();
    for (const auto& e : r.errors)
      if (e.str().empty()) std::abort();
    return 0;
  }
  egressd::config::load_options lo;
  lo.file_access = false;
  auto loaded = egressd::config::load_string(r.text, "out.conf", lo);
  if (!loaded.snap || !loaded.errors.empty()) std::abort();
  size_t allows = loaded.snap->policy->nets().size();
  for (const auto& rule : loaded.snap->policy->rules())
    if (rule.action == egressd::acl::rule::action_t::allow) ++allows;
  if (allows < r.allow_lines) std::abort();  // nets may merge, rules never vanish
  return 0;
}
