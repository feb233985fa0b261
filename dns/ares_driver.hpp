#pragma once
// One c-ares channel driven by one io_context, with no helper thread.
// c-ares reports the sockets it wants watched (ARES_OPT_SOCK_STATE_CB); each
// is wrapped in a posix::stream_descriptor used only to wait for readiness,
// then handed back to ares_process_fd. c-ares owns the fds: the descriptor is
// always release()d, never closed by Asio. One steady_timer follows
// ares_timeout() for retries.
//
// Thread contract: every member call, and every c-ares callback it causes,
// runs on the io_context's single thread. Destroy it before its io_context.
// The destructor calls ares_destroy, which fires every pending callback
// synchronously with ARES_EDESTRUCTION. Handlers still queued in the
// io_context after destruction find the driver gone (weak_ptr) and do nothing.

#include <ares.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace egressd::dns {

class ares_driver {
 public:
  // servers: ("ip" or "[v6]", port; 0 = 53); empty = /etc/resolv.conf.
  // budget: the whole-lookup time; c-ares' per-try timeout and retries are
  // sized to fit in it. Throws std::runtime_error on an unusable server
  // address or a c-ares init failure (start-up only).
  ares_driver(boost::asio::io_context& io,
              const std::vector<std::pair<std::string, uint16_t>>& servers,
              std::chrono::milliseconds budget);
  ~ares_driver();
  ares_driver(const ares_driver&) = delete;
  ares_driver& operator=(const ares_driver&) = delete;

  // A+AAAA lookup through DNS only (no hosts file, no search domains).
  // cb is called exactly once, possibly before this returns.
  void getaddrinfo(const std::string& name, ares_addrinfo_callback cb, void* arg);

  // Fails every pending query with ARES_ECANCELLED (synchronously) and stops
  // watching sockets, so the io_context can run out of work.
  void cancel_all();

  // Per-try timeout and tries chosen for the budget (for tests/diagnostics).
  std::chrono::milliseconds try_timeout() const { return try_timeout_; }
  int tries() const { return tries_; }

 private:
  struct watch;

  static void sock_state_thunk(void* data, ares_socket_t fd, int readable, int writable);
  void on_sock_state(ares_socket_t fd, bool readable, bool writable);
  void start_waits(const std::shared_ptr<watch>& w);
  void on_ready(const std::shared_ptr<watch>& w, bool readable);
  void drop_all_watches();
  void arm_timer();
  void on_timer();

  boost::asio::io_context& io_;
  ares_channel channel_ = nullptr;
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;
  std::chrono::milliseconds try_timeout_{0};
  int tries_ = 0;
  std::unordered_map<ares_socket_t, std::shared_ptr<watch>> watches_;
  // Non-owning handle: queued handlers hold a weak_ptr and bail out once the
  // driver is gone.
  std::shared_ptr<ares_driver> alive_;
};

}  // namespace egressd::dns
