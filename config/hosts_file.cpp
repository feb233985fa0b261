#include "config/hosts_file.hpp"

#include <algorithm>
#include <cstring>

#include "acl/ip_address.hpp"
#include "acl/pattern.hpp"
#include "config/line_tokens.hpp"

namespace egressd::config {

void parse_hosts(std::string_view text, const std::string& file, hosts_table* table,
                 std::vector<diagnostic>* errors) {
  auto report = [&](int line, std::string msg) {
    if (errors) errors->push_back({file, line, std::move(msg)});
  };
  line_tokens t;  // same word splitting as the config
  int line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const char* nl = static_cast<const char*>(std::memchr(text.data() + pos, '\n', text.size() - pos));
    size_t end = nl ? size_t(nl - text.data()) : text.size();
    std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    // As the C library: '#' anywhere starts the comment.
    if (auto hash = l.find('#'); hash != std::string_view::npos) l = l.substr(0, hash);
    t.split(l);
    if (t.empty()) continue;
    std::string_view addr_text = t.directive();
    auto addr = acl::parse_ip_strict(addr_text);
    if (!addr) {
      report(line, "invalid address '" + std::string(addr_text) + "' (a hosts line is ADDRESS NAME...)");
      continue;
    }
    if (t.args().empty() && t.options().empty()) {
      report(line, "address " + std::string(addr_text) + " has no name");
      continue;
    }
    if (!t.options().empty()) {
      report(line, "invalid name '" + std::string(t.options().front().key) + "=" +
                       std::string(t.options().front().value) + "'");
      continue;
    }
    for (std::string_view raw : t.args()) {
      auto name = acl::normalize_host(raw);
      if (!name) {
        report(line, "invalid name '" + std::string(raw) + "'");
        continue;
      }
      auto& v = (*table)[std::move(*name)];
      if (std::find(v.begin(), v.end(), *addr) == v.end()) v.push_back(*addr);
    }
  }
}

}  // namespace egressd::config
