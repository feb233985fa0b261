#pragma once
// One `dns_listen ADDR:PORT [answer=IP]` (SPEC): a filtering DNS responder
// for agents that ignore proxy settings. A UDP socket and a TCP acceptor
// (RFC 7766: 2-byte length prefix, several queries per connection) on the
// same address and port, served by the listener's own thread and io_context
// (like admin_server) so DNS never competes with a worker. The wire format is
// dns/responder_codec; nothing is ever resolved upstream.
//
// A name is allowed when the current snapshot's policy allows it, for this
// client (group=), on at least one port the transparent listeners serve:
// decision_ports() = 80 and 443 (the http/sni defaults, the allow default)
// plus the port= of every sni/http listener: what a transparent listener
// judges a connection by when there is no other original destination. An
// agent that got our A record connects to egressd itself and is judged on
// one of those ports by the listener (which still enforces the exact port);
// a name allowed only on other ports (say 5432) could not be reached that
// way, so it gets NXDOMAIN. In `mode report` a name the allowlist
// would deny is answered too (the allowlist only reports there; the sni/http
// listener then logs it as `report`). A live grant (publish_grants) for
// the name, this client's address and one of those ports counts as allowed
// too, unless a deny rule names it (as in session::judge).
//
// Thread contract: start() and the destructor run on the owning (main)
// thread; publish() and publish_grants() may be called from any thread and post to
// the listener's thread, which alone reads it. Each answer is counted in
// egressd_dns_queries_total{result} on metrics' shared shard: A record ->
// ok, NODATA -> nodata, NXDOMAIN -> denied, anything malformed, refused or
// dropped -> failure. The answer address is fixed at start (listener changes
// need a restart, as for `listen`).

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "proxy/asio.hpp"
#include "state/grant_view.hpp"

#include <boost/asio/ip/udp.hpp>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "dns/responder_codec.hpp"

namespace egressd::monitor {
class metrics;
}

namespace egressd::proxy {

using udp = boost::asio::ip::udp;

class dns_listener {
 public:
  // A TCP client idle this long (or slow to send a whole query) is closed.
  static constexpr std::chrono::seconds tcp_idle{10};
  // TCP connections served at once; more are accepted and closed at once.
  static constexpr int max_tcp_conns = 256;

  // Binds UDP and TCP on spec.addr (port 0: one free port for both). On
  // failure returns null with a plain sentence in *error. `m` must outlive
  // the listener.
  static std::unique_ptr<dns_listener> start(const config::dns_listen_spec& spec,
                                             std::shared_ptr<const config::snapshot> snap, monitor::metrics& m,
                                             std::string* error);
  ~dns_listener();
  dns_listener(const dns_listener&) = delete;
  dns_listener& operator=(const dns_listener&) = delete;

  // Any thread: later queries are decided by `snap`.
  void publish(std::shared_ptr<const config::snapshot> snap);
  // Any thread: a granted name is answered as an allowed one.
  void publish_grants(std::shared_ptr<const state::grant_view> grants);

  tcp::endpoint local() const { return local_; }  // same port for UDP

  // The ports a name must be allowed on for this snapshot (sorted, unique).
  static std::vector<uint16_t> decision_ports(const config::snapshot& s);

 private:
  struct view {
    std::shared_ptr<const config::snapshot> snap;
    std::vector<uint16_t> ports;
  };
  static std::shared_ptr<const view> make_view(std::shared_ptr<const config::snapshot> snap);

  explicit dns_listener(monitor::metrics& m) : metrics_(m) {}
  bool bind(const net::ip::address& addr, uint16_t port, error_code& ec);
  // Listener thread: the reply to one message into out; 0 = send nothing.
  size_t answer(std::span<const uint8_t> msg, const net::ip::address& from, dns::response_buffer& out);
  bool allowed(std::string_view name, const acl::ip_address& client) const;
  awaitable<void> udp_loop();
  awaitable<void> accept_loop();
  awaitable<void> serve_tcp(tcp::socket s);

  // Declared before io_ so they outlive the coroutine frames io_'s
  // destructor destroys.
  monitor::metrics& metrics_;
  std::array<uint8_t, 4> answer_{};
  std::shared_ptr<const view> view_;  // listener thread only (after start)
  std::shared_ptr<const state::grant_view> grants_;  // likewise; null = none
  int tcp_conns_ = 0;

  net::io_context io_{1};
  std::unique_ptr<udp::socket> udp_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  tcp::endpoint local_;
  std::thread thread_;
};

}  // namespace egressd::proxy
