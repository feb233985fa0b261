// Agent table and token digests (see agents.hpp).
#include "acl/agents.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace egressd::acl {
namespace {

// Fetched once: an implicit fetch per digest costs more than the hash.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

bool sha256(std::string_view data, token_digest* out) {
  // One context per thread, reused: no allocation per digest.
  thread_local std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
  unsigned len = 0;
  const EVP_MD* md = sha256_md();
  if (!ctx || !md || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out->data(), &len) != 1 || len != out->size())
    return false;  // callers fail closed: no agent is found
  return true;
}

std::optional<token_digest> parse_token_hash(std::string_view v) {
  constexpr std::string_view prefix = "sha256:";
  if (v.size() != prefix.size() + 64) return std::nullopt;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (static_cast<char>(v[i] | 0x20) != prefix[i]) return std::nullopt;  // SHA256: too
  v.remove_prefix(prefix.size());
  token_digest d{};
  for (size_t i = 0; i < d.size(); ++i) {
    int hi = hex_value(v[2 * i]), lo = hex_value(v[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return d;
}

std::string format_token_hash(const token_digest& d) {
  static const char digits[] = "0123456789abcdef";
  std::string out = "sha256:";
  out.reserve(out.size() + 64);
  for (uint8_t b : d) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

bool valid_agent_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

const char* to_string(auth_mode m) {
  switch (m) {
    case auth_mode::off: return "off";
    case auth_mode::optional: return "optional";
    case auth_mode::required: return "required";
  }
  return "?";
}

size_t agent_table::digest_hash::operator()(const token_digest& d) const noexcept {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

bool agent_table::digest_eq::operator()(const token_digest& a, const token_digest& b) const noexcept {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

agent_table::agent_table(std::vector<agent> agents) : agents_(std::move(agents)) {
  by_digest_.reserve(agents_.size());
  for (size_t i = 0; i < agents_.size(); ++i) by_digest_.emplace(agents_[i].digest, static_cast<int32_t>(i));
}

const agent* agent_table::find(const token_digest& d) const {
  auto it = by_digest_.find(d);
  return it == by_digest_.end() ? nullptr : &agents_[static_cast<size_t>(it->second)];
}

const agent* agent_table::find_name(std::string_view name) const {
  for (const auto& a : agents_)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace egressd::acl
