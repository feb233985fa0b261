#pragma once
// The admin endpoint (SPEC "Admin endpoint"): GET /metrics (Prometheus text),
// /healthz, /readyz, /alerts (JSON), the /v1/ API (admin_api), 404
// elsewhere. It runs on its own thread and io_context so a scrape never
// competes with a worker; it reads only thread-safe state (metrics registry,
// anomaly detector, atomics), and the admin_api it is given, which it calls
// only from its thread (requests, and tick() about once a second).
// `admin ... allow=CIDR,...`: a client outside those networks is closed right
// after accept, before a byte is read, and counted (handlers::refused). The
// allow list lives on the admin thread; set_allow() posts a new one there.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "acl/ip_address.hpp"
#include "proxy/asio.hpp"

namespace egressd::proxy {

class admin_api;

class admin_server {
 public:
  struct handlers {
    std::function<std::string()> metrics;  // Prometheus text
    std::function<std::string()> alerts;   // JSON array
    std::function<bool()> ready;
    std::function<void()> refused;  // a client outside allow= was closed
    admin_api* api = nullptr;  // /v1/ (null: 404 there); must outlive the server
  };
  // Binds ADDR:PORT; on failure returns null with a sentence in *error.
  // `allow` empty = every client is served.
  static std::unique_ptr<admin_server> start(const tcp::endpoint& ep, std::vector<acl::cidr> allow, handlers h,
                                             std::string* error);
  ~admin_server();
  tcp::endpoint local() const { return local_; }
  // Any thread: the allow list of a reloaded config (applies to new connections).
  void set_allow(std::vector<acl::cidr> allow);
  // Any thread: runs fn on the admin thread.
  void post(std::function<void()> fn);

 private:
  admin_server() = default;
  awaitable<void> accept_loop();
  awaitable<void> serve(tcp::socket s);
  bool admitted(const tcp::socket& s) const;
  awaitable<void> tick_loop();

  net::io_context io_{1};
  std::unique_ptr<tcp::acceptor> acceptor_;
  tcp::endpoint local_;
  handlers h_;
  std::vector<acl::cidr> allow_;  // admin thread only (after start)
  std::thread thread_;
};

}  // namespace egressd::proxy
