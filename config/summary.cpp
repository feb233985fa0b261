// `egressd --check` output.
#include <string>
#include <thread>

#include "acl/pattern.hpp"
#include "config/config.hpp"

namespace egressd::config {

namespace {

std::string fmt_duration(milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms >= 600'000) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string fmt_size(uint64_t n) {
  if (n && n % (1ull << 30) == 0) return std::to_string(n >> 30) + "G";
  if (n && n % (1ull << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n && n % (1ull << 10) == 0) return std::to_string(n >> 10) + "K";
  return std::to_string(n);
}

std::string fmt_ports(const std::vector<uint16_t>& ports) {
  std::string out;
  for (auto p : ports) {
    if (!out.empty()) out += ',';
    out += std::to_string(p);
  }
  return out;
}

struct kind_counts {
  size_t n[4] = {0, 0, 0, 0};
  size_t total() const { return n[0] + n[1] + n[2] + n[3]; }
  std::string str() const {
    return std::to_string(total()) + " (" + std::to_string(n[0]) + " exact, " + std::to_string(n[1]) +
           " suffix, " + std::to_string(n[2]) + " wildcard, " + std::to_string(n[3]) + " regex)";
  }
};

}  // namespace

std::string summary(const snapshot& s) {
  std::string o;
  auto line = [&](const std::string& k, const std::string& v) { o += k + ": " + v + "\n"; };

  std::string files;
  for (const auto& f : s.files) files += (files.empty() ? "" : ", ") + f;
  line("files", files.empty() ? "(none)" : files);
  for (const auto& l : s.listens) {
    std::string v = l.addr.to_string() + " mode=" + to_string(l.mode);
    if (l.upstream_port) v += " port=" + std::to_string(l.upstream_port);
    line("listen", v);
  }
  for (const auto& f : s.forwards) line("forward", f.listen.to_string() + " -> " + f.target.to_string());
  for (const auto& d : s.dns_listens)
    line("dns_listen", d.addr.to_string() + " answer=" + d.answer.to_string());
  std::string admin = s.admin ? s.admin->to_string() : "off";
  if (s.admin && !s.admin_allow.empty()) {
    // The container entrypoint opens the admin port to exactly these.
    admin += " allow=";
    for (size_t i = 0; i < s.admin_allow.size(); ++i) {
      if (i) admin += ',';
      admin += s.admin_allow[i].to_string();
    }
  }
  line("admin", admin);
  switch (s.state.kind) {
    case state_spec::kind_t::off: line("state", "off"); break;
    case state_spec::kind_t::file: line("state", s.state.path); break;
    case state_spec::kind_t::redis:
      line("state", "redis://" + s.state.host + ":" + std::to_string(s.state.port) + "/" + std::to_string(s.state.db));
      break;
  }
  line("threads", s.threads ? std::to_string(s.threads)
                            : "auto (" + std::to_string(std::thread::hardware_concurrency()) + ")");
  std::string res;
  for (const auto& r : s.resolvers) res += (res.empty() ? "" : ", ") + r.to_string();
  line("resolvers", res.empty() ? "from /etc/resolv.conf" : res);
  line("hosts", s.hosts_file.empty() ? "off"
                                     : s.hosts_file + " (" + std::to_string(s.hosts.size()) + " names)");
  if (s.upstream_proxy) line("upstream_proxy", "http://" + s.upstream_proxy->to_string());
  line("mode", s.report_mode ? "report (denials are logged, not enforced)" : "enforce");
  line("access_log", s.access_log);

  kind_counts allow, deny;
  size_t nets = 0, net_lines = 0;
  if (s.policy) {
    for (const auto& r : s.policy->rules()) {
      std::string err;
      auto p = acl::parse_pattern(r.pattern, &err);
      auto k = p ? size_t(p->kind) : 0;
      (r.action == acl::rule::action_t::allow ? allow : deny).n[k]++;
    }
    net_lines = s.policy->nets().size();
    for (const auto& n : s.policy->nets()) nets += n.nets.size();
  }
  line("allow rules", allow.str());
  line("deny rules", deny.str());
  line("allow_net", std::to_string(net_lines) + " lines, " + std::to_string(nets) + " networks");
  if (!s.groups.empty()) {
    std::string g;
    for (const auto& grp : s.groups)
      g += (g.empty() ? "" : ", ") + grp.name + " (" + std::to_string(grp.nets.size()) + " networks)";
    line("groups", g);
  }
  {
    std::string a = acl::to_string(s.auth);
    bool transparent = !s.dns_listens.empty();
    for (const auto& l : s.listens) transparent = transparent || l.mode != listen_mode::proxy;
    // Say it where an operator looks: no credentials reach those listeners.
    if (s.auth != acl::auth_mode::off && transparent)
      a += " (mode=sni/http listeners and dns_listen carry no credentials: address and group decide there)";
    line("auth", a);
  }
  if (s.agents && !s.agents->empty()) {
    std::string a;
    for (const auto& ag : s.agents->agents()) {
      a += (a.empty() ? "" : ", ") + ag.name;
      if (!ag.groups.empty()) {
        a += " (";
        for (size_t i = 0; i < ag.groups.size(); ++i) a += (i ? "," : "") + ag.groups[i];
        a += ")";
      }
    }
    line("agents", std::to_string(s.agents->agents().size()) + ": " + a);
  }
  const auto& t = s.timeout;
  line("timeouts", "connect=" + fmt_duration(t.connect) + " idle=" + fmt_duration(t.idle) +
                       " header=" + fmt_duration(t.header) + " drain=" + fmt_duration(t.drain) +
                       " dns=" + fmt_duration(t.dns));
  line("limits", "max_conns=" + std::to_string(s.limit.max_conns) + " header_bytes=" +
                     fmt_size(s.limit.header_bytes) + " max_clients=" + std::to_string(s.limit.max_clients));
  line("reload", s.reload_auto ? "auto (the files are watched)" : "signal (SIGHUP only)");
  line("tls_ports", fmt_ports(s.tls_ports) + " (require_sni " + (s.require_sni ? "on" : "off") +
                        ", ech " + (s.ech_allow ? "allow" : "deny") + ")");
  const auto& a = s.anomaly;
  line("anomaly", "window=" + fmt_duration(a.window) + " unique_domains=" + std::to_string(a.unique_domains) +
                      " bytes_out=" + fmt_size(a.bytes_out) + " total_bytes_out=" +
                      fmt_size(a.total_bytes_out) + " requests=" +
                      std::to_string(int64_t(a.requests_per_second * 60 + 0.5)) + "/m error_rate=" +
                      std::to_string(int(a.error_rate * 100 + 0.5)) + "% min_requests=" +
                      std::to_string(a.min_requests) + " action=" +
                      (a.action == anomaly_action::log ? std::string("log")
                                                       : "block:" + fmt_duration(a.block_for)));
  return o;
}

}  // namespace egressd::config
