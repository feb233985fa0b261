// egressd grants ... (see grants_command.hpp).

#include "tools/grants_command.hpp"

#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace egressd::tools {
namespace {

using json = nlohmann::ordered_json;

std::optional<std::vector<int>> parse_ports(const std::string& s) {
  std::vector<int> out;
  size_t i = 0;
  while (i <= s.size()) {
    const size_t comma = std::min(s.find(',', i), s.size());
    int v = 0;
    const char* b = s.data() + i;
    const char* e = s.data() + comma;
    auto [p, ec] = std::from_chars(b, e, v);
    if (b == e || ec != std::errc() || p != e || v < 1 || v > 65535) return std::nullopt;
    out.push_back(v);
    i = comma + 1;
  }
  return out;
}

std::string str_or(const json& j, const char* key, const char* fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::string scope_of(const json& g) {
  if (auto a = str_or(g, "agent"); !a.empty()) return "agent " + a;
  if (auto gr = str_or(g, "group"); !gr.empty()) return "group " + gr;
  return "everyone";
}

std::string ports_of(const json& g) {
  std::string out;
  if (auto it = g.find("ports"); it != g.end() && it->is_array())
    for (const auto& p : *it) out += (out.empty() ? "" : ",") + p.dump();
  return out;
}

// The server's one-line message, or the body as it came.
std::string message_of(const admin_answer& a) {
  try {
    auto j = json::parse(a.body);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  } catch (const json::exception&) {
  }
  std::string b = a.body;
  while (!b.empty() && (b.back() == '\n' || b.back() == '\r')) b.pop_back();
  return b.empty() ? fmt::format("HTTP {}", a.status) : b;
}

}  // namespace

int grants_command(const grants_options& o, const admin_transport& send, std::FILE* out, std::FILE* err) {
  std::string method = "GET", target = "/v1/grants", body;
  if (o.action == grants_options::action_t::add) {
    json req{{"pattern", o.pattern}};
    if (!o.ports.empty()) {
      auto ports = parse_ports(o.ports);
      if (!ports) {
        fmt::print(err, "egressd: --ports takes port numbers 1..65535 separated by commas, e.g. 443,8443\n");
        return 2;
      }
      req["ports"] = *ports;
    }
    if (!o.agent.empty()) req["agent"] = o.agent;
    if (!o.group.empty()) req["group"] = o.group;
    if (!o.ttl.empty()) req["ttl"] = o.ttl;
    if (!o.note.empty()) req["note"] = o.note;
    method = "POST";
    body = req.dump();
  } else if (o.action == grants_options::action_t::revoke) {
    method = "DELETE";
    target += "/" + o.id;
  }
  const admin_answer a = send(method, target, body, o.token);
  if (a.status == 0) {
    fmt::print(err, "egressd: cannot reach the admin endpoint at {}: {}\n", o.admin, a.error);
    return 1;
  }
  if (a.status / 100 != 2) {
    fmt::print(err, "egressd: {} (HTTP {})\n", message_of(a), a.status);
    return 1;
  }
  if (o.json) {
    fmt::print(out, "{}", a.body);
    if (!a.body.empty() && a.body.back() != '\n') fmt::print(out, "\n");
    return 0;
  }
  if (o.action == grants_options::action_t::revoke) {
    fmt::print(out, "revoked {}\n", o.id);
    return 0;
  }
  json j;
  try {
    j = json::parse(a.body);
  } catch (const json::exception&) {
    fmt::print(err, "egressd: the admin endpoint answered with something that is not JSON\n");
    return 1;
  }
  if (o.action == grants_options::action_t::add) {
    fmt::print(out, "granted {}: {} on ports {} for {} until {}{}\n", str_or(j, "id"), str_or(j, "pattern"),
               ports_of(j), scope_of(j), str_or(j, "expires"),
               j.value("persisted", false) ? "" : " (in memory only: no state file)");
    return 0;
  }
  if (!j.is_array() || j.empty()) {
    fmt::print(out, "no grants in force\n");
    return 0;
  }
  fmt::print(out, "{:<12}  {:<32}  {:<11}  {:<20}  {:<24}  {}\n", "ID", "PATTERN", "PORTS", "FOR", "EXPIRES", "NOTE");
  for (const auto& g : j)
    fmt::print(out, "{:<12}  {:<32}  {:<11}  {:<20}  {:<24}  {}\n", str_or(g, "id"), str_or(g, "pattern"),
               ports_of(g), scope_of(g), str_or(g, "expires"), str_or(g, "note"));
  return 0;
}

}  // namespace egressd::tools
