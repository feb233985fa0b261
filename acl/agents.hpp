#pragma once
// Agents by name (SPEC "Agents by name"): the configured agents and the
// table that finds one from a presented token in O(1). Built once per config
// snapshot by the config loader (single thread), immutable afterwards and
// read concurrently by every worker without locks. Tokens themselves are
// never stored: only their SHA-256 digests.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace egressd::acl {

using token_digest = std::array<uint8_t, 32>;  // SHA-256

// SHA-256 of `data` (OpenSSL EVP; the digest is fetched once per process,
// the context reused per thread). False only if OpenSSL fails.
bool sha256(std::string_view data, token_digest* out);
// "sha256:HEX" with exactly 64 hex digits (either case) -> digest.
std::optional<token_digest> parse_token_hash(std::string_view v);
// The same form, lower-case hex ("sha256:...").
std::string format_token_hash(const token_digest& d);
// Agent names: [A-Za-z0-9_.-]{1,64}.
bool valid_agent_name(std::string_view n);

// `auth off|optional|required` (SPEC): what a forward-proxy request must
// present. Transparent listeners and dns_listen carry no credentials.
enum class auth_mode : uint8_t { off, optional, required };
const char* to_string(auth_mode m);

struct agent {
  std::string name;
  token_digest digest{};
  std::vector<std::string> groups;   // group= on the agent line, in order
  std::vector<int32_t> group_index;  // the same, as indices into policy::groups()
  std::string file;                  // where it was defined
  int line = 0;
};

class agent_table {
 public:
  // Agents must be valid and free of duplicate names and digests (the
  // config loader reports those); a later duplicate digest is ignored here.
  explicit agent_table(std::vector<agent> agents = {});
  agent_table(const agent_table&) = delete;
  agent_table& operator=(const agent_table&) = delete;

  // The agent whose token hashes to `d`, or null: one hash probe, then a
  // constant-time comparison of the whole digest (CRYPTO_memcmp).
  const agent* find(const token_digest& d) const;
  const agent* find_name(std::string_view name) const;  // control path
  // Index of `a` in agents() (a must come from this table).
  int32_t index_of(const agent* a) const { return static_cast<int32_t>(a - agents_.data()); }

  const std::vector<agent>& agents() const { return agents_; }
  bool empty() const { return agents_.empty(); }

 private:
  // The digest is uniformly random: its first 8 bytes are the hash.
  struct digest_hash {
    size_t operator()(const token_digest& d) const noexcept;
  };
  struct digest_eq {
    bool operator()(const token_digest& a, const token_digest& b) const noexcept;
  };
  std::vector<agent> agents_;
  std::unordered_map<token_digest, int32_t, digest_hash, digest_eq> by_digest_;
};

}  // namespace egressd::acl
