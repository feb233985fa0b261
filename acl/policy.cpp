// The compiled allowlist (see policy.hpp).
// Built once by policy::build (single thread); afterwards every member is
// const and read concurrently by all workers without locks (RE2 objects are
// thread-safe for matching).

#include "acl/policy.hpp"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <functional>
#include <tuple>
#include <unordered_map>

#include "acl/pattern.hpp"

namespace egressd::acl {
namespace {

// Heterogeneous hashing so a lookup by string_view allocates nothing.
struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Heads of singly linked lists (through impl::next) of the rules written
// for one domain, in config order; -1 = empty.
struct domain_node {
  int32_t exact = -1;     // api.example.com
  int32_t suffix = -1;    // .api.example.com
  int32_t wildcard = -1;  // *.api.example.com
};

// Lower is more specific: exact, then longer suffix/wildcard domain, then
// regex, then the earlier line.
struct rank {
  int tier = 3;  // 0 exact, 1 suffix/wildcard, 2 regex, 3 none
  int neg_len = 0;
  int index = -1;
  bool operator<(const rank& o) const {
    return std::tie(tier, neg_len, index) < std::tie(o.tier, o.neg_len, o.index);
  }
};

// RE2's default budget is 8 MiB; a Set of many expressions needs more DFA
// state before it gives up (and we fall back to the individual RE2s).
constexpr int64_t regex_max_mem = int64_t{64} << 20;

RE2::Options regex_options() {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(regex_max_mem);
  return o;
}

bool contains_port(const std::vector<uint16_t>& ports, uint16_t port) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

bool in_any(const std::vector<cidr>& nets, const ip_address& a) {
  for (const auto& n : nets)
    if (n.contains(a)) return true;
  return false;
}

}  // namespace

struct policy::impl {
  std::vector<rule> rules;
  std::vector<net_rule> nets;
  std::vector<client_group> groups;

  std::vector<int32_t> rule_group;  // index into groups, -1 = every client
  std::vector<int32_t> next;        // next rule in the same domain_node list
  std::unordered_map<std::string, domain_node, string_hash, std::equal_to<>> domains;

  std::unique_ptr<RE2::Set> regex_set;          // all regex rules, anchored both ends
  std::vector<int32_t> regex_rule;              // set index -> rule index
  std::vector<std::unique_ptr<RE2>> regex_one;  // same order; used only if the Set fails

  // Per-lookup scratch state for decide().
  struct search {
    const impl& p;
    uint16_t port;
    std::string_view method;
    const client_id& client;
    rank best_deny, best_allow;
    bool name_fit = false;  // an allow rule matched the name (and group)
    bool port_fit = false;  // ... and the port

    void consider(int32_t r, rank rk) {
      const rule& ru = p.rules[static_cast<size_t>(r)];
      rk.index = r;
      if (ru.action == rule::action_t::deny) {
        // Deny rules carry no options: the name alone decides.
        if (rk < best_deny) best_deny = rk;
        return;
      }
      const int32_t g = p.rule_group[static_cast<size_t>(r)];
      if (g >= 0 && !in_group(g)) return;
      if (!ru.agents.empty() &&
          std::find(ru.agents.begin(), ru.agents.end(), client.agent) == ru.agents.end())
        return;
      name_fit = true;
      if (!contains_port(ru.ports, port)) return;
      port_fit = true;
      if (!method.empty() && !ru.methods.empty() &&
          std::find(ru.methods.begin(), ru.methods.end(), method) == ru.methods.end())
        return;
      if (rk < best_allow) best_allow = rk;
    }
    bool in_group(int32_t g) const {
      for (int32_t m : client.agent_group_index)
        if (m == g) return true;
      return in_any(p.groups[static_cast<size_t>(g)].nets, client.addr);
    }
    void walk(int32_t head, rank rk) {
      for (int32_t r = head; r >= 0; r = p.next[static_cast<size_t>(r)]) consider(r, rk);
    }
  };

  void match_regexes(std::string_view name, search& s) const;
};

void policy::impl::match_regexes(std::string_view name, search& s) const {
  if (!regex_set) return;
  const rank rk{2, 0, -1};
  RE2::Set::ErrorInfo info{};
  // First pass without an output vector allocates nothing; misses end here.
  if (!regex_set->Match(name, nullptr, &info)) {
    if (info.kind == RE2::Set::kNoError) return;
  } else {
    thread_local std::vector<int> hits;
    if (regex_set->Match(name, &hits, &info)) {
      for (int h : hits) s.consider(regex_rule[static_cast<size_t>(h)], rk);
      return;
    }
  }
  // The Set's DFA ran out of memory (or similar): fail closed by matching
  // every expression on its own so no deny is ever missed.
  for (size_t i = 0; i < regex_one.size(); ++i)
    if (RE2::FullMatch(name, *regex_one[i])) s.consider(regex_rule[i], rk);
}

policy::policy() : impl_(std::make_unique<impl>()) {}
policy::~policy() = default;
policy::policy(policy&&) noexcept = default;
policy& policy::operator=(policy&&) noexcept = default;

std::unique_ptr<policy> policy::build(std::vector<rule> rules, std::vector<net_rule> nets,
                                      std::vector<client_group> groups,
                                      std::vector<build_error>* errors) {
  auto out = std::make_unique<policy>();
  impl& p = *out->impl_;
  p.rules = std::move(rules);
  p.nets = std::move(nets);
  p.groups = std::move(groups);
  const size_t n = p.rules.size();
  p.rule_group.assign(n, -1);
  p.next.assign(n, -1);

  std::vector<build_error> errs;
  auto fail = [&](size_t i, std::string msg) {
    errs.push_back({static_cast<int>(i), std::move(msg)});
  };

  std::unordered_map<std::string_view, int32_t> group_index;
  for (size_t g = 0; g < p.groups.size(); ++g)
    group_index.emplace(p.groups[g].name, static_cast<int32_t>(g));

  std::vector<std::optional<pattern>> parsed(n);
  for (size_t i = 0; i < n; ++i) {
    rule& r = p.rules[i];
    std::string err;
    parsed[i] = parse_pattern(r.pattern, &err);
    if (!parsed[i]) {
      fail(i, err);
      continue;
    }
    if (r.action == rule::action_t::allow && r.ports.empty()) r.ports = {80, 443};
    if (!r.group.empty()) {
      auto it = group_index.find(r.group);
      if (it == group_index.end())
        fail(i, "unknown group '" + r.group + "'");
      else
        p.rule_group[i] = it->second;
    }
  }

  // Regexes: each compiled alone (for its error message, and as the
  // fallback), then all together in one anchored Set.
  const RE2::Options opts = regex_options();
  p.regex_set = std::make_unique<RE2::Set>(opts, RE2::ANCHOR_BOTH);
  for (size_t i = 0; i < n; ++i) {
    if (!parsed[i] || parsed[i]->kind != pattern_kind::regex) continue;
    auto re = std::make_unique<RE2>(parsed[i]->text, opts);
    if (!re->ok()) {
      fail(i, "invalid regular expression: " + re->error());
      continue;
    }
    std::string err;
    if (p.regex_set->Add(parsed[i]->text, &err) < 0) {
      fail(i, "invalid regular expression: " + err);
      continue;
    }
    p.regex_rule.push_back(static_cast<int32_t>(i));
    p.regex_one.push_back(std::move(re));
  }
  if (p.regex_rule.empty()) {
    p.regex_set.reset();
  } else if (!p.regex_set->Compile()) {
    fail(static_cast<size_t>(p.regex_rule.front()),
         "regular expressions too large to compile together");
  }

  // Reverse order with head insertion leaves every list in config order.
  for (size_t j = n; j-- > 0;) {
    if (!parsed[j] || parsed[j]->kind == pattern_kind::regex) continue;
    domain_node& node = p.domains[parsed[j]->text];
    int32_t* head = parsed[j]->kind == pattern_kind::exact    ? &node.exact
                    : parsed[j]->kind == pattern_kind::suffix ? &node.suffix
                                                              : &node.wildcard;
    p.next[j] = *head;
    *head = static_cast<int32_t>(j);
  }

  if (!errs.empty()) {
    // A partial policy could drop a deny: never hand one out.
    if (errors) errors->insert(errors->end(), errs.begin(), errs.end());
    return nullptr;
  }
  return out;
}

decision policy::decide(std::string_view host, uint16_t port, std::string_view method,
                        const client_id& client) const {
  const impl& p = *impl_;
  host_buffer buf;
  const auto normalised = normalize_host(host, buf);
  if (!normalised) return decision{};
  const std::string_view name = *normalised;

  impl::search s{p, port, method, client, {}, {}};
  auto probe = [&](std::string_view domain) -> const domain_node* {
    auto it = p.domains.find(domain);
    return it == p.domains.end() ? nullptr : &it->second;
  };
  // The name itself: exact and suffix rules.
  if (const domain_node* node = probe(name)) {
    s.walk(node->exact, rank{0, 0, -1});
    s.walk(node->suffix, rank{1, -static_cast<int>(name.size()), -1});
  }
  // Every parent domain: suffix and wildcard rules.
  for (size_t dot = name.find('.'); dot != std::string_view::npos;
       dot = name.find('.', dot + 1)) {
    const std::string_view parent = name.substr(dot + 1);
    if (const domain_node* node = probe(parent)) {
      const rank rk{1, -static_cast<int>(parent.size()), -1};
      s.walk(node->suffix, rk);
      s.walk(node->wildcard, rk);
    }
  }
  p.match_regexes(name, s);

  decision d;
  if (s.best_deny.index >= 0) {
    d.why = reason::denied_rule;
    d.rule_index = s.best_deny.index;
  } else if (s.best_allow.index >= 0) {
    d.allowed = true;
    d.why = reason::none;
    d.rule_index = s.best_allow.index;
  } else {
    d.why = s.port_fit ? reason::method : s.name_fit ? reason::port : reason::not_allowed;
    return d;
  }
  d.matched = &p.rules[static_cast<size_t>(d.rule_index)];
  return d;
}

bool policy::covered_by_allow_net(const ip_address& a, uint16_t port) const {
  for (const auto& n : impl_->nets)
    if ((n.ports.empty() || contains_port(n.ports, port)) && in_any(n.nets, a)) return true;
  return false;
}

bool policy::address_allowed(const ip_address& a, uint16_t port) const {
  return covered_by_allow_net(a, port) || is_public(classify(a));
}

const std::vector<rule>& policy::rules() const { return impl_->rules; }
const std::vector<net_rule>& policy::nets() const { return impl_->nets; }
const std::vector<client_group>& policy::groups() const { return impl_->groups; }

const char* to_string(reason r) {
  switch (r) {
    case reason::none: return "none";
    case reason::not_allowed: return "not_allowed";
    case reason::denied_rule: return "denied_rule";
    case reason::port: return "port";
    case reason::method: return "method";
    case reason::non_public_address: return "non_public_address";
    case reason::ip_literal: return "ip_literal";
    case reason::self: return "self";
    case reason::anomaly_block: return "anomaly_block";
    case reason::rate_limited: return "rate_limited";
    case reason::conns_limited: return "conns_limited";
    case reason::bad_request: return "bad_request";
    case reason::header_too_large: return "header_too_large";
    case reason::uri_too_long: return "uri_too_long";
    case reason::dns_failure: return "dns_failure";
    case reason::dns_timeout: return "dns_timeout";
    case reason::upstream_unreachable: return "upstream_unreachable";
    case reason::upstream_reset: return "upstream_reset";
    case reason::upstream_timeout: return "upstream_timeout";
    case reason::sni_mismatch: return "sni_mismatch";
    case reason::no_sni: return "no_sni";
    case reason::not_tls: return "not_tls";
    case reason::client_closed: return "client_closed";
    case reason::idle_timeout: return "idle_timeout";
    case reason::shutdown: return "shutdown";
    case reason::auth_required: return "auth_required";
    case reason::auth_failed: return "auth_failed";
    case reason::auth_throttled: return "auth_throttled";
    case reason::bad_sni: return "bad_sni";
    case reason::ech: return "ech";
    case reason::overloaded: return "overloaded";
  }
  return "unknown";
}

}  // namespace egressd::acl
