// Directive dispatch.
#include "config/directives.hpp"

#include <string>

#include "config/options.hpp"

namespace egressd::config {

namespace {

using handler = void (*)(parse_context&, const line_tokens&);
struct entry {
  std::string_view name;
  handler fn;
};

// `allow` first: it is most of every large config.
constexpr entry table[] = {
    {"allow", directive_allow},
    {"deny", directive_deny},
    {"allow_net", directive_allow_net},
    {"listen", directive_listen},
    {"admin", directive_admin},
    {"dns_listen", directive_dns_listen},
    {"threads", directive_threads},
    {"resolver", directive_resolver},
    {"hosts", directive_hosts},
    {"state", directive_state},
    {"group", directive_group},
    {"agent", directive_agent},
    {"agents", directive_agents},
    {"auth", directive_auth},
    {"forward", directive_forward},
    {"upstream_proxy", directive_upstream_proxy},
    {"mode", directive_mode},
    {"anomaly", directive_anomaly},
    {"access_log", directive_access_log},
    {"timeout", directive_timeout},
    {"limit", directive_limit},
    {"tls_ports", directive_tls_ports},
    {"require_sni", directive_require_sni},
    {"reload", directive_reload},
    {"ech", directive_ech},
};

}  // namespace

std::string_view suggest_directive(std::string_view word) {
  return suggest(word, {"allow", "deny", "allow_net", "listen", "admin", "dns_listen", "threads",
                        "resolver", "hosts", "state", "group", "agent", "agents", "auth", "forward",
                        "upstream_proxy", "mode", "anomaly", "access_log", "timeout", "limit", "tls_ports",
                        "require_sni", "ech", "reload", "include"});
}

bool dispatch_directive(parse_context& ctx, const line_tokens& t) {
  for (const entry& e : table) {
    if (e.name == t.directive()) {
      e.fn(ctx, t);
      return true;
    }
  }
  std::string msg = "unknown directive '" + std::string(t.directive()) + "'";
  if (auto s = suggest_directive(t.directive()); !s.empty())
    msg += " (did you mean " + std::string(s) + "?)";
  else
    msg += " (check the spelling; the README lists every directive)";
  ctx.error(std::move(msg));
  return false;
}

}  // namespace egressd::config
