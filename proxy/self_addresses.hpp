#pragma once
// What "egressd itself" is, for the `self` refusal: every port egressd
// listens on (proxy and transparent listeners, forwards, admin, DNS over UDP
// and TCP) on every address of the machine — each address of each interface
// (getifaddrs: IPv4 and IPv6, link-local included), all of loopback, the
// unspecified address, and the addresses listeners are bound to.
//
// self_set is an immutable value: built on one thread, then read by any
// number of threads without locks (each worker holds its own shared_ptr to
// the current one, replaced by a post to the worker).
//
// address_watch keeps it current: a netlink socket subscribed to
// RTM_NEWADDR/RTM_DELADDR on its own thread; every notification (or an
// overrun) re-reads the interface addresses and, when they changed, hands a
// new self_set to the callback. Netlink rather than polling: an address
// counts from the moment the kernel reports it, not up to a period later,
// and an idle machine costs no wake-ups. Where netlink cannot be opened
// (a seccomp profile that forbids it), it falls back to re-reading every
// 500 ms. The callback runs on the watch thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "acl/ip_address.hpp"
#include "proxy/asio.hpp"

#include <boost/asio/generic/raw_protocol.hpp>

namespace egressd::proxy {

class self_set {
 public:
  self_set(std::vector<acl::ip_address> addrs, std::vector<uint16_t> ports);
  // Any thread. a:port reaches egressd: port is one of its ports and a is an
  // address of this machine (IPv4-mapped addresses judged as IPv4).
  bool contains(const acl::ip_address& a, uint16_t port) const;
  const std::vector<acl::ip_address>& addresses() const { return addrs_; }
  const std::vector<uint16_t>& ports() const { return ports_; }

 private:
  std::vector<acl::ip_address> addrs_;  // sorted, unique
  std::vector<uint16_t> ports_;         // sorted, unique
};

// The addresses of every local interface, sorted and unique (unmapped).
// False with errno-based text in *error when getifaddrs fails.
bool read_interface_addresses(std::vector<acl::ip_address>* out, std::string* error);

class address_watch {
 public:
  using on_change = std::function<void(std::shared_ptr<const self_set>)>;
  // Subscribes first, then reads the current addresses, so nothing added in
  // between is missed. `extra` (addresses listeners are bound to) and `ports`
  // go into every set. Null with a sentence in *error when the first read
  // fails.
  static std::unique_ptr<address_watch> start(std::vector<acl::ip_address> extra, std::vector<uint16_t> ports,
                                              on_change cb, std::string* error);
  ~address_watch();  // stops and joins the thread; no callback after it returns
  address_watch(const address_watch&) = delete;
  address_watch& operator=(const address_watch&) = delete;

  std::shared_ptr<const self_set> current() const { return initial_; }  // the set at start()
  bool uses_netlink() const { return netlink_ != nullptr; }

 private:
  address_watch() = default;
  std::shared_ptr<const self_set> build(std::vector<acl::ip_address> addrs) const;
  void refresh();
  awaitable<void> watch_netlink();
  awaitable<void> watch_poll();

  net::io_context io_{1};
  std::unique_ptr<net::generic::raw_protocol::socket> netlink_;
  std::vector<acl::ip_address> extra_;
  std::vector<uint16_t> ports_;
  std::vector<acl::ip_address> last_;  // interface addresses of the last set
  std::shared_ptr<const self_set> initial_;
  on_change cb_;
  std::thread thread_;
};

}  // namespace egressd::proxy
