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
  take_options(ctx, "admin", t, {}, nullptr);
  if (!ctx.once("admin", "admin")) return;
  if (!expect_args(ctx, t, 1, 1, "admin ADDR:PORT")) return;
  endpoint e;
  if (!parse_bind_address(ctx, t.args()[0], "admin", &e)) return;
  ctx.claim_address(e, false, "admin");
  ctx.snap->admin = std::move(e);
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
