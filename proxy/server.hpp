#pragma once
// The process: binds the listeners, owns the workers and the access log,
// publishes config snapshots, drains on stop. Created and driven from the
// main thread; workers only read the immutable parts (listener addresses,
// counters) after start().

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "monitor/access_log.hpp"
#include "monitor/anomaly_detector.hpp"
#include "monitor/metrics.hpp"

namespace egressd::proxy {

class worker;
class admin_server;
class dns_listener;
class rule_limits;
}  // namespace egressd::proxy
namespace egressd::state {
class redis_state;
}  // namespace egressd::state
namespace egressd::proxy {

class server {
 public:
  // Binds every listener on every worker (SO_REUSEPORT) and starts the
  // threads. On failure returns null with a plain sentence in *error.
  static std::unique_ptr<server> start(std::shared_ptr<const config::snapshot> snap,
                                       std::unique_ptr<monitor::access_log> log, std::string* error);
  ~server();

  // Publishes a new snapshot to every worker; connections keep the one they
  // started with. Listener changes need a restart (reported by the caller).
  void publish(std::shared_ptr<const config::snapshot> snap);
  // A reload that failed to load: counted (egressd_config_reloads_total).
  void reload_failed() { metrics_->config_reload(false); }
  // Stops accepting, lets connections finish for at most `drain`, closes
  // the rest, joins the workers.
  void stop(std::chrono::milliseconds drain);
  monitor::access_log* access_log() { return log_.get(); }
  // Thread-safe process-wide monitors (workers pass their index as shard).
  monitor::metrics& metrics() { return *metrics_; }
  monitor::anomaly_detector& detector() { return *detector_; }
  const admin_server* admin() const { return admin_.get(); }

  // Any thread: is addr:port one of egressd's own listening sockets?
  bool is_self(const acl::ip_address& a, uint16_t port) const;
  // Process-wide connection admission (limit max_conns).
  bool try_admit(uint64_t max_conns);
  void release();

 private:
  server() = default;
  struct bound {
    acl::ip_address addr;
    bool any = false;  // 0.0.0.0 / ::
    uint16_t port = 0;
  };
  static monitor::anomaly_thresholds thresholds(const config::anomaly_settings& a);

  std::unique_ptr<monitor::access_log> log_;
  std::unique_ptr<monitor::metrics> metrics_;
  std::unique_ptr<monitor::anomaly_detector> detector_;
  std::unique_ptr<state::redis_state> shared_;  // state redis:// (null otherwise); before limits_
  std::shared_ptr<const rule_limits> limits_;  // of the last published snapshot
  std::unique_ptr<admin_server> admin_;
  std::vector<std::unique_ptr<dns_listener>> dns_;  // one per dns_listen
  std::atomic<bool> ready_{false};
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<bound> own_;
  std::atomic<uint64_t> conns_{0};
};

}  // namespace egressd::proxy
