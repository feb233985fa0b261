// Proxy credentials (see credentials.hpp).
#include "acl/credentials.hpp"

#include <openssl/crypto.h>

#include <array>

namespace egressd::acl {
namespace {

constexpr std::array<int8_t, 256> base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < alphabet.size(); ++i) t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto b64 = base64_table();

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = char(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = char(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const agent* by_token(const agent_table& agents, std::string_view token) {
  if (token.empty()) return nullptr;
  token_digest d;
  if (!sha256(token, &d)) return nullptr;
  return agents.find(d);
}

}  // namespace

bool decode_base64(std::string_view in, std::string* out) {
  out->clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = in.back() == '=' ? (in[in.size() - 2] == '=' ? 2 : 1) : 0;
  out->resize(in.size() / 4 * 3);
  char* w = out->data();
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const size_t full = in.size() - (pad ? 4 : 0);  // groups without padding
  for (size_t i = 0; i < full; i += 4) {
    const int a = b64[p[i]], b = b64[p[i + 1]], c = b64[p[i + 2]], d = b64[p[i + 3]];
    if ((a | b | c | d) < 0) return false;  // also '=' before the last group
    const uint32_t n = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6 | uint32_t(d);
    *w++ = static_cast<char>(n >> 16);
    *w++ = static_cast<char>(n >> 8 & 0xff);
    *w++ = static_cast<char>(n & 0xff);
  }
  if (pad) {
    const size_t i = full;
    const int a = b64[p[i]], b = b64[p[i + 1]], c = pad == 1 ? b64[p[i + 2]] : 0;
    if ((a | b | c) < 0) return false;
    const uint32_t n = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6;
    if ((pad == 1 && (n & 0xff)) || (pad == 2 && (n & 0xffff))) return false;  // non-zero unused bits
    *w++ = static_cast<char>(n >> 16);
    if (pad == 1) *w++ = static_cast<char>(n >> 8 & 0xff);
  }
  out->resize(static_cast<size_t>(w - out->data()));
  return true;
}

const agent* check_credentials(const agent_table& agents, std::string_view value) {
  value = trim(value);
  const size_t sp = value.find_first_of(" \t");
  if (sp == std::string_view::npos) return nullptr;
  const std::string_view scheme = value.substr(0, sp);
  const std::string_view param = trim(value.substr(sp));
  if (param.empty() || param.find_first_of(" \t") != std::string_view::npos) return nullptr;
  if (iequals(scheme, "bearer")) return by_token(agents, param);
  if (!iequals(scheme, "basic")) return nullptr;
  // Reused per thread: no allocation per request once warm. Wiped after use
  // so a token does not linger in memory longer than the request needs.
  thread_local std::string plain;
  const agent* who = nullptr;
  if (decode_base64(param, &plain)) {
    const std::string_view s(plain);
    const size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      const std::string_view name = s.substr(0, colon);
      who = by_token(agents, s.substr(colon + 1));
      if (who && who->name != name) who = nullptr;  // name and token must belong together
    }
  }
  if (!plain.empty()) OPENSSL_cleanse(plain.data(), plain.size());
  return who;
}

void credential_cache::reset() {
  if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
  value_.clear();
  table_ = nullptr;
  who_ = nullptr;
}

const agent* credential_cache::find(const agent_table& t, std::string_view value) const {
  if (table_ != &t || !who_ || value.size() != value_.size()) return nullptr;
  return CRYPTO_memcmp(value.data(), value_.data(), value.size()) == 0 ? who_ : nullptr;
}

void credential_cache::remember(const agent_table& t, std::string_view value, const agent* who) {
  reset();
  if (!who || value.size() > max_value) return;
  value_.assign(value);
  table_ = &t;
  who_ = who;
}

auth_outcome authenticate(auth_mode mode, const agent_table& agents, auth_throttle& throttle,
                          const ip_address& addr, const presented_credentials& creds,
                          auth_throttle::clock::time_point now, credential_cache* cache) {
  auth_outcome out;
  if (mode == auth_mode::off) return out;
  if (creds.fields == 0) {
    if (mode == auth_mode::required) out.why = reason::auth_required;
    return out;
  }
  if (const uint64_t left = throttle.throttled(addr, now)) {
    out.why = reason::auth_throttled;
    out.retry_after = left;
    return out;
  }
  if (creds.fields == 1) {
    if (cache) out.who = cache->find(agents, creds.value);
    if (!out.who) {
      out.who = check_credentials(agents, creds.value);
      if (cache && out.who) cache->remember(agents, creds.value, out.who);
    }
  }
  if (!out.who) {
    out.why = reason::auth_failed;
    throttle.fail(addr, now);
  }
  return out;
}

}  // namespace egressd::acl
