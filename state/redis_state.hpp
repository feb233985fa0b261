#pragma once
// `state redis://HOST:PORT[/DB]`: what the replicas of a fleet share through
// Redis (SPEC "State shared by a fleet"), kept off the data path. One
// dedicated thread (the state thread) owns the Redis link (hiredis, blocking
// calls with a 500 ms timeout: only this thread ever waits) and, every 20 ms:
//   - tops up each rate_lease from the shared GCRA bucket of its rule
//     (egressd:rate:KEY, one Lua script via EVALSHA: take up to N tokens);
//   - every second, registers this replica (egressd:replicas, a sorted set
//     scored by Redis time) and reads how many replicas are alive;
//   - publishes the anomaly blocks this replica raised (egressd:blocks,
//     client -> end in Redis time) and applies the others' (poll, 250 ms).
// When Redis cannot be reached: egressd_state_up is 0, one stderr line marks
// each transition, it reconnects with back-off (100 ms doubling to 5 s), each
// lease is refilled locally at limit / replicas-last-seen (burst likewise),
// and blocks already applied stay until their end.
//
// Thread contract: start()/lease()/stop from the main thread; the callbacks
// are called on the state thread; rate_lease::try_take from any worker.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "monitor/metrics.hpp"
#include "state/rate_lease.hpp"
#include "state/rate_lease_table.hpp"

namespace egressd::state {

class redis_link;

class redis_state {
 public:
  struct block {
    std::string client;
    int64_t remaining_ms = 0;
  };
  struct hooks {
    std::function<std::vector<block>()> local_blocks;       // blocks raised here since the last call
    std::function<void(const block&)> apply_remote_block;  // a block raised by any replica
  };

  // Reads password_file, makes one connection attempt (bounded), starts the
  // thread. Null with a sentence in *error only for a config-level problem
  // (unreadable password file); an unreachable Redis is an outage, not an error.
  static std::unique_ptr<redis_state> start(const config::state_spec& spec, monitor::metrics& metrics,
                                            hooks h, std::string* error);
  ~redis_state();

  // Main thread: the lease of a shared rule (get-or-create by key).
  std::shared_ptr<rate_lease> lease(const std::string& key, double per_second, uint32_t burst);
  // Main thread: the per-client leases of a `per=client` rule (by key).
  std::shared_ptr<rate_lease_table> lease_table(const std::string& key, double per_second, uint32_t burst,
                                                size_t max_clients);
  void set_hooks(hooks h);

  bool up() const { return up_.load(std::memory_order_relaxed); }
  unsigned replicas() const { return replicas_.load(std::memory_order_relaxed); }

 private:
  redis_state() = default;
  void run();
  void cycle(int64_t now_ms);
  bool try_connect(int64_t now_ms);
  void went_down(const std::string& why, int64_t now_ms);
  void heartbeat();
  void refill_from_redis(const std::vector<std::shared_ptr<rate_lease>>& leases);
  static void refill_locally(rate_lease& l, unsigned replicas, double seconds);
  void sync_blocks();
  // The leases to serve this cycle: rule-wide ones always, per-client ones
  // used since the last cycle or owing credit (all of them when all = true).
  std::vector<std::shared_ptr<rate_lease>> leases_snapshot(bool all_clients);

  config::state_spec spec_;
  std::string name_;      // redis://host:port/db, for messages
  std::string password_;
  std::string replica_id_;
  std::unique_ptr<redis_link> link_;
  std::string take_sha_, beat_sha_, block_sha_, poll_sha_;
  monitor::metrics_registry* registry_ = nullptr;
  monitor::metrics_registry::gauge_id up_gauge_{};
  monitor::metrics_registry::gauge_id replicas_gauge_{};

  std::atomic<bool> up_{false};
  std::atomic<unsigned> replicas_{1};
  int64_t next_attempt_ms_ = 0, backoff_ms_ = 100, last_beat_ms_ = 0, last_poll_ms_ = 0, last_cycle_ms_ = 0;
  bool reported_ = false;  // a transition line was printed at least once
  std::vector<std::pair<std::string, int64_t>> outage_blocks_;  // raised while down: client, end (steady ms)

  std::mutex mu_;  // leases_, hooks_, stop_
  std::condition_variable cv_;
  std::vector<std::shared_ptr<rate_lease>> leases_;
  std::vector<std::shared_ptr<rate_lease_table>> tables_;
  hooks hooks_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace egressd::state
