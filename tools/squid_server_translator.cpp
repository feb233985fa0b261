#include "tools/squid_server_translator.hpp"

#include <algorithm>
#include <charconv>

#include "acl/ip_address.hpp"

namespace egressd::tools {

namespace {

bool parse_uint(const std::string& s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

bool any_of(const std::string& d, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return d == n; });
}

// Why a directive has no egressd equivalent.
std::string reason_for(const std::string& d) {
  if (any_of(d, {"cache_dir", "cache_mem", "cache", "refresh_pattern", "maximum_object_size",
                 "minimum_object_size", "maximum_object_size_in_memory", "cache_replacement_policy",
                 "memory_replacement_policy", "cache_swap_low", "cache_swap_high", "coredump_dir",
                 "store_dir_select_algorithm", "offline_mode", "collapsed_forwarding", "range_offset_limit",
                 "quick_abort_min", "quick_abort_max", "quick_abort_pct", "memory_pools"}))
    return "egressd does not cache";
  if (any_of(d, {"cache_log", "cache_store_log", "logfile_rotate", "logfile_daemon", "logformat", "debug_options",
                 "strip_query_terms", "buffered_logs", "log_mime_hdrs", "pid_filename"}))
    return "egressd logs to stderr and to its JSON access log";
  if (any_of(d, {"forwarded_for", "via", "request_header_access", "reply_header_access", "request_header_add",
                 "reply_header_add", "request_header_replace", "httpd_suppress_version_string",
                 "visible_hostname", "unique_hostname", "error_directory", "deny_info", "error_default_language"}))
    return "egressd forwards requests without rewriting headers (Host aside) and writes its own refusals";
  if (any_of(d, {"ssl_bump", "sslcrtd_program", "sslcrtd_children", "sslproxy_cert_error", "sslproxy_options",
                 "tls_outgoing_options", "sslproxy_cafile", "https_port", "ssl_unclean_shutdown",
                 "sslproxy_cert_adapt", "sslproxy_cert_sign", "tls_key_log"}))
    return "egressd never decrypts TLS; it decides by CONNECT host and SNI";
  if (any_of(d, {"auth_param", "authenticate_ttl", "authenticate_ip_ttl", "external_acl_type",
                 "url_rewrite_program", "url_rewrite_children", "store_id_program", "icap_enable",
                 "icap_service", "adaptation_access", "ecap_enable"}))
    return "egressd has no helpers, authentication or content adaptation";
  if (any_of(d, {"icp_port", "icp_access", "htcp_port", "htcp_access", "snmp_port", "snmp_access",
                 "cache_peer_access", "always_direct", "prefer_direct", "nonhierarchical_direct",
                 "hierarchy_stoplist", "icp_query_timeout"}))
    return "egressd speaks neither ICP, HTCP nor SNMP and has at most one parent (upstream_proxy)";
  if (any_of(d, {"http_reply_access", "adapted_http_access", "miss_access", "reply_body_max_size",
                 "request_body_max_size", "delay_pools", "delay_class", "delay_access", "delay_parameters",
                 "client_delay_pools"}))
    return "egressd has no equivalent (its limits are allow ... rate=/conns=/bandwidth=)";
  if (any_of(d, {"workers", "cpu_affinity_map"})) return "egressd runs worker threads in one process (threads auto)";
  if (any_of(d, {"dns_v4_first", "dns_defnames", "dns_retransmit_interval", "ipcache_size", "fqdncache_size",
                 "positive_dns_ttl", "negative_dns_ttl", "append_domain", "check_hostnames"}))
    return "egressd's resolver has no such setting";
  if (any_of(d, {"cache_effective_user", "cache_effective_group", "max_filedescriptors", "tcp_outgoing_address",
                 "client_persistent_connections", "server_persistent_connections", "pinger_enable",
                 "half_closed_clients", "pipeline_prefetch", "client_lifetime", "request_timeout",
                 "persistent_request_timeout", "pconn_timeout", "forward_timeout"}))
    return "no egressd equivalent";
  return "unknown to the translator; no egressd equivalent";
}

// Squid's "N units" -> egressd duration text.
bool squid_duration(const squid_line& l, std::string* out) {
  if (l.words.size() < 2 || l.words.size() > 3) return false;
  uint64_t n = 0;
  if (!parse_uint(l.words[1].text, &n) || n > 1'000'000'000) return false;
  std::string unit = l.words.size() == 3 ? l.words[2].text : "seconds";
  if (any_of(unit, {"msec", "msecs", "millisecond", "milliseconds", "ms"})) *out = std::to_string(n) + "ms";
  else if (any_of(unit, {"second", "seconds", "sec", "secs", "s"})) *out = std::to_string(n) + "s";
  else if (any_of(unit, {"minute", "minutes", "min", "mins"})) *out = std::to_string(n) + "m";
  else if (any_of(unit, {"hour", "hours", "hr", "hrs"})) *out = std::to_string(n) + "h";
  else if (any_of(unit, {"day", "days"})) *out = std::to_string(n * 24) + "h";
  else return false;
  return true;
}

}  // namespace

void squid_server_translator::add_line(const squid_line& l, std::string text, std::string note) {
  lines_.push_back({"# squid: " + l.text + (note.empty() ? "" : " (" + note + ")"), output_line::kind_t::comment, l.text});
  lines_.push_back({std::move(text), output_line::kind_t::other, l.text});
}

void squid_server_translator::skip(const squid_line& l, const std::string& why, bool warn) {
  untranslated_.push_back({"# squid: " + l.text + " (not translated: " + why + ")", output_line::kind_t::comment, l.text});
  if (warn) warnings_.push_back({l.file, l.line, "warning: '" + l.text + "' not translated: " + why});
}

void squid_server_translator::add(const squid_line& l, std::vector<config::diagnostic>* errors) {
  const std::string& d = l.words[0].text;
  if (d == "http_port") return http_port(l, errors);
  if (d == "cache_peer") return cache_peer(l);
  if (d == "access_log") return access_log(l);
  if (d == "connect_timeout") return duration(l, "connect", errors);
  if (d == "read_timeout") return duration(l, "idle", errors);
  if (d == "shutdown_lifetime") return duration(l, "drain", errors);
  if (d == "dns_timeout") return duration(l, "dns", errors);
  if (d == "request_header_max_size") return header_size(l, errors);
  if (d == "dns_nameservers") {
    if (l.words.size() < 2) {
      errors->push_back({l.file, l.line, "dns_nameservers needs at least one address"});
      return;
    }
    for (size_t i = 1; i < l.words.size(); ++i) {
      auto ip = acl::parse_ip_strict(l.words[i].text);
      if (!ip) {
        errors->push_back({l.file, l.line, "dns_nameservers takes IP addresses, not '" + l.words[i].text + "'"});
        return;
      }
      resolvers_.push_back(ip->to_string());
    }
    if (resolver_squid_.empty()) resolver_squid_ = l.text;
    return;
  }
  if (d == "hosts_file") {
    if (l.words.size() != 2) {
      errors->push_back({l.file, l.line, "hosts_file takes one path (or none)"});
      return;
    }
    if (hosts_seen_) return skip(l, "egressd reads one hosts file");
    hosts_seen_ = true;
    return add_line(l, l.words[1].text == "none" ? "hosts off" : "hosts " + l.words[1].text);
  }
  if (d == "never_direct" && parent_seen_)
    return skip(l, "with upstream_proxy egressd sends all allowed traffic through the parent");
  bool access_related = d == "http_reply_access" || d == "adapted_http_access" || d == "miss_access";
  skip(l, reason_for(d), access_related && l.words.size() > 1 && l.words[1].text == "deny");
}

void squid_server_translator::http_port(const squid_line& l, std::vector<config::diagnostic>* errors) {
  if (l.words.size() < 2) {
    errors->push_back({l.file, l.line, "http_port needs [ADDRESS:]PORT"});
    return;
  }
  const std::string& spec = l.words[1].text;
  std::string host = "0.0.0.0", port_text = spec;
  auto colon = spec.rfind(':');
  if (colon != std::string::npos) {
    host = spec.substr(0, colon);
    port_text = spec.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  }
  uint64_t port = 0;
  if (!parse_uint(port_text, &port) || port == 0 || port > 65535) {
    errors->push_back({l.file, l.line, "invalid http_port '" + spec + "' (write [ADDRESS:]PORT)"});
    return;
  }
  std::vector<std::string> ignored;
  for (size_t i = 2; i < l.words.size(); ++i) {
    const std::string& o = l.words[i].text;
    if (o == "intercept" || o == "transparent" || o == "tproxy")
      return skip(l, "interception: use egressd's transparent listeners (listen mode=sni / mode=http) "
                     "with your own redirect rules", true);
    ignored.push_back(o);
  }
  if (host == "localhost") host = "127.0.0.1";
  auto ip = acl::parse_ip_strict(host);
  if (!ip) return skip(l, "egressd listens on IP addresses, not on '" + host + "'", true);
  std::string addr = (ip->is_v4() ? ip->to_string() : "[" + ip->to_string() + "]") + ":" + std::to_string(port);
  if (std::find(listens_.begin(), listens_.end(), addr) != listens_.end())
    return skip(l, "the same address is already translated");
  listens_.push_back(addr);
  std::string note;
  if (!ignored.empty()) {
    for (const auto& o : ignored) {
      if (!note.empty()) note += ' ';
      note += o;
    }
    note = "options ignored: " + note;
    bool bump = std::any_of(ignored.begin(), ignored.end(), [](const std::string& o) {
      return o == "ssl-bump" || o.rfind("tls-", 0) == 0 || o.rfind("cert=", 0) == 0;
    });
    if (bump) {
      note += "; egressd never decrypts TLS";
      warnings_.push_back({l.file, l.line, "warning: '" + l.text + "': TLS options ignored (egressd never decrypts TLS)"});
    }
  }
  add_line(l, "listen " + addr, note);
}

void squid_server_translator::cache_peer(const squid_line& l) {
  if (l.words.size() < 4) return skip(l, "cache_peer needs HOST TYPE HTTP-PORT", true);
  const std::string& host = l.words[1].text;
  if (l.words[2].text != "parent") return skip(l, "egressd has no sibling or multicast peers");
  if (parent_seen_) return skip(l, "egressd has one upstream proxy (the first parent is used)", true);
  uint64_t port = 0;
  if (!parse_uint(l.words[3].text, &port) || port == 0 || port > 65535)
    return skip(l, "invalid HTTP port '" + l.words[3].text + "'", true);
  for (size_t i = 5; i < l.words.size(); ++i) {
    const std::string& o = l.words[i].text;
    if (o == "ssl" || o == "tls" || o.rfind("tls-", 0) == 0 || o.rfind("ssl", 0) == 0)
      return skip(l, "egressd talks to its parent in plain HTTP", true);
    if (o.rfind("login=", 0) == 0)
      return skip(l, "egressd sends no credentials to its parent", true);
  }
  parent_seen_ = true;
  auto ip = acl::parse_ip_strict(host);
  std::string h = ip && !ip->is_v4() ? "[" + ip->to_string() + "]" : host;
  add_line(l, "upstream_proxy http://" + h + ":" + std::to_string(port));
}

void squid_server_translator::access_log(const squid_line& l) {
  if (access_log_seen_) return skip(l, "egressd has one access log (see above)");
  access_log_seen_ = true;
  std::string target = l.words.size() > 1 ? l.words[1].text : "";
  if (target == "none") return add_line(l, "access_log off");
  if (target == "stdio:/dev/stderr" || target == "/dev/stderr")
    return add_line(l, "access_log stderr", "egressd writes one JSON object per line, not squid's format");
  add_line(l, "access_log stdout", "egressd writes one JSON object per line to stdout, not squid's format");
}

void squid_server_translator::duration(const squid_line& l, const char* key, std::vector<config::diagnostic>* errors) {
  std::string v;
  if (!squid_duration(l, &v)) {
    errors->push_back({l.file, l.line, "invalid time '" + l.text + "' (write N seconds|minutes|hours)"});
    return;
  }
  for (auto& [k, old] : timeouts_)
    if (k == key) {
      old = v;  // Squid: the last value wins
      return;
    }
  timeouts_.push_back({key, v});
  if (!timeout_squid_.empty()) timeout_squid_ += "; ";
  timeout_squid_ += l.text;
}

void squid_server_translator::header_size(const squid_line& l, std::vector<config::diagnostic>* errors) {
  uint64_t n = 0;
  std::string unit = l.words.size() == 3 ? l.words[2].text : "KB";
  if (l.words.size() < 2 || l.words.size() > 3 || !parse_uint(l.words[1].text, &n) || n == 0 || n > 1'000'000) {
    errors->push_back({l.file, l.line, "invalid size '" + l.text + "' (write N bytes|KB|MB)"});
    return;
  }
  std::string v;
  if (unit == "bytes" || unit == "byte") v = std::to_string(n);
  else if (unit == "KB") v = std::to_string(n) + "K";
  else if (unit == "MB") v = std::to_string(n) + "M";
  else return skip(l, "unknown size unit '" + unit + "'", true);
  add_line(l, "limit header_bytes=" + v);
}

std::vector<output_line> squid_server_translator::server_lines() const {
  std::vector<output_line> v;
  if (listens_.empty()) {
    v.push_back({"# squid.conf has no http_port: squid's usual port 3128, on every IPv4 address",
                 output_line::kind_t::comment, ""});
    v.push_back({"listen 0.0.0.0:3128", output_line::kind_t::other, ""});
  }
  v.insert(v.end(), lines_.begin(), lines_.end());
  if (!resolvers_.empty()) {
    std::string r = "resolver";
    for (const auto& x : resolvers_) r += " " + x;
    v.push_back({"# squid: " + resolver_squid_, output_line::kind_t::comment, resolver_squid_});
    v.push_back({r, output_line::kind_t::other, resolver_squid_});
  }
  if (!timeouts_.empty()) {
    std::string t = "timeout";
    for (const auto& [k, val] : timeouts_) t += " " + k + "=" + val;
    v.push_back({"# squid: " + timeout_squid_, output_line::kind_t::comment, timeout_squid_});
    v.push_back({t, output_line::kind_t::other, timeout_squid_});
  }
  return v;
}

}  // namespace egressd::tools
