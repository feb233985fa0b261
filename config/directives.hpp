#pragma once
// One handler per directive of SPEC "Configuration" (except `include`,
// which the loader handles because it recurses). Each reads the line's
// tokens, reports every problem it finds on the line, and stores what is
// valid into the context. Called by one loader thread.

#include "config/line_tokens.hpp"
#include "config/parse_context.hpp"

namespace egressd::config {

// Runs the handler for t.directive(); reports an unknown directive (with a
// suggestion) and returns false.
bool dispatch_directive(parse_context& ctx, const line_tokens& t);

// Every directive name, `include` included (for suggestions).
std::string_view suggest_directive(std::string_view word);

// directives_server.cpp
void directive_listen(parse_context& ctx, const line_tokens& t);
void directive_admin(parse_context& ctx, const line_tokens& t);
void directive_dns_listen(parse_context& ctx, const line_tokens& t);
void directive_forward(parse_context& ctx, const line_tokens& t);
void directive_upstream_proxy(parse_context& ctx, const line_tokens& t);
void directive_threads(parse_context& ctx, const line_tokens& t);
void directive_resolver(parse_context& ctx, const line_tokens& t);
void directive_hosts(parse_context& ctx, const line_tokens& t);
void directive_state(parse_context& ctx, const line_tokens& t);
void directive_access_log(parse_context& ctx, const line_tokens& t);

// directives_limits.cpp
void directive_timeout(parse_context& ctx, const line_tokens& t);
void directive_limit(parse_context& ctx, const line_tokens& t);
void directive_tls_ports(parse_context& ctx, const line_tokens& t);
void directive_require_sni(parse_context& ctx, const line_tokens& t);
void directive_reload(parse_context& ctx, const line_tokens& t);
void directive_ech(parse_context& ctx, const line_tokens& t);
void directive_mode(parse_context& ctx, const line_tokens& t);
void directive_anomaly(parse_context& ctx, const line_tokens& t);

// directives_policy.cpp
void directive_allow(parse_context& ctx, const line_tokens& t);
void directive_deny(parse_context& ctx, const line_tokens& t);
void directive_allow_net(parse_context& ctx, const line_tokens& t);
void directive_group(parse_context& ctx, const line_tokens& t);

// directives_agents.cpp
void directive_agent(parse_context& ctx, const line_tokens& t);
void directive_agents(parse_context& ctx, const line_tokens& t);
void directive_auth(parse_context& ctx, const line_tokens& t);
// The body of an agents FILE (`path` names it in diagnostics).
void parse_agents_text(parse_context& ctx, std::string_view text, const std::string& path);

}  // namespace egressd::config
