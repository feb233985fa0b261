// The /v1/ API (see admin_api.hpp). Control path: runs on the admin thread.

#include "proxy/admin_api.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/text_file.hpp"

namespace egressd::proxy {
namespace {

using json = nlohmann::ordered_json;
using state::clock;

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }
std::string_view query_of(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoding ('+' stays '+': RFC 3339 offsets are written raw by curl).
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int h = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
    const int l = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (h < 0 || l < 0) return std::nullopt;
    out += static_cast<char>(h * 16 + l);
    i += 2;
  }
  return out;
}

bool ieq_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

api_response json_answer(int status, const json& j) {
  api_response r;
  r.status = status;
  // Hosts in the denial feed are what clients sent: never throw on bad UTF-8.
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

api_response method_not_allowed(std::string_view allow) {
  api_response r = admin_api::error(405, fmt::format("method not allowed here (allowed: {})", allow));
  r.allow = allow;
  return r;
}

}  // namespace

bool read_admin_token(const std::string& path, std::string* token, std::string* error) {
  std::string text, why;
  int e = 0;
  if (!config::read_text_file(path, &text, &why, 4096, &e)) {
    *error = e == EFBIG ? fmt::format("{}: the admin token file is larger than 4K (it should hold one token)", path)
                        : fmt::format("{}: cannot read the admin token file: {}", path, why);
    return false;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) {
    *error = fmt::format("{}: the admin token file is empty (write a token into it, e.g. openssl rand -hex 32)", path);
    return false;
  }
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) {
      *error = fmt::format("{}: the admin token must be one line of printable characters without spaces", path);
      return false;
    }
  }
  *token = std::move(text);
  return true;
}

admin_api::admin_api(state::grant_store& grants, const state::denial_feed& denials)
    : grants_(grants), denials_(denials) {}

void admin_api::set_access(const std::string& token, bool loopback_admin) {
  loopback_ = loopback_admin;
  token_set_ = !token.empty();
  if (token_set_)
    SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), token_digest_);
  else
    std::memset(token_digest_, 0, sizeof token_digest_);
}

api_response admin_api::error(int status, std::string_view message) {
  return json_answer(status, json{{"error", std::string(message)}});
}

bool admin_api::is_api(std::string_view target) const {
  const auto p = path_of(target);
  return p == "/v1" || p.starts_with("/v1/");
}

std::optional<api_response> admin_api::check_access(std::string_view authorization) const {
  if (!token_set_) {
    if (loopback_) return std::nullopt;
    return error(403, "the /v1/ API answers on a non-loopback admin address only with admin token_file= set");
  }
  auto unauthorized = [](std::string_view msg) {
    api_response r = error(401, msg);
    r.www_authenticate = true;
    return r;
  };
  if (authorization.empty()) return unauthorized("missing Authorization: Bearer TOKEN");
  if (!ieq_prefix(authorization, "bearer ")) return unauthorized("the Authorization field must be Bearer TOKEN");
  std::string_view presented = authorization.substr(7);
  while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  while (!presented.empty() && presented.back() == ' ') presented.remove_suffix(1);
  // Digests of equal length, compared in constant time: neither the token's
  // bytes nor its length leak through timing.
  unsigned char got[32];
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), got);
  if (CRYPTO_memcmp(got, token_digest_, sizeof got) != 0) return unauthorized("wrong token");
  return std::nullopt;
}

api_response admin_api::handle(const api_request& r, clock::time_point now) {
  if (auto denied = check_access(r.authorization)) return *denied;
  const std::string_view path = path_of(r.target);
  if (path == "/v1/grants" || path.starts_with("/v1/grants/")) return grants(r, path.substr(10), now);
  if (path == "/v1/denials") return denials(r, query_of(r.target));
  return error(404, "no such resource (the API has /v1/grants and /v1/denials)");
}

api_response admin_api::grants(const api_request& r, std::string_view rest, clock::time_point now) {
  const bool persisted = grants_.persisted();
  if (rest.empty() || rest == "/") {
    if (r.method == "GET" || r.method == "HEAD") {
      json list = json::array();
      for (const auto& g : grants_.live(now)) list.push_back(state::to_json(g, persisted));
      return json_answer(200, list);
    }
    if (r.method != "POST") return method_not_allowed("GET, POST");
    std::string why;
    auto g = state::parse_grant_request(r.body, now, &why);
    if (!g) return error(400, why);
    switch (grants_.add(*g, now, &why)) {
      case state::grant_store::result::ok: return json_answer(201, state::to_json(*g, persisted));
      case state::grant_store::result::full: return error(409, why);
      case state::grant_store::result::unavailable: return error(503, why);
      default: return error(500, why);
    }
  }
  const std::string_view id = rest.substr(1);
  if (r.method == "GET" || r.method == "HEAD") {
    for (const auto& g : grants_.live(now))
      if (g.id == id) return json_answer(200, state::to_json(g, persisted));
    return error(404, "no grant with that id");
  }
  if (r.method != "DELETE") return method_not_allowed("GET, DELETE");
  std::string why;
  switch (grants_.remove(id, now, &why)) {
    case state::grant_store::result::ok: {
      api_response out;
      out.status = 204;
      return out;
    }
    case state::grant_store::result::unknown: return error(404, why);
    case state::grant_store::result::unavailable: return error(503, why);
    default: return error(500, why);
  }
}

api_response admin_api::denials(const api_request& r, std::string_view query) const {
  if (r.method != "GET" && r.method != "HEAD") return method_not_allowed("GET");
  std::optional<clock::time_point> since;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.empty()) continue;
    const auto eq = param.find('=');
    const std::string_view key = param.substr(0, eq);
    if (key != "since") return error(400, "unknown query parameter (the only one is since=RFC3339-TIME)");
    const auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1));
    since = value ? state::parse_time(*value) : std::nullopt;
    if (!since) return error(400, "since must be an RFC 3339 time such as 2026-12-03T12:00:00Z");
  }
  std::optional<std::vector<state::denial_feed::group>> groups;
  if (shared_denials_) groups = shared_denials_(since);  // the fleet's, when Redis answers
  if (!groups) groups = denials_.read(since);
  json list = json::array();
  for (const auto& g : *groups) {
    list.push_back(json{{"agent", g.agent},
                        {"client", g.client},
                        {"host", g.host},
                        {"port", g.port},
                        {"reason", acl::to_string(g.why)},
                        {"count", g.count},
                        {"first", state::format_time(g.first)},
                        {"last", state::format_time(g.last)}});
  }
  return json_answer(200, list);
}

void admin_api::tick(clock::time_point now) {
  std::string why;
  grants_.sweep(now, &why);
  if (!why.empty()) {
    std::fprintf(stderr, "egressd: expired grants dropped, but %s\n", why.c_str());
    std::fflush(stderr);
  }
}

}  // namespace egressd::proxy
