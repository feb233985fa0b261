#pragma once
// The configuration: grammar of SPEC "Configuration", parsed into an
// immutable snapshot. Control path only (exceptions allowed inside, never
// escaping: errors come back as diagnostics). A snapshot is built off the
// data path, then shared read-only (shared_ptr<const snapshot>) by every
// connection that starts under it.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "acl/agents.hpp"
#include "acl/ip_address.hpp"
#include "acl/policy.hpp"
#include "acl/rule.hpp"

namespace egressd::config {

using std::chrono::milliseconds;

enum class listen_mode : uint8_t { proxy, sni, http };
const char* to_string(listen_mode m);

struct endpoint {
  std::string host;  // IP literal (strict) or, for forward targets, a name
  uint16_t port = 0;
  std::string to_string() const;  // "1.2.3.4:80", "[::1]:80"
};

struct listen_spec {
  endpoint addr;
  listen_mode mode = listen_mode::proxy;
  uint16_t upstream_port = 0;  // port= for transparent modes (0 = mode default)
  std::string file;
  int line = 0;
};

// `state FILE | redis://HOST:PORT[/DB] [password_file=PATH] | off`: where
// grants (and, with Redis, the fleet's buckets, blocks and denials) live.
struct state_spec {
  enum class kind_t : uint8_t { off, file, redis };
  kind_t kind = kind_t::off;
  std::string path;           // file: resolved against the config file's directory
  std::string host;           // redis
  uint16_t port = 6379;       // redis
  unsigned db = 0;            // redis: /DB
  std::string password_file;  // redis: resolved path, empty = no AUTH
  std::string file;           // where it was written
  int line = 0;
};

struct timeouts {
  milliseconds connect{10'000};
  milliseconds idle{300'000};
  milliseconds header{30'000};
  milliseconds drain{30'000};
  milliseconds dns{5'000};
};

struct limits {
  uint64_t max_conns = 10'000;
  uint64_t header_bytes = 64 * 1024;
  uint64_t max_clients = 4096;
};

// `dns_listen ADDR:PORT [answer=IP]`
struct dns_listen_spec {
  endpoint addr;
  acl::ip_address answer;  // the A record for allowed names (IPv4)
  std::string file;
  int line = 0;
};

// `forward LISTEN TARGET`: plain TCP forward.
struct forward_spec {
  endpoint listen;  // IP literal
  endpoint target;  // name or IP literal
  std::string file;
  int line = 0;
};

enum class anomaly_action : uint8_t { log, block };

// `anomaly KEY=VALUE...`; always present with the SPEC defaults.
struct anomaly_settings {
  milliseconds window{60'000};
  uint64_t unique_domains = 10;
  uint64_t bytes_out = 1024 * 1024;
  uint64_t total_bytes_out = 50ull * 1024 * 1024;
  double requests_per_second = 2.0;  // requests=120/m
  double error_rate = 0.30;          // fraction (error_rate=30%)
  uint64_t min_requests = 5;
  anomaly_action action = anomaly_action::log;
  milliseconds block_for{0};  // action=block:DURATION
};

// name -> addresses, from `hosts FILE` (/etc/hosts format). Keys lower-case.
using hosts_table = std::map<std::string, std::vector<acl::ip_address>, std::less<>>;

struct snapshot {
  std::vector<listen_spec> listens;
  unsigned threads = 0;  // 0 = auto (hardware cores)
  std::vector<endpoint> resolvers;  // empty = /etc/resolv.conf
  std::string hosts_file = "/etc/hosts";  // empty = off
  hosts_table hosts;
  std::string access_log = "stdout";  // stdout|stderr|off|PATH
  timeouts timeout;
  limits limit;
  std::vector<uint16_t> tls_ports{443};
  bool require_sni = true;
  bool reload_auto = true;              // `reload auto|signal`
  bool ech_allow = false;  // `ech allow`: ClientHellos with ECH relayed (default deny)
  std::unique_ptr<acl::policy> policy;  // never null in a loaded snapshot
  std::vector<std::string> files;       // every file read (main + includes)

  std::optional<endpoint> admin;  // absent = no admin endpoint
  std::vector<acl::cidr> admin_allow;  // admin allow=: client networks admitted (empty = any)
  std::string admin_token_file;        // admin token_file=: bearer token for /v1/ (resolved path)
  state_spec state;                    // `state`
  std::vector<dns_listen_spec> dns_listens;
  std::vector<forward_spec> forwards;
  std::optional<endpoint> upstream_proxy;  // http://HOST:PORT (host may be a name)
  bool report_mode = false;                // `mode report`
  anomaly_settings anomaly;
  std::vector<acl::client_group> groups;  // also inside policy; kept for --check
  // `agent` / `agents FILE` (never null in a loaded snapshot; may be empty)
  // and `auth` (default: required when an agent is defined, else off).
  std::unique_ptr<const acl::agent_table> agents;
  acl::auth_mode auth = acl::auth_mode::off;

  bool is_tls_port(uint16_t p) const;
};

struct diagnostic {
  std::string file;
  int line = 0;  // 0: about the file as a whole
  std::string message;
  std::string str() const;  // "FILE:LINE: message" (or "FILE: message")
};

// One file a load read (or tried to), for the reload watcher.
struct source_file {
  std::string path;
  size_t hash = 0;       // std::hash of the text parsed
  bool missing = false;  // could not be read
};

struct load_result {
  std::shared_ptr<const snapshot> snap;  // null on error
  std::vector<diagnostic> errors;        // every error found, in file order
  // Also filled when the load failed, so a fix to any of them is noticed:
  std::vector<source_file> sources;  // every file read or tried, in order
  std::vector<std::pair<std::string, std::vector<std::string>>> globs;  // include GLOB -> matches
};

struct load_options {
  // Test hook: parse features this build does not implement yet (see
  // config/features.cpp) instead of reporting "not supported yet".
  bool allow_unsupported = false;
  // false: never touch the file system (fuzzing): `include` and `hosts FILE`
  // are errors and the default /etc/hosts is not read.
  bool file_access = true;
};

// Reads FILE and its includes (include GLOB is relative to the including
// file; a glob matching nothing is fine, a plain missing file is an error).
// Relative `hosts` and `access_log` paths are relative to the file too.
load_result load_file(const std::string& path, const load_options& opts = {});
// Same grammar from a string; `name` is used in diagnostics, and includes are
// relative to the current directory.
load_result load_string(std::string_view text, const std::string& name,
                        const load_options& opts = {});

// Multi-line human summary for `--check` (listeners, rule counts, ...).
std::string summary(const snapshot& s);

// Value grammar shared with other parsers. Return false on a malformed value.
bool parse_size(std::string_view v, uint64_t* out);           // 64K, 1M, 2G, 100
bool parse_duration(std::string_view v, milliseconds* out);   // 10s, 500ms, 5m, 1h
bool parse_rate(std::string_view v, double* per_second);      // 3/m, 10/s, 100/h
// HOST:PORT, [V6]:PORT, or without port when !port_required (port left 0;
// a bare IPv6 address is accepted then). HOST is a strict IP literal
// (stored in canonical text) or a DNS name (stored lower-case).
bool parse_endpoint(std::string_view v, endpoint* out, bool port_required);

}  // namespace egressd::config
