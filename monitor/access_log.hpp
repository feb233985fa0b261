#pragma once
// The JSON access log (SPEC "Access log"): one object per request or tunnel,
// written when it ends. Workers hand records over by move (no formatting, no
// I/O on the data path); one writer thread formats and writes them in
// batches. write() is thread-safe and never blocks on I/O; if the writer
// falls far behind, records are dropped and counted rather than stalling a
// worker.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace egressd::monitor {

struct access_record {
  std::chrono::system_clock::time_point ts;  // when it ended
  std::string client;                        // ip:port
  std::string group;
  const char* kind = "http";      // http|connect|sni|host|forward
  std::string method;
  std::string host;
  uint16_t port = 0;
  std::string sni;
  std::string path;               // without query string
  const char* decision = "deny";  // allow|deny|report
  const char* reason = "";        // SPEC reason code, "" when allowed and clean
  std::string rule;               // matching rule pattern ("" if none)
  int status = 0;                 // HTTP status sent (0: none, e.g. tunnel closed)
  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
  int64_t duration_ms = 0;
  std::string upstream;           // ip:port connected to ("" if none)
};

// One JSON object on one line (no trailing newline), keys in SPEC order.
std::string to_json(const access_record& r);
// JSON string escaping (quotes included).
void append_json_string(std::string& out, std::string_view s);

class access_log {
 public:
  // target: stdout|stderr|off|PATH. On failure returns null and sets *error
  // ("cannot open PATH: reason").
  static std::unique_ptr<access_log> open(const std::string& target, std::string* error);
  ~access_log();  // flushes everything queued, joins the writer

  void write(access_record&& r);
  void write_line(std::string&& json_line);  // pre-formatted (alerts)
  void reopen();                             // SIGUSR1: reopen PATH
  void flush();                              // block until queued lines are written
  uint64_t dropped() const;

 private:
  access_log();
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace egressd::monitor
