#pragma once
// The JSON access log (SPEC "Access log"): one object per request or tunnel,
// written when it ends. Workers hand records over by move (no formatting, no
// I/O on the data path); one writer thread formats and writes them in
// batches. write() is thread-safe and never blocks on I/O; if the writer
// falls far behind, records are dropped and counted rather than stalling a
// worker. The access_log object owns its writer thread and file descriptor;
// destroy it only after every worker has stopped calling write().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "acl/policy.hpp"
#include "monitor/request_class.hpp"

namespace egressd::monitor {

struct access_record {
  std::chrono::system_clock::time_point ts;  // when it ended
  std::string client;                        // ip:port
  std::string group;
  std::string agent;  // agent named by proxy credentials ("" if none)
  request_kind kind = request_kind::http;
  std::string method;
  std::string host;
  uint16_t port = 0;
  std::string sni;
  bool ech = false;  // the ClientHello carried ECH/ESNI (logged only when true)
  std::string path;               // without query string
  request_decision decision = request_decision::deny;
  acl::reason reason = acl::reason::none;  // logged as its SPEC code, "" for none
  std::string rule;               // matching rule pattern ("" if none)
  int status = 0;                 // HTTP status sent (0: none, e.g. tunnel closed)
  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
  int64_t duration_ms = 0;
  std::string upstream;           // ip:port connected to ("" if none)
};

// One JSON object on one line (no trailing newline), keys in SPEC order:
// ts, client, group, agent, kind, method, host, port, sni, path, decision, reason,
// rule, status, bytes_up, bytes_down, duration_ms, upstream. Every field is
// always present (empty strings as ""), except "ech": true, which follows
// "sni" only on the lines of tunnels whose ClientHello carried ECH (SPEC "TLS
// privacy extensions"), so that every other line keeps its shape and size.
// Always valid JSON, whatever bytes the
// client sent (see append_json_string).
std::string to_json(const access_record& r);
// JSON string escaping (quotes included): '"' '\\' and control characters
// are escaped, valid UTF-8 is copied, and every byte that is not part of a
// valid UTF-8 sequence (overlong forms and surrogates included) becomes
// U+FFFD, so the output is valid JSON and valid UTF-8.
void append_json_string(std::string& out, std::string_view s);
// RFC 3339 UTC with milliseconds: "2026-11-22T16:04:05.123Z".
void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t);

class access_log {
 public:
  // Queue bound: records beyond it are dropped and counted.
  static constexpr size_t default_max_queued = 65536;

  // target: stdout|stderr|off|PATH (PATH opened O_APPEND|O_CREAT, mode 0640).
  // "off" gives a log that discards everything (no thread, no fd), so callers
  // need not test for it. On failure returns null and sets *error
  // ("cannot open PATH: reason").
  static std::unique_ptr<access_log> open(const std::string& target, std::string* error,
                                          size_t max_queued = default_max_queued);
  ~access_log();  // flushes everything queued, joins the writer

  bool enabled() const;                      // false for "off"
  void write(access_record&& r);
  void write_line(std::string&& json_line);  // pre-formatted (alerts), no newline
  // SIGUSR1: reopen PATH (after logrotate renamed it). Asynchronous: takes
  // effect before the writer's next batch. If the reopen fails the old file
  // stays in use and the failure is reported on stderr.
  void reopen();
  void flush();  // block until everything queued before the call is written
  uint64_t dropped() const;  // records dropped because the queue was full

 private:
  access_log();
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace egressd::monitor
