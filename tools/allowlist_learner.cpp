#include "tools/allowlist_learner.hpp"

#include "acl/ip_address.hpp"
#include "acl/pattern.hpp"

namespace egressd::tools {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr size_t max_clients_per_host = 4096;
constexpr size_t max_invalid_hosts = 100;
constexpr size_t max_invalid_length = 100;

std::string str_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// "1.2.3.4:5" -> "1.2.3.4"; "[::1]:5" -> "::1".
std::string client_address(const std::string& c) {
  if (!c.empty() && c[0] == '[') {
    auto close = c.find(']');
    return close == std::string::npos ? c : c.substr(1, close - 1);
  }
  auto colon = c.rfind(':');
  return colon == std::string::npos ? c : c.substr(0, colon);
}

// A method as egressd's methods= takes it (letters, digits, - and _).
bool valid_method(const std::string& m) {
  if (m.empty() || m.size() > 32) return false;
  for (char c : m)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

std::string name_key(const std::string& name) {
  std::string key;
  size_t end = name.size();
  while (true) {
    size_t dot = name.rfind('.', end == 0 ? 0 : end - 1);
    size_t start = dot == std::string::npos ? 0 : dot + 1;
    if (!key.empty()) key += '\x01';
    key.append(name, start, end - start);
    if (dot == std::string::npos || end == 0) break;
    end = dot;
  }
  return key;
}

std::string address_key(const acl::ip_address& a) {
  std::string k(1, a.is_v4() ? '4' : '6');
  k.append(reinterpret_cast<const char*>(a.bytes.data()), a.is_v4() ? 4 : 16);
  return k;
}

std::string join_ports(const std::set<uint16_t>& ports) {
  std::string s;
  for (uint16_t p : ports) {
    if (!s.empty()) s += ',';
    s += std::to_string(p);
  }
  return s;
}

}  // namespace

void allowlist_learner::count(host_stats& h, const json& j, const std::string& ts, const std::string& decision) {
  ++h.requests;
  if (decision == "allow") ++h.allowed;
  else if (decision == "deny") ++h.denied;
  else ++h.reported;
  auto port = j.find("port");
  if (port != j.end() && port->is_number_unsigned() && port->get<uint64_t>() > 0 && port->get<uint64_t>() <= 65535)
    h.ports.insert(uint16_t(port->get<uint64_t>()));
  std::string method = str_field(j, "method");
  std::string kind = str_field(j, "kind");
  if (valid_method(method)) h.methods.insert(method);
  if ((kind == "http" || kind == "host") && method != "CONNECT") h.plain_http = true;
  std::string group = str_field(j, "group");
  if (!group.empty() && group.size() <= 64) h.groups.insert(group);
  std::string client = client_address(str_field(j, "client"));
  if (!client.empty() && h.clients.size() < max_clients_per_host) h.clients.insert(client);
  std::string reason = str_field(j, "reason");
  if (!reason.empty() && reason.size() <= 64) ++h.reasons[reason];
  if (!ts.empty()) {
    if (h.first_seen.empty() || ts < h.first_seen) h.first_seen = ts;
    if (h.last_seen.empty() || ts > h.last_seen) h.last_seen = ts;
  }
}

void allowlist_learner::add_line(std::string_view line) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  ++lines_;
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    ++skipped_;
    return;
  }
  if (j.contains("alert")) {
    ++alerts_;
    return;
  }
  std::string kind = str_field(j, "kind");
  if (kind == "forward") {
    ++forwards_;  // plain TCP forwards are configured, not allowlisted
    return;
  }
  std::string decision = str_field(j, "decision");
  std::string host = str_field(j, "host");
  if (host.empty()) host = str_field(j, "sni");
  if (host.empty() || (decision != "allow" && decision != "deny" && decision != "report")) {
    ++skipped_;
    return;
  }
  ++requests_;
  std::string ts = str_field(j, "ts");
  if (!ts.empty()) {
    if (first_seen_.empty() || ts < first_seen_) first_seen_ = ts;
    if (last_seen_.empty() || ts > last_seen_) last_seen_ = ts;
  }
  if (host.front() == '[' || acl::looks_like_ip_literal(host)) {
    if (auto ip = acl::parse_ip_literal(host)) {
      acl::ip_address a = ip->unmapped();
      std::string key = address_key(a);
      address_of_[key] = a.to_string();
      count(networks_[key], j, ts, decision);
      return;
    }
  } else if (auto name = acl::normalize_host(host)) {
    std::string err;
    if (acl::parse_pattern(*name, &err)) {
      std::string key = name_key(*name);
      name_of_[key] = *name;
      count(names_[key], j, ts, decision);
      return;
    }
  }
  std::string shown = host.substr(0, max_invalid_length);
  auto it = invalid_.find(shown);
  if (it != invalid_.end()) ++it->second;
  else if (invalid_.size() < max_invalid_hosts) invalid_.emplace(shown, 1);
}

ordered_json allowlist_learner::host_json(const std::string& key, const host_stats& h, bool network) const {
  ordered_json o;
  if (network) o["address"] = address_of_.at(key);
  else o["pattern"] = name_of_.at(key);
  o["ports"] = h.ports;
  o["methods"] = h.methods;
  o["requests"] = h.requests;
  o["allowed"] = h.allowed;
  o["denied"] = h.denied;
  o["reported"] = h.reported;
  o["reasons"] = h.reasons;
  o["clients"] = h.clients.size();
  o["groups"] = h.groups;
  o["first_seen"] = h.first_seen;
  o["last_seen"] = h.last_seen;
  return o;
}

std::vector<std::string> allowlist_learner::config_lines(const std::string& name, const host_stats& h) {
  std::string line = "allow " + name;
  if (!h.ports.empty()) line += " ports=" + join_ports(h.ports);
  if (h.plain_http) {
    std::string m;
    for (const auto& x : h.methods)
      if (x != "CONNECT") {
        if (!m.empty()) m += ',';
        m += x;
      }
    if (!m.empty()) line += " methods=" + m;
  }
  auto only = [&](const char* reason) {
    auto it = h.reasons.find(reason);
    return it != h.reasons.end() && it->second == h.requests;
  };
  if (only("denied_rule")) return {"# " + line + "   # every request hit a deny rule of the current config"};
  std::vector<std::string> v{line};
  if (h.reasons.count("non_public_address"))
    v.push_back("# " + name + " resolved to a non-public address: it also needs an allow_net line");
  return v;
}

ordered_json allowlist_learner::result() const {
  ordered_json out;
  ordered_json rules = ordered_json::array(), nets = ordered_json::array(), bad = ordered_json::array();
  std::vector<std::string> config;
  config.push_back("# egressd learn: " + std::to_string(names_.size()) + " names, " +
                   std::to_string(networks_.size()) + " addresses from " + std::to_string(requests_) +
                   " requests" + (first_seen_.empty() ? "" : " (" + first_seen_ + " to " + last_seen_ + ")"));
  for (const auto& [key, h] : names_) {
    rules.push_back(host_json(key, h, false));
    for (auto& l : config_lines(name_of_.at(key), h)) config.push_back(std::move(l));
  }
  for (const auto& [key, h] : networks_) {
    nets.push_back(host_json(key, h, true));
    const std::string& a = address_of_.at(key);
    bool v4 = key[0] == '4';
    std::string l = "# allow_net " + a + (v4 ? "/32" : "/128");
    if (!h.ports.empty()) l += " ports=" + join_ports(h.ports);
    config.push_back(l + "   # IP literal: egressd never matches it by name; enable only if intended");
  }
  for (const auto& [host, n] : invalid_) bad.push_back({{"host", host}, {"requests", n}});
  out["rules"] = std::move(rules);
  out["networks"] = std::move(nets);
  out["invalid_hosts"] = std::move(bad);
  out["config"] = config;
  out["files"] = files_;
  out["lines"] = lines_;
  out["requests"] = requests_;
  out["alert_lines"] = alerts_;
  out["forward_lines"] = forwards_;
  out["skipped_lines"] = skipped_;
  out["first_seen"] = first_seen_;
  out["last_seen"] = last_seen_;
  return out;
}

}  // namespace egressd::tools
