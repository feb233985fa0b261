// Directives about where egressd listens and how it reaches the world.
#include <algorithm>
#include <string>

#include "acl/ip_address.hpp"
#include "config/directives.hpp"
#include "config/hosts_file.hpp"
#include "config/options.hpp"
#include "config/text_file.hpp"
#include "config/values.hpp"

namespace egressd::config {

namespace {

// ADDR:PORT of a socket egressd binds: an IP literal, port 0..65535 (0 asks
// the kernel for a free port, which tests use).
bool parse_bind_address(parse_context& ctx, std::string_view v, std::string_view what,
                        endpoint* out) {
  endpoint e;
  bool has_port = false;
  if (!parse_host_port(v, &e, &has_port) || !has_port || !acl::parse_ip_strict(e.host)) {
    ctx.error("invalid address '" + std::string(v) + "' for " + std::string(what) +
              " (write IP:PORT, e.g. 127.0.0.1:3128 or [::1]:3128)");
    return false;
  }
  *out = std::move(e);
  return true;
}

}  // namespace

void directive_listen(parse_context& ctx, const line_tokens& t) {
  std::optional<std::string_view> opt[2];
  take_options(ctx, "listen", t, {"mode", "port"}, opt);
  bool ok = expect_args(ctx, t, 1, 1, "listen ADDR:PORT [mode=proxy|sni|http] [port=N]");
  listen_spec l;
  if (ok) ok = parse_bind_address(ctx, t.args()[0], "listen", &l.addr);
  if (opt[0]) {
    if (*opt[0] == "proxy") {
      l.mode = listen_mode::proxy;
    } else if (*opt[0] == "sni") {
      l.mode = listen_mode::sni;
      ctx.use(feature::listen_sni);
    } else if (*opt[0] == "http") {
      l.mode = listen_mode::http;
      ctx.use(feature::listen_http);
    } else {
      ctx.error("invalid mode= '" + std::string(*opt[0]) + "' for listen (use proxy, sni or http)");
      ok = false;
    }
  }
  if (opt[1]) {
    if (l.mode == listen_mode::proxy && (!opt[0] || *opt[0] == "proxy")) {
      ctx.error("port= applies only to transparent listeners (mode=sni or mode=http)");
      ok = false;
    } else if (!parse_port(*opt[1], &l.upstream_port)) {
      ctx.error("invalid port= '" + std::string(*opt[1]) + "' (a port is 1..65535)");
      ok = false;
    }
  }
  if (!ok) return;
  ctx.claim_address(l.addr, false, "listen");
  l.file = ctx.file();
  l.line = ctx.line();
  ctx.snap->listens.push_back(std::move(l));
}

void directive_admin(parse_context& ctx, const line_tokens& t) {
  ctx.use(feature::admin);
  std::optional<std::string_view> opt[2];
  take_options(ctx, "admin", t, {"allow", "token_file"}, opt);
  if (!ctx.once("admin", "admin")) return;
  if (!expect_args(ctx, t, 1, 1, "admin ADDR:PORT [allow=CIDR,...] [token_file=PATH]")) return;
  endpoint e;
  if (!parse_bind_address(ctx, t.args()[0], "admin", &e)) return;
  bool ok = true;
  std::vector<acl::cidr> allow;
  if (opt[0]) {
    std::string_view list = *opt[0];
    for (;;) {
      const auto comma = list.find(',');
      const std::string_view v = list.substr(0, comma);
      if (auto c = acl::parse_cidr(v)) {
        allow.push_back(*c);
      } else {
        ctx.error(explain_cidr(v) + " in admin allow=");
        ok = false;
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  if (opt[1] && opt[1]->empty()) {
    ctx.error("admin token_file= needs a path (a file holding the bearer token for /v1/)");
    ok = false;
  }
  if (!ok) return;
  if (opt[0]) ctx.use(feature::admin_allow);
  if (opt[1]) ctx.use(feature::admin_token);
  ctx.claim_address(e, false, "admin");
  ctx.snap->admin = std::move(e);
  ctx.snap->admin_allow = std::move(allow);
  if (opt[1]) ctx.snap->admin_token_file = ctx.resolve_path(*opt[1]);
}

// state FILE | redis://HOST:PORT[/DB] [password_file=PATH] | off
void directive_state(parse_context& ctx, const line_tokens& t) {
  std::optional<std::string_view> opt[1];
  take_options(ctx, "state", t, {"password_file"}, opt);
  if (!ctx.once("state", "state")) return;
  if (!expect_args(ctx, t, 1, 1, "state FILE | redis://HOST:PORT[/DB] [password_file=PATH] | off")) return;
  const std::string_view v = t.args()[0];
  state_spec s;
  s.file = ctx.file();
  s.line = ctx.line();
  constexpr std::string_view scheme = "redis://";
  if (v.starts_with(scheme)) {
    std::string_view rest = v.substr(scheme.size());
    const auto slash = rest.find('/');
    endpoint ep;
    uint64_t db = 0;
    if (slash != std::string_view::npos && (!parse_u64(rest.substr(slash + 1), &db) || db > 15)) {
      ctx.error("invalid database in '" + std::string(v) + "' (write redis://HOST:PORT/DB with DB 0..15)");
      return;
    }
    if (!parse_endpoint(rest.substr(0, slash), &ep, true)) {
      ctx.error("invalid Redis address '" + std::string(v) + "' (write redis://HOST:PORT[/DB], e.g. redis://10.0.0.5:6379/0)");
      return;
    }
    ctx.use(feature::state_redis);
    s.kind = state_spec::kind_t::redis;
    s.host = ep.host;
    s.port = ep.port;
    s.db = static_cast<unsigned>(db);
    if (opt[0]) s.password_file = ctx.resolve_path(*opt[0]);
  } else {
    if (opt[0]) {
      ctx.error("password_file= applies only to state redis://...");
      return;
    }
    if (v == "off") {
      s.kind = state_spec::kind_t::off;
    } else if (v.find("://") != std::string_view::npos) {
      ctx.error("unsupported state '" + std::string(v) + "' (use a FILE, redis://HOST:PORT[/DB] or off)");
      return;
    } else {
      ctx.use(feature::state_file);
      s.kind = state_spec::kind_t::file;
      s.path = ctx.resolve_path(v);
    }
  }
  ctx.snap->state = std::move(s);
}

void directive_dns_listen(parse_context& ctx, const line_tokens& t) {
  ctx.use(feature::dns_listen);
  std::optional<std::string_view> opt[1];
  take_options(ctx, "dns_listen", t, {"answer"}, opt);
  if (!expect_args(ctx, t, 1, 1, "dns_listen ADDR:PORT [answer=IP]")) return;
  dns_listen_spec d;
  if (!parse_bind_address(ctx, t.args()[0], "dns_listen", &d.addr)) return;
  if (opt[0]) {
    auto ip = acl::parse_ip_strict(*opt[0]);
    if (!ip || !ip->is_v4()) {
      ctx.error("invalid answer= '" + std::string(*opt[0]) +
                "' (the A record needs an IPv4 address of egressd, e.g. answer=10.0.0.2)");
      return;
    }
    d.answer = *ip;
  } else {
    auto ip = acl::parse_ip_strict(d.addr.host);
    if (!ip->is_v4() || ip->v4_host_order() == 0) {
      ctx.error("dns_listen on " + d.addr.to_string() +
                " needs answer=IPv4 (the address agents should connect to)");
      return;
    }
    d.answer = *ip;
  }
  ctx.claim_address(d.addr, true, "dns_listen");
  d.file = ctx.file();
  d.line = ctx.line();
  ctx.snap->dns_listens.push_back(std::move(d));
}

void directive_forward(parse_context& ctx, const line_tokens& t) {
  ctx.use(feature::forward);
  take_options(ctx, "forward", t, {}, nullptr);
  if (!expect_args(ctx, t, 2, 2, "forward LISTEN_ADDR:PORT TARGET_HOST:PORT")) return;
  forward_spec f;
  bool ok = parse_bind_address(ctx, t.args()[0], "forward", &f.listen);
  if (!parse_endpoint(t.args()[1], &f.target, true)) {
    ctx.error("invalid forward target '" + std::string(t.args()[1]) +
              "' (write HOST:PORT, e.g. host.docker.internal:5432)");
    ok = false;
  }
  if (!ok) return;
  ctx.claim_address(f.listen, false, "forward");
  f.file = ctx.file();
  f.line = ctx.line();
  ctx.snap->forwards.push_back(std::move(f));
}

void directive_upstream_proxy(parse_context& ctx, const line_tokens& t) {
  ctx.use(feature::upstream_proxy);
  take_options(ctx, "upstream_proxy", t, {}, nullptr);
  if (!ctx.once("upstream_proxy", "upstream_proxy")) return;
  if (!expect_args(ctx, t, 1, 1, "upstream_proxy http://HOST:PORT")) return;
  std::string_view v = t.args()[0];
  constexpr std::string_view scheme = "http://";
  if (v.substr(0, scheme.size()) != scheme) {
    ctx.error("upstream_proxy must start with http:// (egressd speaks plain HTTP to its parent)");
    return;
  }
  v.remove_prefix(scheme.size());
  if (!v.empty() && v.back() == '/') v.remove_suffix(1);
  if (v.find('@') != std::string_view::npos) {
    ctx.error("upstream_proxy credentials (user@) are not supported");
    return;
  }
  endpoint e;
  if (!parse_endpoint(v, &e, true)) {
    ctx.error("invalid upstream_proxy '" + std::string(t.args()[0]) +
              "' (write http://HOST:PORT, e.g. http://squid.internal:3128)");
    return;
  }
  ctx.snap->upstream_proxy = std::move(e);
}

void directive_threads(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "threads", t, {}, nullptr);
  if (!ctx.once("threads", "threads")) return;
  if (!expect_args(ctx, t, 1, 1, "threads N|auto")) return;
  std::string_view v = t.args()[0];
  if (v == "auto") {
    ctx.snap->threads = 0;
    return;
  }
  uint64_t n = 0;
  if (!parse_u64(v, &n) || n < 1 || n > 1024) {
    ctx.error("invalid threads '" + std::string(v) + "' (use auto or a number 1..1024)");
    return;
  }
  ctx.snap->threads = unsigned(n);
}

void directive_resolver(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "resolver", t, {}, nullptr);
  if (!expect_args(ctx, t, 1, SIZE_MAX, "resolver ADDR[:PORT]...")) return;
  for (std::string_view v : t.args()) {
    endpoint e;
    bool has_port = false;
    if (!parse_host_port(v, &e, &has_port) || (has_port && e.port == 0) ||
        !acl::parse_ip_strict(e.host)) {
      ctx.error("invalid resolver '" + std::string(v) +
                "' (write an IP address with an optional port, e.g. 10.0.0.2 or [fd00::53]:5353)");
      continue;
    }
    if (!has_port) e.port = 53;
    auto& rs = ctx.snap->resolvers;
    if (std::none_of(rs.begin(), rs.end(),
                     [&](const endpoint& r) { return r.host == e.host && r.port == e.port; }))
      rs.push_back(std::move(e));
  }
}

void directive_hosts(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "hosts", t, {}, nullptr);
  if (!ctx.once("hosts", "hosts")) return;
  ctx.hosts_given = true;
  if (!expect_args(ctx, t, 1, 1, "hosts FILE|off")) return;
  std::string_view v = t.args()[0];
  if (v == "off") {
    ctx.snap->hosts_file.clear();
    return;
  }
  std::string path = ctx.resolve_path(v);
  ctx.snap->hosts_file = path;
  if (!ctx.opts().file_access) {
    ctx.error("hosts FILE is not allowed here (file access is disabled)");
    return;
  }
  std::string text, err;
  if (!read_text_file(path, &text, &err)) {
    ctx.error("cannot read hosts file '" + path + "': " + err + " (fix the path, or write hosts off)");
    return;
  }
  std::vector<diagnostic> errors;
  parse_hosts(text, path, &ctx.snap->hosts, &errors);
  for (auto& d : errors) ctx.add(std::move(d));
}

void directive_access_log(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "access_log", t, {}, nullptr);
  if (!ctx.once("access_log", "access_log")) return;
  if (!expect_args(ctx, t, 1, 1, "access_log stdout|stderr|off|PATH")) return;
  std::string_view v = t.args()[0];
  if (v == "stdout" || v == "stderr" || v == "off")
    ctx.snap->access_log = std::string(v);
  else
    ctx.snap->access_log = ctx.resolve_path(v);
}

}  // namespace egressd::config
