// The allowlist directives: allow, deny, allow_net, group.
#include <algorithm>
#include <string>

#include "acl/agents.hpp"
#include "acl/ip_address.hpp"
#include "acl/pattern.hpp"
#include "config/directives.hpp"
#include "config/options.hpp"
#include "config/values.hpp"

namespace egressd::config {

namespace {

constexpr uint64_t max_count = 1'000'000'000;

bool is_tchar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool parse_methods(parse_context& ctx, std::string_view v, std::vector<std::string>* out) {
  size_t start = 0;
  while (true) {
    size_t comma = v.find(',', start);
    std::string_view m = v.substr(start, comma == v.npos ? v.npos : comma - start);
    if (m.empty() || !std::all_of(m.begin(), m.end(), is_tchar)) {
      ctx.error("invalid method '" + std::string(m) + "' in methods= (write e.g. methods=GET,POST)");
      return false;
    }
    std::string up(m);
    for (char& c : up)
      if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    if (std::find(out->begin(), out->end(), up) == out->end()) out->push_back(std::move(up));
    if (comma == v.npos) return true;
    start = comma + 1;
  }
}

bool valid_group_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// agent=a,b: names checked here, existence at the end (finish_agents).
bool parse_agent_list(parse_context& ctx, std::string_view v, std::vector<std::string>* out) {
  size_t start = 0;
  while (true) {
    const size_t comma = v.find(',', start);
    const std::string_view n = v.substr(start, comma == v.npos ? v.npos : comma - start);
    if (!acl::valid_agent_name(n)) {
      ctx.error("invalid agent '" + std::string(n) + "' in agent= (letters, digits, _ - .; e.g. agent=build-7,ci)");
      return false;
    }
    if (std::find(out->begin(), out->end(), n) == out->end()) out->emplace_back(n);
    if (comma == v.npos) return true;
    start = comma + 1;
  }
}

bool parse_pattern_arg(parse_context& ctx, std::string_view v) {
  std::string err;
  if (acl::parse_pattern(v, &err)) return true;
  ctx.error("invalid pattern '" + std::string(v) + "': " + err);
  return false;
}

void parse_rule_limits(parse_context& ctx, const std::optional<std::string_view>* opt,
                       acl::rule_limits* lim) {
  // opt: rate, per, burst, conns, bandwidth
  if (opt[0]) {
    ctx.use(feature::rule_rate);
    rate_parts r;
    if (!parse_rate_parts(*opt[0], &r)) {
      ctx.error("invalid rate= '" + std::string(*opt[0]) + "' (write N/s, N/m or N/h, e.g. rate=60/m)");
    } else if (r.count == 0 || r.count > max_count) {
      ctx.error("rate=" + std::string(*opt[0]) + " is out of range (1 to 1000000000 per period)");
    } else {
      lim->rate = acl::rate_spec{r.per_second(), uint32_t(r.count), false};
    }
  }
  if (opt[1]) {
    ctx.use(feature::rule_per_client);
    if (*opt[1] != "client")
      ctx.error("invalid per= '" + std::string(*opt[1]) + "' (the only value is per=client)");
    else if (!opt[0])
      ctx.error("per=client needs rate= on the same line");
    else if (lim->rate)
      lim->rate->per_client = true;
  }
  if (opt[2]) {
    ctx.use(feature::rule_burst);
    uint64_t n = 0;
    if (!parse_u64(*opt[2], &n) || n < 1 || n > max_count)
      ctx.error("invalid burst= '" + std::string(*opt[2]) + "' (a number 1..1000000000)");
    else if (!opt[0])
      ctx.error("burst= needs rate= on the same line");
    else if (lim->rate)
      lim->rate->burst = uint32_t(n);
  }
  if (opt[3]) {
    ctx.use(feature::rule_conns);
    uint64_t n = 0;
    if (!parse_u64(*opt[3], &n) || n < 1 || n > 10'000'000)
      ctx.error("invalid conns= '" + std::string(*opt[3]) + "' (a number 1..10000000)");
    else
      lim->conns = uint32_t(n);
  }
  if (opt[4]) {
    ctx.use(feature::rule_bandwidth);
    std::string_view v = *opt[4];
    uint64_t n = 0;
    if (v.size() < 3 || v.substr(v.size() - 2) != "/s" || !parse_size(v.substr(0, v.size() - 2), &n))
      ctx.error("invalid bandwidth= '" + std::string(v) + "' (write SIZE/s, e.g. bandwidth=10M/s)");
    else if (n == 0)
      ctx.error("bandwidth= must be above 0 (leave it out for no limit)");
    else
      lim->bandwidth_bps = n;
  }
}

void push_rule(parse_context& ctx, acl::rule&& r) {
  r.file = ctx.file();
  r.line = ctx.line();
  ctx.rules.push_back(std::move(r));
  ctx.rule_origins.push_back(ctx.origin());
}

}  // namespace

void directive_allow(parse_context& ctx, const line_tokens& t) {
  std::optional<std::string_view> opt[9];
  if (!t.options().empty())
    take_options(ctx, "allow", t,
                 {"ports", "methods", "group", "rate", "per", "burst", "conns", "bandwidth", "agent"}, opt);
  if (!expect_args(ctx, t, 1, 1, "allow PATTERN [ports=] [methods=] [rate=] [per=client] [burst=] "
                                 "[conns=] [bandwidth=] [group=] [agent=]; one pattern per line"))
    return;
  bool ok = parse_pattern_arg(ctx, t.args()[0]);
  acl::rule r;
  r.action = acl::rule::action_t::allow;
  r.pattern = std::string(t.args()[0]);
  if (opt[0]) {
    std::string_view bad;
    if (!parse_port_list(*opt[0], &r.ports, &bad)) {
      ctx.error("invalid port '" + std::string(bad) + "' in ports= (ports are 1..65535, e.g. ports=443,80)");
      ok = false;
    }
  } else {
    r.ports = {80, 443};
  }
  if (opt[1] && !parse_methods(ctx, *opt[1], &r.methods)) ok = false;
  if (opt[2]) {
    ctx.use(feature::client_groups);
    if (!valid_group_name(*opt[2])) {
      ctx.error("invalid group= '" + std::string(*opt[2]) + "' (letters, digits, _ - .)");
      ok = false;
    } else {
      r.group = std::string(*opt[2]);
    }
  }
  if (opt[3] || opt[4] || opt[5] || opt[6] || opt[7]) parse_rule_limits(ctx, opt + 3, &r.limits);
  if (opt[8] && !parse_agent_list(ctx, *opt[8], &r.agents)) ok = false;
  if (!ok) return;
  if (!r.group.empty()) ctx.group_refs.push_back({r.group, ctx.rules.size(), ctx.here()});
  for (const auto& a : r.agents) ctx.agent_refs.push_back({a, ctx.here()});
  push_rule(ctx, std::move(r));
}

void directive_deny(parse_context& ctx, const line_tokens& t) {
  if (!t.options().empty()) take_options(ctx, "deny", t, {}, nullptr);
  if (!expect_args(ctx, t, 1, 1, "deny PATTERN; one pattern per line")) return;
  if (!parse_pattern_arg(ctx, t.args()[0])) return;
  acl::rule r;
  r.action = acl::rule::action_t::deny;
  r.pattern = std::string(t.args()[0]);
  push_rule(ctx, std::move(r));
}

void directive_allow_net(parse_context& ctx, const line_tokens& t) {
  std::optional<std::string_view> opt[1];
  take_options(ctx, "allow_net", t, {"ports"}, opt);
  if (!expect_args(ctx, t, 1, SIZE_MAX, "allow_net CIDR... [ports=N,...]")) return;
  acl::net_rule n;
  bool ok = true;
  for (std::string_view v : t.args()) {
    if (auto c = acl::parse_cidr(v)) {
      n.nets.push_back(*c);
    } else {
      ctx.error(explain_cidr(v));
      ok = false;
    }
  }
  if (opt[0]) {
    std::string_view bad;
    if (!parse_port_list(*opt[0], &n.ports, &bad)) {
      ctx.error("invalid port '" + std::string(bad) + "' in ports= (ports are 1..65535, e.g. ports=5432)");
      ok = false;
    }
  }
  if (!ok) return;
  n.file = ctx.file();
  n.line = ctx.line();
  ctx.nets.push_back(std::move(n));
}

void directive_group(parse_context& ctx, const line_tokens& t) {
  ctx.use(feature::client_groups);
  take_options(ctx, "group", t, {}, nullptr);
  if (!expect_args(ctx, t, 2, SIZE_MAX, "group NAME CIDR...")) return;
  std::string_view name = t.args()[0];
  if (!valid_group_name(name)) {
    ctx.error("invalid group name '" + std::string(name) + "' (letters, digits, _ - .; at most 64)");
    return;
  }
  if (!ctx.once("group." + std::string(name), "group " + std::string(name))) return;
  group_def g;
  g.group.name = std::string(name);
  g.where = ctx.here();
  for (size_t i = 1; i < t.args().size(); ++i) {
    if (auto c = acl::parse_cidr(t.args()[i]))
      g.group.nets.push_back(*c);
    else
      ctx.error(explain_cidr(t.args()[i]));
  }
  // Kept even when a network was wrong, so group= does not also complain.
  ctx.groups.push_back(std::move(g));
}

}  // namespace egressd::config
