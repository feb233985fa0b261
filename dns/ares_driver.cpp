#include "dns/ares_driver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace egressd::dns {

namespace asio = boost::asio;
using std::chrono::milliseconds;

struct ares_driver::watch {
  watch(asio::io_context& io, ares_socket_t f) : desc(io), fd(f) {}
  asio::posix::stream_descriptor desc;
  ares_socket_t fd;
  bool want_read = false, want_write = false;
  bool read_pending = false, write_pending = false;
  bool active = true;  // false once c-ares closed the fd or the driver is gone
};

namespace {

constexpr int k_tries = 3;  // per server; c-ares doubles the timeout each round
constexpr milliseconds k_min_try{20};
constexpr int k_rcvbuf = 1 << 20;

void library_init_once() {
  // ares_library_init is not thread-safe; workers construct resolvers
  // concurrently. On Linux it cannot fail in a way we could recover from.
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

std::string strip_brackets(const std::string& s) {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') return s.substr(1, s.size() - 2);
  return s;
}

// Number of servers c-ares would take from resolv.conf (at least 1: c-ares
// falls back to 127.0.0.1).
int default_server_count() {
  ares_channel probe = nullptr;
  ares_options o{};
  o.lookups = const_cast<char*>("b");
  if (ares_init_options(&probe, &o, ARES_OPT_LOOKUPS) != ARES_SUCCESS) return 1;
  int n = 0;
  ares_addr_port_node* list = nullptr;
  if (ares_get_servers_ports(probe, &list) == ARES_SUCCESS) {
    for (auto* p = list; p; p = p->next) ++n;
    ares_free_data(list);
  }
  ares_destroy(probe);
  return std::max(n, 1);
}

}  // namespace

ares_driver::ares_driver(asio::io_context& io,
                         const std::vector<std::pair<std::string, uint16_t>>& servers,
                         milliseconds budget)
    : io_(io), timer_(io), alive_(this, [](ares_driver*) {}) {
  library_init_once();

  // Parse servers first so a bad address fails before c-ares is touched.
  std::vector<ares_addr_port_node> nodes(servers.size());
  for (size_t i = 0; i < servers.size(); ++i) {
    const std::string host = strip_brackets(servers[i].first);
    auto& n = nodes[i];
    std::memset(&n, 0, sizeof n);
    if (inet_pton(AF_INET, host.c_str(), &n.addr.addr4) == 1) {
      n.family = AF_INET;
    } else if (inet_pton(AF_INET6, host.c_str(), &n.addr.addr6) == 1) {
      n.family = AF_INET6;
    } else {
      throw std::runtime_error("dns: resolver address is not an IP address: " + servers[i].first);
    }
    const int port = servers[i].second == 0 ? 53 : servers[i].second;
    n.udp_port = port;
    n.tcp_port = port;
    n.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
  }

  // Fit every try in the budget: with n servers and k tries c-ares waits
  // n * t * (2^k - 1) in total before giving up.
  const int nservers = servers.empty() ? default_server_count() : static_cast<int>(servers.size());
  tries_ = k_tries;
  try_timeout_ = std::max(k_min_try, budget / (nservers * ((1 << k_tries) - 1)));

  ares_options o{};
  int mask = 0;
  o.lookups = const_cast<char*>("b");  // DNS only: the caller owns the hosts table
  mask |= ARES_OPT_LOOKUPS;
  o.domains = nullptr;  // no search domains: resolve exactly the checked name
  o.ndomains = 0;
  mask |= ARES_OPT_DOMAINS;
  o.timeout = static_cast<int>(try_timeout_.count());
  mask |= ARES_OPT_TIMEOUTMS;
  o.tries = tries_;
  mask |= ARES_OPT_TRIES;
  // One UDP socket per server carries every answer: room for bursts of
  // hundreds while the worker is busy (the kernel caps it at rmem_max).
  o.socket_receive_buffer_size = k_rcvbuf;
  mask |= ARES_OPT_SOCK_RCVBUF;
  o.sock_state_cb = &ares_driver::sock_state_thunk;
  o.sock_state_cb_data = this;
  mask |= ARES_OPT_SOCK_STATE_CB;
  if (int rc = ares_init_options(&channel_, &o, mask); rc != ARES_SUCCESS) {
    throw std::runtime_error(std::string("dns: c-ares init failed: ") + ares_strerror(rc));
  }
  if (!nodes.empty()) {
    if (int rc = ares_set_servers_ports(channel_, nodes.data()); rc != ARES_SUCCESS) {
      ares_destroy(channel_);
      channel_ = nullptr;
      throw std::runtime_error(std::string("dns: c-ares servers: ") + ares_strerror(rc));
    }
  }
}

ares_driver::~ares_driver() {
  // Pending callbacks fire here with ARES_EDESTRUCTION; c-ares closes its
  // sockets and tells us through sock_state_cb (which releases them).
  ares_destroy(channel_);
  channel_ = nullptr;
  drop_all_watches();
  timer_.cancel();
  alive_.reset();
}

void ares_driver::getaddrinfo(const std::string& name, ares_addrinfo_callback cb, void* arg) {
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  // The resolver orders v4 then v6 itself; NOSORT also spares c-ares the
  // RFC 6724 sort, which opens a UDP socket per address.
  hints.ai_flags = ARES_AI_NOSORT;
  ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, cb, arg);
  arm_timer();
}

void ares_driver::cancel_all() {
  ares_cancel(channel_);
  drop_all_watches();
  timer_.cancel();
  timer_armed_ = false;
}

void ares_driver::sock_state_thunk(void* data, ares_socket_t fd, int readable, int writable) {
  static_cast<ares_driver*>(data)->on_sock_state(fd, readable != 0, writable != 0);
}

void ares_driver::on_sock_state(ares_socket_t fd, bool readable, bool writable) {
  auto it = watches_.find(fd);
  if (!readable && !writable) {
    // c-ares is about to close fd: stop watching and give it back untouched.
    if (it != watches_.end()) {
      auto& w = *it->second;
      w.active = false;
      (void)w.desc.release();  // cancels pending waits; never closes
      watches_.erase(it);
    }
    return;
  }
  std::shared_ptr<watch> w;
  if (it != watches_.end()) {
    w = it->second;
  } else {
    w = std::make_shared<watch>(io_, fd);
    boost::system::error_code ec;
    w->desc.assign(fd, ec);
    // On failure we cannot watch the fd; c-ares' own timeout ends the query.
    if (ec) return;
    watches_.emplace(fd, w);
  }
  w->want_read = readable;
  w->want_write = writable;
  start_waits(w);
}

void ares_driver::start_waits(const std::shared_ptr<watch>& w) {
  std::weak_ptr<ares_driver> alive = alive_;
  if (w->want_read && !w->read_pending) {
    w->read_pending = true;
    w->desc.async_wait(asio::posix::descriptor_base::wait_read,
                       [alive, w](const boost::system::error_code& ec) {
                         w->read_pending = false;
                         auto self = alive.lock();
                         if (!self || !w->active || ec == asio::error::operation_aborted) return;
                         self->on_ready(w, true);
                       });
  }
  if (w->want_write && !w->write_pending) {
    w->write_pending = true;
    w->desc.async_wait(asio::posix::descriptor_base::wait_write,
                       [alive, w](const boost::system::error_code& ec) {
                         w->write_pending = false;
                         auto self = alive.lock();
                         if (!self || !w->active || ec == asio::error::operation_aborted) return;
                         self->on_ready(w, false);
                       });
  }
}

void ares_driver::on_ready(const std::shared_ptr<watch>& w, bool readable) {
  if (readable ? w->want_read : w->want_write) {
    // May close this or other sockets and fire query callbacks.
    ares_process_fd(channel_, readable ? w->fd : ARES_SOCKET_BAD,
                    readable ? ARES_SOCKET_BAD : w->fd);
  }
  if (w->active) start_waits(w);
  arm_timer();
}

void ares_driver::drop_all_watches() {
  for (auto& [fd, w] : watches_) {
    w->active = false;
    (void)w->desc.release();
  }
  watches_.clear();
}

void ares_driver::arm_timer() {
  if (!channel_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {  // no queries pending
    if (timer_armed_) {
      timer_.cancel();
      timer_armed_ = false;
    }
    return;
  }
  const auto when = std::chrono::steady_clock::now() + std::chrono::seconds(tv.tv_sec) +
                    std::chrono::microseconds(tv.tv_usec);
  // A pending wait that fires earlier is fine: on_timer re-arms.
  if (timer_armed_ && timer_.expiry() <= when) return;
  timer_.expires_at(when);  // a wait still pending completes as aborted
  timer_armed_ = true;
  std::weak_ptr<ares_driver> alive = alive_;
  timer_.async_wait([alive](const boost::system::error_code& ec) {
    auto self = alive.lock();
    if (!self || ec == asio::error::operation_aborted) return;
    self->on_timer();
  });
}

void ares_driver::on_timer() {
  timer_armed_ = false;
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retries and timeouts
  arm_timer();
}

}  // namespace egressd::dns
