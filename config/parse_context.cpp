#include "config/parse_context.hpp"

#include <algorithm>

#include "acl/ip_address.hpp"

namespace egressd::config {

const std::string parse_context::empty_;

std::string location::str() const { return file + ":" + std::to_string(line); }

parse_context::parse_context(const load_options& opts)
    : opts_(opts), file_(&empty_), dir_(&empty_) {}

std::string parse_context::resolve_path(std::string_view p) const {
  if (p.empty() || p.front() == '/' || dir_->empty()) return std::string(p);
  std::string out = *dir_;
  if (out.back() != '/') out += '/';
  out += p;
  return out;
}

void parse_context::error(std::string msg) {
  diags_.push_back({seq_, diagnostic{*file_, line_, std::move(msg)}});
}

void parse_context::error_at(const location& where, std::string msg) {
  diags_.push_back({where.seq, diagnostic{where.file, where.line, std::move(msg)}});
}

void parse_context::file_error(const std::string& file, std::string msg) {
  diags_.push_back({seq_, diagnostic{file, 0, std::move(msg)}});
}

void parse_context::add(diagnostic d) { diags_.push_back({seq_, std::move(d)}); }

void parse_context::use(feature f) {
  if (supported(f) || opts_.allow_unsupported) return;
  error(std::string(describe(f)) + " is not supported yet by this build");
}

bool parse_context::once(std::string_view key, std::string_view what) {
  auto [it, inserted] = once_.try_emplace(std::string(key), here());
  if (inserted) return true;
  error(std::string(what) + " given twice (first at " + it->second.str() + ")");
  return false;
}

static bool is_wildcard(const acl::ip_address& a) {
  return a.bytes == std::array<uint8_t, 16>{};
}

// Whether two listening sockets on the same port would collide. On Linux a
// [::] socket is dual-stack, so it covers every address.
static bool overlaps(const endpoint& a, const endpoint& b) {
  if (a.port != b.port || a.port == 0) return false;  // port 0: the kernel picks
  if (a.host == b.host) return true;
  auto x = acl::parse_ip_strict(a.host);
  auto y = acl::parse_ip_strict(b.host);
  if (!x || !y) return false;
  if (is_wildcard(*x) && (!x->is_v4() || y->is_v4())) return true;
  if (is_wildcard(*y) && (!y->is_v4() || x->is_v4())) return true;
  return false;
}

void parse_context::claim_address(const endpoint& e, bool udp, std::string_view what) {
  for (const auto& c : claimed_) {
    if (c.udp != udp || !overlaps(c.addr, e)) continue;
    error(std::string(what) + " " + e.to_string() + " overlaps " + c.what + " " +
          c.addr.to_string() + " at " + c.where.str() + " (use another port or address)");
    return;
  }
  claimed_.push_back({e, udp, std::string(what), here()});
}

std::vector<diagnostic> parse_context::take_diagnostics() {
  std::stable_sort(diags_.begin(), diags_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<diagnostic> out;
  out.reserve(diags_.size());
  for (auto& d : diags_) out.push_back(std::move(d.second));
  diags_.clear();
  return out;
}

}  // namespace egressd::config
