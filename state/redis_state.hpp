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
//     client -> end in Redis time) and applies the others' (poll, 250 ms);
//   - polls the grants' version (egressd:grants:version, 250 ms) and, when it
//     moved, reads the set (egressd:grants, id -> JSON) and hands it to the
//     grant sink (which republishes the grant view);
//   - every second, merges the denial groups this replica recorded since the
//     last push into the fleet's feed (egressd:denials, a sorted set of group
//     keys by last denial, and egressd:denial:KEY hashes; 1,000 groups, the
//     least recently denied dropped). read_denials() reads it back.
// Grant writes (put_grant/erase_grant) come from the admin thread over a
// second connection of their own (control_, under control_mu_), bounded by
// the same 500 ms timeout: a control-path wait, never a worker's; refused
// at once (-1) while the state thread sees Redis down.
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
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "monitor/metrics.hpp"
#include "state/rate_lease.hpp"
#include "state/denial_feed.hpp"
#include "state/grant.hpp"
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
  // The grant set as Redis holds it: its version, the live grants, and
  // whether it follows a (re)connection (the version may have restarted).
  using grant_sink = std::function<void(int64_t version, std::vector<grant> grants, bool reconnected)>;
  // Any thread; the sink is called on the state thread. Once this returns
  // the previous sink is not running and never called again.
  void set_grant_sink(grant_sink sink);

  // Any thread (the admin thread): store a new grant, drop one. Return the
  // grants' version after the change; -1 when Redis is unreachable (nothing
  // changed), put: -2 when max_live grants are in force, -3 when the id is
  // taken; erase: 0 when no live grant has that id.
  int64_t put_grant(const grant& g, size_t max_live);
  int64_t erase_grant(const std::string& id);

  // The denial groups to push (denial_feed::take_changes); any thread, the
  // source is called on the state thread; as set_grant_sink, the previous
  // one is not running once this returns.
  void set_denial_source(std::function<std::vector<denial_feed::group>()> source);
  // Any thread (the admin thread): the fleet's merged denial feed, as
  // denial_feed::read; nullopt while Redis is unreachable (or the read
  // failed), for the caller to fall back to its own.
  std::optional<std::vector<denial_feed::group>> read_denials(std::optional<denial_feed::clock::time_point> since);

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
  bool load_feed_scripts();  // redis_feeds.cpp: the grants' and denials' scripts
  void sync_grants();
  void push_denials();
  bool control_ready();  // control_mu_ held
  // The leases to serve this cycle: rule-wide ones always, per-client ones
  // used since the last cycle or owing credit (all of them when all = true).
  std::vector<std::shared_ptr<rate_lease>> leases_snapshot(bool all_clients);

  static constexpr int io_timeout_ms = 500;  // every blocking Redis call, both connections
  config::state_spec spec_;
  std::string name_;      // redis://host:port/db, for messages
  std::string password_;
  std::string replica_id_;
  std::unique_ptr<redis_link> link_;
  std::string take_sha_, beat_sha_, block_sha_, poll_sha_, grants_sha_, denial_sha_;
  std::string grants_seen_;   // the version last handed to the sink ("" = none yet)
  bool grants_fresh_ = true;  // next hand-over follows a (re)connection
  monitor::metrics_registry* registry_ = nullptr;
  monitor::metrics_registry::gauge_id up_gauge_{};
  monitor::metrics_registry::gauge_id replicas_gauge_{};

  std::atomic<bool> up_{false};
  std::atomic<unsigned> replicas_{1};
  int64_t last_denials_ms_ = 0;
  int64_t next_attempt_ms_ = 0, backoff_ms_ = 100, last_beat_ms_ = 0, last_poll_ms_ = 0, last_cycle_ms_ = 0;
  bool reported_ = false;  // a transition line was printed at least once
  std::vector<std::pair<std::string, int64_t>> outage_blocks_;  // raised while down: client, end (steady ms)

  std::mutex mu_;  // leases_, hooks_, stop_
  std::condition_variable cv_;
  std::vector<std::shared_ptr<rate_lease>> leases_;
  std::vector<std::shared_ptr<rate_lease_table>> tables_;
  hooks hooks_;
  std::mutex sink_mu_;  // grant_sink_ and denial_source_, held while they run
  grant_sink grant_sink_;
  std::function<std::vector<denial_feed::group>()> denial_source_;
  bool stop_ = false;
  std::mutex control_mu_;  // control_
  std::unique_ptr<redis_link> control_;
  std::thread thread_;
};

}  // namespace egressd::state
