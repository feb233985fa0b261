// libFuzzer target: `egressd learn` on arbitrary log text (split into lines)
// must never crash, and its JSON must serialise (invalid UTF-8 replaced) and
// its config lines must load in egressd.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "tools/allowlist_learner.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  egressd::tools::allowlist_learner learner;
  size_t pos = 0;
  while (pos <= text.size()) {
    auto nl = text.find('\n', pos);
    learner.add_line(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  auto out = learner.result();
  std::string dumped = out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  if (dumped.empty()) std::abort();
  std::string conf = "listen 127.0.0.1:1\n";
  for (const auto& l : out["config"]) conf += l.get<std::string>() + "\n";
  egressd::config::load_options lo;
  lo.file_access = false;
  if (!egressd::config::load_string(conf, "learned.conf", lo).snap) std::abort();
  return 0;
}
