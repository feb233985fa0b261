#pragma once
// A worker: one thread running one io_context. Every connection accepted by
// this worker's SO_REUSEPORT acceptors lives on it for life (no strands).
// Everything reachable from a worker (resolver, pipe pool, buffers, the
// connection registry, the current snapshot pointer) is touched only from
// its thread, except the methods marked "any thread", which post to it.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "proxy/accept_guard.hpp"
#include "proxy/asio.hpp"
#include "proxy/relay/tunnel.hpp"
#include "proxy/self_addresses.hpp"
#include "proxy/upstream_pool.hpp"
#include "state/grant_view.hpp"

namespace egressd::monitor {
class access_log;
}

namespace egressd::proxy {

class server;
class rule_limits;

struct listener_info {
  config::listen_mode mode = config::listen_mode::proxy;
  tcp::endpoint local;
  uint16_t upstream_port = 0;  // port= of transparent listeners (0: 443 / 80)
  bool forward = false;        // `forward LISTEN TARGET`: plain TCP to target
  config::endpoint target;
};

// A live connection, registered so drain and shutdown can reach its sockets.
// Owned by the session's coroutine frame; linked into its worker's list.
struct conn_entry {
  tcp::socket* client = nullptr;
  tcp::socket* upstream = nullptr;
  bool idle = false;  // between requests: safe to close when draining
  conn_entry* prev = nullptr;
  conn_entry* next = nullptr;
};

// 64 KiB relay buffers for HTTP bodies, recycled per worker so a request does
// not allocate and an idle keep-alive connection holds none.
class buffer_pool {
 public:
  static constexpr size_t buffer_size = 64 * 1024;
  struct deleter {
    buffer_pool* pool;
    void operator()(char* p) const { pool->give(p); }
  };
  using handle = std::unique_ptr<char[], deleter>;
  handle take();
  ~buffer_pool();

 private:
  void give(char* p);
  std::vector<char*> free_;
};

class worker {
 public:
  worker(server& srv, unsigned index, std::shared_ptr<const config::snapshot> snap,
         std::shared_ptr<const rule_limits> limits, monitor::access_log* log);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Before start(): acceptors opened and bound on this worker's io_context.
  net::io_context& io() { return io_; }
  void add_acceptor(std::unique_ptr<tcp::acceptor> a, listener_info info);
  void start();

  // Any thread.
  void publish(std::shared_ptr<const config::snapshot> snap, std::shared_ptr<const rule_limits> limits);
  // The self check's current address set (self_addresses.hpp).
  void publish_self(std::shared_ptr<const self_set> set);
  // The grants in force; decisions made after it runs use them.
  void publish_grants(std::shared_ptr<const state::grant_view> grants);
  void begin_drain();
  void force_close();
  void stop_and_join();
  size_t active() const { return active_.load(std::memory_order_relaxed); }

  // Before start(): the first self set.
  void set_self(std::shared_ptr<const self_set> set) { self_ = std::move(set); }

  // Worker thread only.
  // Is a:port egressd itself (one of its ports on an address of this machine)?
  bool is_self(const acl::ip_address& a, uint16_t port) const { return self_ && self_->contains(a, port); }
  server& srv() { return srv_; }
  unsigned index() const { return index_; }
  const std::shared_ptr<const config::snapshot>& snapshot() const { return snap_; }
  const std::shared_ptr<const rule_limits>& limits() const { return limits_; }
  const state::grant_view* grants() const { return grants_.get(); }  // null before the first publish
  dns::resolver& resolver() { return *resolver_; }
  pipe_pool& pipes() { return pipes_; }
  buffer_pool& buffers() { return buffers_; }
  upstream_pool& upstreams() { return upstreams_; }
  monitor::access_log* log() { return log_; }
  bool draining() const { return draining_; }
  void register_conn(conn_entry& c);
  void unregister_conn(conn_entry& c);

 private:
  awaitable<void> accept_loop(tcp::acceptor& a, listener_info info);
  awaitable<bool> shed_one(tcp::acceptor& a, const listener_info& info, error_code why);
  void make_resolver();

  server& srv_;
  unsigned index_;
  net::io_context io_{1};
  net::executor_work_guard<net::io_context::executor_type> guard_;
  std::shared_ptr<const config::snapshot> snap_;
  std::shared_ptr<const rule_limits> limits_;
  std::shared_ptr<const self_set> self_;
  std::shared_ptr<const state::grant_view> grants_;
  monitor::access_log* log_;
  std::unique_ptr<dns::resolver> resolver_;
  pipe_pool pipes_;
  buffer_pool buffers_;
  upstream_pool upstreams_;
  std::vector<std::pair<std::unique_ptr<tcp::acceptor>, listener_info>> acceptors_;
  spare_descriptor spare_;     // freed at the descriptor limit to refuse a newcomer (accept_guard.hpp)
  std::string overload_503_;  // the whole 503 `overloaded` response, built once
  conn_entry head_;  // sentinel of the registry list
  std::atomic<size_t> active_{0};
  bool draining_ = false;
  std::thread thread_;
};

}  // namespace egressd::proxy
