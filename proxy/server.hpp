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

namespace egressd::proxy {

class worker;

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
  // Stops accepting, lets connections finish for at most `drain`, closes
  // the rest, joins the workers.
  void stop(std::chrono::milliseconds drain);
  monitor::access_log* access_log() { return log_.get(); }

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
  std::unique_ptr<monitor::access_log> log_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<bound> own_;
  std::atomic<uint64_t> conns_{0};
};

}  // namespace egressd::proxy
