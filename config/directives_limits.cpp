// Directives for timeouts, limits, TLS checks, mode and anomaly thresholds.
#include <charconv>
#include <string>

#include "config/directives.hpp"
#include "config/options.hpp"
#include "config/values.hpp"

namespace egressd::config {

namespace {

constexpr milliseconds max_duration{24LL * 3600 * 1000};

// Parses DURATION into *out; `label` is how it was written ("timeout
// connect="), min..24h inclusive.
void set_duration(parse_context& ctx, const std::string& label, std::string_view v,
                  milliseconds min, milliseconds* out) {
  milliseconds d{};
  if (!parse_duration(v, &d)) {
    ctx.error("invalid duration '" + std::string(v) + "' for " + label +
              " (write e.g. 500ms, 10s, 5m, 1h)");
    return;
  }
  if (d < min || d > max_duration) {
    std::string lo = min.count() == 0 ? "0" : min.count() % 1000 ? std::to_string(min.count()) + "ms"
                                                                  : std::to_string(min.count() / 1000) + "s";
    ctx.error(label + std::string(v) + " is out of range (" + lo + " to 24h)");
    return;
  }
  *out = d;
}

void set_count(parse_context& ctx, std::string_view key, std::string_view v, uint64_t min,
               uint64_t max, uint64_t* out) {
  uint64_t n = 0;
  if (!parse_u64(v, &n) || n < min || n > max) {
    ctx.error("invalid " + std::string(key) + "= '" + std::string(v) + "' (a number " +
              std::to_string(min) + ".." + std::to_string(max) + ")");
    return;
  }
  *out = n;
}

void set_size(parse_context& ctx, std::string_view key, std::string_view v, uint64_t min,
              uint64_t max, const char* range, uint64_t* out) {
  uint64_t n = 0;
  if (!parse_size(v, &n)) {
    ctx.error("invalid size '" + std::string(v) + "' for " + std::string(key) +
              "= (write e.g. 100, 64K, 1M, 2G)");
    return;
  }
  if (n < min || n > max) {
    ctx.error(std::string(key) + "=" + std::string(v) + " is out of range (" + range + ")");
    return;
  }
  *out = n;
}

// Settings given as key=value on any number of lines, each key once.
bool once_key(parse_context& ctx, std::string_view directive, std::string_view key) {
  std::string id = std::string(directive) + "." + std::string(key);
  return ctx.once(id, std::string(directive) + " " + std::string(key) + "=");
}

bool on_off(parse_context& ctx, std::string_view directive, std::string_view v, bool* out) {
  if (v == "on") *out = true;
  else if (v == "off") *out = false;
  else {
    ctx.error(std::string(directive) + " takes on or off, not '" + std::string(v) + "'");
    return false;
  }
  return true;
}

}  // namespace

void directive_timeout(parse_context& ctx, const line_tokens& t) {
  constexpr std::string_view keys[] = {"connect", "idle", "header", "drain", "dns"};
  std::optional<std::string_view> opt[5];
  take_options(ctx, "timeout", t, {keys[0], keys[1], keys[2], keys[3], keys[4]}, opt);
  expect_args(ctx, t, 0, 0, "timeout connect=10s idle=300s header=30s drain=30s dns=5s");
  if (t.options().empty() && t.args().empty())
    ctx.error("timeout needs at least one KEY=DURATION (e.g. timeout connect=10s)");
  auto& to = ctx.snap->timeout;
  milliseconds* slot[] = {&to.connect, &to.idle, &to.header, &to.drain, &to.dns};
  for (size_t i = 0; i < 5; ++i) {
    if (!opt[i] || !once_key(ctx, "timeout", keys[i])) continue;
    // drain=0 means "exit at once"; every other timeout must be positive.
    set_duration(ctx, "timeout " + std::string(keys[i]) + "=", *opt[i], milliseconds(i == 3 ? 0 : 1),
                 slot[i]);
  }
}

void directive_limit(parse_context& ctx, const line_tokens& t) {
  std::optional<std::string_view> opt[3];
  take_options(ctx, "limit", t, {"max_conns", "header_bytes", "max_clients"}, opt);
  expect_args(ctx, t, 0, 0, "limit max_conns=10000 header_bytes=64K max_clients=4096");
  if (t.options().empty() && t.args().empty())
    ctx.error("limit needs at least one KEY=VALUE (e.g. limit max_conns=10000)");
  auto& l = ctx.snap->limit;
  if (opt[0] && once_key(ctx, "limit", "max_conns"))
    set_count(ctx, "max_conns", *opt[0], 1, 10'000'000, &l.max_conns);
  if (opt[1] && once_key(ctx, "limit", "header_bytes"))
    set_size(ctx, "header_bytes", *opt[1], 1024, 1024 * 1024, "1K to 1M", &l.header_bytes);
  if (opt[2] && once_key(ctx, "limit", "max_clients"))
    set_count(ctx, "max_clients", *opt[2], 1, 10'000'000, &l.max_clients);
}

void directive_tls_ports(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "tls_ports", t, {}, nullptr);
  if (!ctx.once("tls_ports", "tls_ports")) return;
  if (!expect_args(ctx, t, 1, SIZE_MAX, "tls_ports 443,8443")) return;
  std::vector<uint16_t> ports;
  for (std::string_view v : t.args()) {
    std::string_view bad;
    if (!parse_port_list(v, &ports, &bad)) {
      ctx.error("invalid port '" + std::string(bad) + "' in tls_ports (ports are 1..65535, comma-separated)");
      return;
    }
  }
  ctx.snap->tls_ports = std::move(ports);
}

void directive_require_sni(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "require_sni", t, {}, nullptr);
  if (!ctx.once("require_sni", "require_sni")) return;
  if (!expect_args(ctx, t, 1, 1, "require_sni on|off")) return;
  on_off(ctx, "require_sni", t.args()[0], &ctx.snap->require_sni);
}

// reload auto|signal: whether egressd watches its config files itself.
void directive_reload(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "reload", t, {}, nullptr);
  if (!ctx.once("reload", "reload")) return;
  if (!expect_args(ctx, t, 1, 1, "reload auto|signal")) return;
  std::string_view v = t.args()[0];
  if (v == "auto" || v == "signal")
    ctx.snap->reload_auto = v == "auto";
  else
    ctx.error("invalid reload '" + std::string(v) + "' (use auto: follow the files, or signal: only SIGHUP)");
}

void directive_ech(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "ech", t, {}, nullptr);
  if (!ctx.once("ech", "ech")) return;
  if (!expect_args(ctx, t, 1, 1, "ech deny|allow")) return;
  const std::string_view v = t.args()[0];
  if (v == "deny") {
    ctx.snap->ech_allow = false;
  } else if (v == "allow") {
    ctx.snap->ech_allow = true;
  } else {
    ctx.error("ech takes deny or allow, not '" + std::string(v) + "'");
  }
}

void directive_mode(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "mode", t, {}, nullptr);
  if (!ctx.once("mode", "mode")) return;
  if (!expect_args(ctx, t, 1, 1, "mode enforce|report")) return;
  std::string_view v = t.args()[0];
  if (v == "enforce") {
    ctx.snap->report_mode = false;
  } else if (v == "report") {
    ctx.use(feature::report_mode);
    ctx.snap->report_mode = true;
  } else {
    ctx.error("invalid mode '" + std::string(v) + "' (use enforce or report)");
  }
}

void directive_anomaly(parse_context& ctx, const line_tokens& t) {
  ctx.use(feature::anomaly);
  constexpr std::string_view keys[] = {"window",   "unique_domains", "bytes_out",
                                       "total_bytes_out", "requests", "error_rate",
                                       "min_requests", "action"};
  std::optional<std::string_view> opt[8];
  take_options(ctx, "anomaly", t,
               {keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6], keys[7]}, opt);
  expect_args(ctx, t, 0, 0, "anomaly KEY=VALUE... (e.g. anomaly unique_domains=20 action=block:5m)");
  if (t.options().empty() && t.args().empty())
    ctx.error("anomaly needs at least one KEY=VALUE (e.g. anomaly window=60s)");
  auto& a = ctx.snap->anomaly;
  for (size_t i = 0; i < 8; ++i)
    if (opt[i] && !once_key(ctx, "anomaly", keys[i])) opt[i].reset();

  if (opt[0]) set_duration(ctx, "anomaly window=", *opt[0], milliseconds(1000), &a.window);
  if (opt[1]) set_count(ctx, "unique_domains", *opt[1], 1, 1'000'000, &a.unique_domains);
  constexpr uint64_t tera = 1ull << 40;
  if (opt[2]) set_size(ctx, "bytes_out", *opt[2], 1, tera, "1 to 1024G", &a.bytes_out);
  if (opt[3]) set_size(ctx, "total_bytes_out", *opt[3], 1, tera, "1 to 1024G", &a.total_bytes_out);
  if (opt[4]) {
    rate_parts r;
    if (!parse_rate_parts(*opt[4], &r) || r.count == 0 || r.count > 1'000'000'000)
      ctx.error("invalid requests= '" + std::string(*opt[4]) + "' (write N/s, N/m or N/h, e.g. 120/m)");
    else
      a.requests_per_second = r.per_second();
  }
  if (opt[5]) {
    std::string_view v = *opt[5];
    double p = -1;
    bool ok = v.size() >= 2 && v.back() == '%';
    if (ok) {
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size() - 1, p);
      ok = ec == std::errc() && end == v.data() + v.size() - 1 && p > 0 && p <= 100;
    }
    if (!ok)
      ctx.error("invalid error_rate= '" + std::string(v) + "' (a percentage above 0 up to 100%, e.g. 30%)");
    else
      a.error_rate = p / 100.0;
  }
  if (opt[6]) set_count(ctx, "min_requests", *opt[6], 0, 1'000'000, &a.min_requests);
  if (opt[7]) {
    std::string_view v = *opt[7];
    constexpr std::string_view block = "block:";
    if (v == "log") {
      a.action = anomaly_action::log;
      a.block_for = milliseconds(0);
    } else if (v.substr(0, block.size()) == block) {
      milliseconds d{-1};
      set_duration(ctx, "anomaly action=block:", v.substr(block.size()), milliseconds(1000), &d);
      if (d.count() >= 0) {
        a.action = anomaly_action::block;
        a.block_for = d;
      }
    } else {
      ctx.error("invalid action= '" + std::string(v) + "' (use log or block:DURATION, e.g. block:5m)");
    }
  }
}

}  // namespace egressd::config
