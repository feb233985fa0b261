// The compiled grant set (see grant_view.hpp). Built on the control thread;
// afterwards const and read by every worker (RE2 matching is thread-safe).

#include "state/grant_view.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <functional>
#include <string>
#include <tuple>
#include <unordered_map>

#include "acl/pattern.hpp"

namespace egressd::state {
namespace {

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct domain_entry {
  std::vector<uint32_t> exact, suffix, wildcard;  // grant indexes, oldest first
};

struct rank {
  int tier = 3;  // 0 exact, 1 suffix/wildcard, 2 regex
  int neg_len = 0;
  int64_t index = -1;
  bool operator<(const rank& o) const { return std::tie(tier, neg_len, index) < std::tie(o.tier, o.neg_len, o.index); }
};

bool in_scope(const grant& g, const acl::client_id& who, const std::vector<acl::client_group>& groups) {
  if (!g.agent.empty()) return !who.agent.empty() && who.agent == g.agent;
  if (g.group.empty()) return true;
  if (who.agent_groups)
    for (const auto& n : *who.agent_groups)
      if (n == g.group) return true;
  for (const auto& cg : groups) {
    if (cg.name != g.group) continue;
    for (const auto& net : cg.nets)
      if (net.contains(who.addr)) return true;
  }
  return false;
}

}  // namespace

struct grant_view::impl {
  std::unordered_map<std::string, domain_entry, string_hash, std::equal_to<>> domains;
  std::vector<std::pair<std::unique_ptr<RE2>, uint32_t>> regexes;
};

grant_view::~grant_view() = default;

std::shared_ptr<const grant_view> grant_view::build(std::vector<grant> grants) {
  std::stable_sort(grants.begin(), grants.end(),
                   [](const grant& a, const grant& b) { return a.created < b.created; });
  std::shared_ptr<grant_view> v(new grant_view());
  v->impl_ = std::make_unique<impl>();
  v->grants_ = std::move(grants);
  RE2::Options o;
  o.set_log_errors(false);
  for (uint32_t i = 0; i < v->grants_.size(); ++i) {
    auto p = acl::parse_pattern(v->grants_[i].pattern, nullptr);
    if (!p) continue;
    if (p->kind == acl::pattern_kind::regex) {
      auto re = std::make_unique<RE2>(p->text, o);
      if (re->ok()) v->impl_->regexes.emplace_back(std::move(re), i);
      continue;
    }
    domain_entry& e = v->impl_->domains[p->text];
    (p->kind == acl::pattern_kind::exact ? e.exact : p->kind == acl::pattern_kind::suffix ? e.suffix : e.wildcard)
        .push_back(i);
  }
  return v;
}

const grant* grant_view::match(std::string_view name, uint16_t port, const acl::client_id& who,
                               const std::vector<acl::client_group>& address_groups, clock::time_point now) const {
  if (grants_.empty()) return nullptr;
  rank best;
  auto consider = [&](const std::vector<uint32_t>& list, rank rk) {
    for (uint32_t i : list) {
      rk.index = i;
      if (!(rk < best)) return;  // lists are oldest first: nothing later beats best
      const grant& g = grants_[i];
      if (g.expires <= now) continue;
      if (!std::binary_search(g.ports.begin(), g.ports.end(), port)) continue;
      if (!in_scope(g, who, address_groups)) continue;
      best = rk;
      return;
    }
  };
  auto probe = [&](std::string_view d) -> const domain_entry* {
    auto it = impl_->domains.find(d);
    return it == impl_->domains.end() ? nullptr : &it->second;
  };
  if (const domain_entry* e = probe(name)) {
    consider(e->exact, rank{0, 0, -1});
    consider(e->suffix, rank{1, -static_cast<int>(name.size()), -1});
  }
  for (size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
    const std::string_view parent = name.substr(dot + 1);
    if (const domain_entry* e = probe(parent)) {
      const rank rk{1, -static_cast<int>(parent.size()), -1};
      consider(e->suffix, rk);
      consider(e->wildcard, rk);
    }
  }
  if (best.tier > 2) {
    for (const auto& [re, i] : impl_->regexes) {
      rank rk{2, 0, i};
      if (!(rk < best)) break;
      const grant& g = grants_[i];
      if (g.expires <= now || !std::binary_search(g.ports.begin(), g.ports.end(), port) ||
          !in_scope(g, who, address_groups))
        continue;
      if (RE2::FullMatch(name, *re)) {
        best = rk;
        break;
      }
    }
  }
  return best.index >= 0 ? &grants_[static_cast<size_t>(best.index)] : nullptr;
}

}  // namespace egressd::state
