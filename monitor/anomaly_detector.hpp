#pragma once
// Per-client traffic anomaly detection (SPEC "Anomaly metrics"). For each
// client (source address) it keeps a sliding window (`window`, default 60 s)
// of requests, errors and bytes sent upstream (60 sub-buckets of window/60:
// an event counts while younger than 59/60 to 60/60 of the window) and the
// distinct hosts contacted (exact last-seen times), and raises an alert when a
// threshold is crossed, at most once per type per client per window.
//
// Thread contract: every method is thread-safe. Clients are split over 16
// shards (one when max_clients < 256), each a mutex-protected LRU table of at
// most its share of max_clients clients (least recently seen evicted);
// observe() locks one shard for about a microsecond and is meant to be called
// once per request/tunnel end, not per byte. The recent-alerts ring has its own
// mutex. Time is a parameter (callers pass steady_clock::now()); alert
// timestamps for the log use the system clock. Owned by the process (it
// outlives config snapshots: set_thresholds() on reload keeps the windows).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "monitor/alert.hpp"

namespace egressd::monitor {

// Mirrors config::anomaly_settings (monitor does not depend on config).
struct anomaly_thresholds {
  std::chrono::milliseconds window{60'000};
  uint64_t unique_domains = 10;                  // domain_diversity: more than N hosts
  uint64_t bytes_out = 1024 * 1024;              // large_outbound: one request above
  uint64_t total_bytes_out = 50ull * 1024 * 1024;  // total_outbound: window sum above
  double requests_per_second = 2.0;              // request_rate: requests=120/m
  double error_rate = 0.30;                      // fraction; error_rate=30%
  uint64_t min_requests = 5;                     // error_rate only from this many
  std::chrono::milliseconds block_for{0};        // action=block:DURATION; 0 = log
};

class anomaly_detector {
 public:
  using clock = std::chrono::steady_clock;

  struct client_stats {
    std::string client;
    uint64_t requests_total = 0;  // since the client entered the table
    uint64_t unique_domains = 0;  // distinct hosts in the current window
  };
  struct window_totals {
    uint64_t requests = 0, errors = 0, bytes_out = 0, unique_hosts = 0;
  };

  static constexpr size_t default_max_recent_alerts = 256;

  explicit anomaly_detector(const anomaly_thresholds& t, size_t max_clients = 4096,
                            size_t max_recent_alerts = default_max_recent_alerts);
  ~anomaly_detector();
  anomaly_detector(const anomaly_detector&) = delete;
  anomaly_detector& operator=(const anomaly_detector&) = delete;

  // Config reload. Counts survive unless the window length changes.
  void set_thresholds(const anomaly_thresholds& t);
  anomaly_thresholds thresholds() const;

  // One finished request or tunnel. client: source address without port.
  // host: the requested name, lower-case (denied ones too; "" for none).
  // bytes_out: bytes sent upstream. is_error: denied, 4xx/5xx or failed.
  // Returns the alerts raised now (usually none; no allocation then). The
  // caller logs each (to_json(alert)), counts it, and must not treat it as
  // a decision on this request: it is already over.
  std::vector<alert> observe(std::string_view client, std::string_view host, uint64_t bytes_out,
                             bool is_error, clock::time_point now);

  // action=block: true while the client is refused (403 anomaly_block).
  // Lock-free false when the action is log.
  bool is_blocked(std::string_view client, clock::time_point now) const;

  // Fleet sharing (state redis://), from the state thread. take_new_blocks():
  // the blocks raised here since the last call (client, duration; at most
  // 1024 kept between calls). block(): a block raised by another replica,
  // enforced here until `until` (a later local end wins).
  std::vector<std::pair<std::string, std::chrono::milliseconds>> take_new_blocks();
  void block(std::string_view client, clock::time_point until);

  // The most recent alerts, oldest first / as a JSON array (for /alerts).
  std::vector<alert> recent_alerts() const;
  std::string recent_alerts_json() const;

  // Scrape: the per-client series (bounded by max_clients).
  std::vector<client_stats> clients(clock::time_point now) const;
  // The current window of one client (tests, debugging).
  std::optional<window_totals> totals(std::string_view client, clock::time_point now) const;
  size_t client_count() const;
  size_t max_clients() const { return max_clients_; }

 private:
  struct client_state;
  struct shard;
  shard& shard_for(std::string_view client) const;
  void remember(const std::vector<alert>& alerts);

  size_t max_clients_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::atomic<bool> blocking_{false};  // any block_for > 0
  std::atomic<bool> remote_blocks_{false};  // block() was called: is_blocked() must look

  mutable std::mutex recent_mu_;
  std::deque<alert> recent_;  // guarded by recent_mu_
  std::vector<std::pair<std::string, std::chrono::milliseconds>> new_blocks_;  // guarded by recent_mu_
  size_t max_recent_;
};

}  // namespace egressd::monitor
