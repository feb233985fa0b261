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

#include "acl/auth_throttle.hpp"
#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "monitor/access_log.hpp"
#include "monitor/anomaly_detector.hpp"
#include "monitor/metrics.hpp"
#include "proxy/asio.hpp"
#include "state/denial_feed.hpp"
#include "state/grant_store.hpp"

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
class address_watch;
class admin_api;

class server {
 public:
  // Binds every listener on every worker (SO_REUSEPORT) and starts the
  // threads. grants: loaded already (state FILE); null = an empty in-memory
  // set. admin_token: the token_file's token ("" when none). On failure
  // returns null with a plain sentence in *error.
  static std::unique_ptr<server> start(std::shared_ptr<const config::snapshot> snap,
                                       std::unique_ptr<monitor::access_log> log, std::string* error,
                                       std::unique_ptr<state::grant_store> grants = nullptr,
                                       std::string admin_token = {});
  ~server();

  // Publishes a new snapshot to every worker; connections keep the one they
  // started with. Listener changes need a restart (reported by the caller).
  void publish(std::shared_ptr<const config::snapshot> snap);
  // Reload: the admin token is read again from snap's token_file (false
  // and *error "PATH: ..." when it cannot be: the reload must then fail).
  // Grants are untouched by reloads.
  bool reload_admin_token(const config::snapshot& snap, std::string* error);
  // A reload that failed to load: counted (egressd_config_reloads_total).
  void reload_failed() { metrics_->config_reload(false); }
  // Stops accepting, lets connections finish for at most `drain`, closes
  // the rest, joins the workers.
  void stop(std::chrono::milliseconds drain);
  monitor::access_log* access_log() { return log_.get(); }
  // Thread-safe process-wide monitors (workers pass their index as shard).
  monitor::metrics& metrics() { return *metrics_; }
  monitor::anomaly_detector& detector() { return *detector_; }
  acl::auth_throttle& auth_throttle() { return *throttle_; }
  state::denial_feed& denials() { return *denials_; }
  const admin_server* admin() const { return admin_.get(); }

  // Process-wide connection admission (limit max_conns).
  bool try_admit(uint64_t max_conns);
  void release();

 private:
  server() = default;
  void note_own(const net::ip::address& a, uint16_t port);
  static monitor::anomaly_thresholds thresholds(const config::anomaly_settings& a);

  std::unique_ptr<monitor::access_log> log_;
  std::unique_ptr<monitor::metrics> metrics_;
  std::unique_ptr<monitor::anomaly_detector> detector_;
  std::unique_ptr<acl::auth_throttle> throttle_;  // failed proxy auth per address
  std::unique_ptr<state::redis_state> shared_;  // state redis:// (null otherwise); before limits_
  std::shared_ptr<const rule_limits> limits_;  // of the last published snapshot
  std::unique_ptr<state::grant_store> grants_;  // used on the admin thread after start
  std::unique_ptr<state::denial_feed> denials_;
  std::unique_ptr<admin_api> api_;
  std::unique_ptr<admin_server> admin_;
  std::vector<std::unique_ptr<dns_listener>> dns_;  // one per dns_listen
  std::atomic<bool> ready_{false};
  std::vector<std::unique_ptr<worker>> workers_;
  // egressd's own ports, and the specific addresses listeners are bound to:
  // with every interface address they make up the self check (worker::is_self).
  std::vector<uint16_t> own_ports_;
  std::vector<acl::ip_address> own_addrs_;
  std::unique_ptr<address_watch> self_watch_;  // publishes self_set updates to the workers
  std::atomic<uint64_t> conns_{0};
};

}  // namespace egressd::proxy
