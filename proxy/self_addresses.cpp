#include "proxy/self_addresses.hpp"

#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

#include <fmt/format.h>

#include "acl/address_class.hpp"

namespace egressd::proxy {
namespace {

bool addr_less(const acl::ip_address& a, const acl::ip_address& b) {
  if (a.family != b.family) return a.family < b.family;
  return a.bytes < b.bytes;
}

void sort_unique(std::vector<acl::ip_address>& v) {
  for (auto& a : v) a = a.unmapped();
  std::sort(v.begin(), v.end(), addr_less);
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

constexpr auto poll_period = std::chrono::milliseconds(500);

}  // namespace

self_set::self_set(std::vector<acl::ip_address> addrs, std::vector<uint16_t> ports)
    : addrs_(std::move(addrs)), ports_(std::move(ports)) {
  sort_unique(addrs_);
  std::sort(ports_.begin(), ports_.end());
  ports_.erase(std::unique(ports_.begin(), ports_.end()), ports_.end());
}

bool self_set::contains(const acl::ip_address& a, uint16_t port) const {
  if (!std::binary_search(ports_.begin(), ports_.end(), port)) return false;
  const acl::ip_address u = a.unmapped();
  // All of 127/8 and ::1 reach a wildcard listener, as does the unspecified
  // address (0.0.0.0, ::) on Linux.
  const auto c = acl::classify(u);
  if (c == acl::address_class::loopback || c == acl::address_class::unspecified) return true;
  if (u.is_v4() && u.v4_host_order() == 0) return true;
  return std::binary_search(addrs_.begin(), addrs_.end(), u, addr_less);
}

bool read_interface_addresses(std::vector<acl::ip_address>* out, std::string* error) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    *error = fmt::format("cannot list the interface addresses: {}", std::strerror(errno));
    return false;
  }
  out->clear();
  for (const ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      out->push_back(acl::ip_address::v4(ntohl(sin->sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      std::array<uint8_t, 16> b;
      std::memcpy(b.data(), sin6->sin6_addr.s6_addr, 16);
      out->push_back(acl::ip_address::v6(b));
    }
  }
  ::freeifaddrs(list);
  sort_unique(*out);
  return true;
}

std::unique_ptr<address_watch> address_watch::start(std::vector<acl::ip_address> extra,
                                                     std::vector<uint16_t> ports, on_change cb,
                                                     std::string* error) {
  std::unique_ptr<address_watch> w(new address_watch());
  w->extra_ = std::move(extra);
  w->ports_ = std::move(ports);
  w->cb_ = std::move(cb);
  // Subscribe before the first read: an address added in between then
  // arrives as a notification.
  using raw = net::generic::raw_protocol;
  auto s = std::make_unique<raw::socket>(w->io_);
  error_code ec;
  s->open(raw(AF_NETLINK, NETLINK_ROUTE), ec);
  if (!ec) {
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
    s->bind(raw::endpoint(&sa, sizeof sa, NETLINK_ROUTE), ec);
  }
  if (!ec) s->non_blocking(true, ec);
  if (!ec) w->netlink_ = std::move(s);

  std::vector<acl::ip_address> now;
  if (!read_interface_addresses(&now, error)) return nullptr;
  w->last_ = now;
  w->initial_ = w->build(std::move(now));
  auto report = [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "egressd: the local-address watch stopped by an exception\n");
  };
  if (w->netlink_)
    net::co_spawn(w->io_, w->watch_netlink(), report);
  else
    net::co_spawn(w->io_, w->watch_poll(), report);
  w->thread_ = std::thread([p = w.get()] { p->io_.run(); });
  return w;
}

address_watch::~address_watch() {
  net::post(io_, [this] {
    error_code ec;
    if (netlink_) netlink_->close(ec);
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const self_set> address_watch::build(std::vector<acl::ip_address> addrs) const {
  addrs.insert(addrs.end(), extra_.begin(), extra_.end());
  return std::make_shared<const self_set>(std::move(addrs), ports_);
}

// Watch thread: re-read; publish only a real change. A failed read keeps the
// previous set (the addresses it lists are still refused: fail closed).
void address_watch::refresh() {
  std::vector<acl::ip_address> now;
  std::string error;
  if (!read_interface_addresses(&now, &error)) {
    std::fprintf(stderr, "egressd: %s (keeping the previous set for the self check)\n", error.c_str());
    return;
  }
  if (now == last_) return;
  last_ = now;
  cb_(build(std::move(now)));
}

awaitable<void> address_watch::watch_netlink() {
  char buf[8192];  // in the coroutine frame; the contents are never parsed
  for (;;) {
    error_code ec;
    co_await netlink_->async_wait(net::socket_base::wait_read, net::redirect_error(use_awaitable, ec));
    if (ec) co_return;  // closed by the destructor
    // Drain every queued notification (ENOBUFS = the kernel dropped some:
    // just as good a reason to re-read), then re-read once.
    for (;;) {
      const ssize_t n = ::recv(netlink_->native_handle(), buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == ENOBUFS) continue;
      if (n <= 0) break;
    }
    refresh();
  }
}

awaitable<void> address_watch::watch_poll() {
  net::steady_timer t(io_);
  for (;;) {
    t.expires_after(poll_period);
    error_code ec;
    co_await t.async_wait(net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    refresh();
  }
}

}  // namespace egressd::proxy
