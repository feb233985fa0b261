#pragma once
// A grant (SPEC "Grants at run time"): access given while egressd runs, for a
// while, without editing files. Plain data plus the strict validation of a
// `POST /v1/grants` body and the JSON forms (API answer, state file). Pure:
// no Asio, no I/O; thread-safe (no shared state but the RNG of OpenSSL).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace egressd::state {

using clock = std::chrono::system_clock;

struct grant {
  std::string id;               // 12 lower-case hex digits
  std::string pattern;          // as for `allow` (exact, .suffix, *.wildcard, ~regex)
  std::vector<uint16_t> ports;  // sorted, unique, never empty
  std::string agent;            // empty: not scoped to an agent
  std::string group;            // empty: not scoped to a group (never both)
  clock::time_point expires;    // millisecond precision
  clock::time_point created;
  std::string note;
};

// Bounds of a request (SPEC: ttl at most 720h, default 1h; ports default 80,443).
constexpr std::chrono::milliseconds default_ttl = std::chrono::hours(1);
constexpr std::chrono::milliseconds max_ttl = std::chrono::hours(720);
constexpr size_t max_note_bytes = 256;
constexpr size_t max_pattern_bytes = 1024;
constexpr size_t max_ports = 64;

// Parses and validates a request body: a JSON object with `pattern`
// (required), `ports`, `agent` | `group`, `ttl`, `note`; unknown keys and
// wrong types are errors. On success the grant has pattern, ports, scope,
// note, created = now and expires = now + ttl (id empty: the store names it).
// On failure returns nullopt and *error is one sentence without a newline.
std::optional<grant> parse_grant_request(std::string_view body, clock::time_point now, std::string* error);

// Agent and group names: [A-Za-z0-9_.-]{1,64} (SPEC "Agents by name").
bool valid_scope_name(std::string_view name);
// 12 lower-case hex digits.
bool valid_grant_id(std::string_view id);
// 12 hex digits from OpenSSL's CSPRNG (48 bits: not guessable by a client).
std::string random_grant_id();

// The API form: {"id","pattern","ports","agent","group","expires","note",
// "created","persisted"}; agent/group are null when not scoped.
nlohmann::ordered_json to_json(const grant& g, bool persisted);
// The state-file form (to_json without "persisted"), read back strictly:
// nullopt and *error on anything missing or invalid.
nlohmann::ordered_json to_file_json(const grant& g);
std::optional<grant> grant_from_file_json(const nlohmann::json& j, std::string* error);

// RFC 3339 timestamps: the access log's form (UTC, milliseconds) out;
// in, any RFC 3339 date-time (fraction optional, Z or +HH:MM / -HH:MM).
std::string format_time(clock::time_point t);
std::optional<clock::time_point> parse_time(std::string_view s);

}  // namespace egressd::state
