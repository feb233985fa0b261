// Transparent listeners and plain forwards (session::run_sni, run_forward):
//   listen ... mode=sni  TLS without proxy settings: the ClientHello SNI is
//                        the destination, judged like a CONNECT host.
//   forward LISTEN TARGET  plain TCP to a fixed, trusted target.
// The plain-HTTP transparent mode (mode=http) shares session::forward_http.

#include <netinet/in.h>
#include <sys/socket.h>

#include "proxy/server.hpp"
#include "proxy/session_impl.hpp"
#include "proxy/upstream.hpp"

namespace egressd::proxy {

using acl::reason;

namespace {
// From <linux/netfilter_ipv4.h> / <linux/netfilter_ipv6/ip6_tables.h>, which
// clash with glibc's <netinet/in.h>.
constexpr int so_original_dst = 80;
constexpr int ip6t_so_original_dst = 80;
}  // namespace

// The port the client meant to reach: iptables REDIRECT keeps it as the
// original destination; without one (DNS-steered clients connect to the
// listener itself) it is the listener's port= or the protocol default. The
// original address is never used: the name decides, and is resolved here.
uint16_t session::destination_port(uint16_t fallback) const {
  const int fd = const_cast<beast::tcp_stream&>(client_).socket().native_handle();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  uint16_t port = 0;
  if (info_.local.address().is_v4()) {
    if (::getsockopt(fd, SOL_IP, so_original_dst, &ss, &len) == 0 && ss.ss_family == AF_INET)
      port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  } else if (::getsockopt(fd, SOL_IPV6, ip6t_so_original_dst, &ss, &len) == 0 && ss.ss_family == AF_INET6) {
    port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  if (port != 0 && port != info_.local.port()) return port;
  return info_.upstream_port ? info_.upstream_port : fallback;
}

awaitable<void> session::run_sni() {
  start_ = std::chrono::steady_clock::now();
  monitor::access_record rec;
  rec.kind = monitor::request_kind::sni;
  const uint16_t port = destination_port(443);
  rec.port = port;

  tls_gate tls = gate();
  tls_gate::hello h = co_await tls.read_client_hello();
  if (h.has_sni) rec.sni = h.sni;
  rec.ech = h.ech;
  // Without an SNI there is nothing to judge: never guess. The hello's own
  // rules (bad_sni, ech) come before the name is judged or resolved.
  const reason bad = tls.judge_hello(h, {}, true);
  if (bad != reason::none) {
    rec.decision = bad == reason::client_closed ? monitor::request_decision::allow : monitor::request_decision::deny;
    rec.reason = bad;
    finish(rec);
    co_return;
  }
  verdict v = judge(h.sni, false, port, {});
  note_verdict(v, rec);
  // An SNI is a name, never an address: IP-literal SNIs are refused outright.
  if (v.literal) v.why = reason::ip_literal;
  if (v.why == reason::none && blocked()) v.why = reason::anomaly_block;
  uint64_t retry_after = 0;
  if (v.why == reason::none) v.why = admit(v, &retry_after);
  if (v.why != reason::none) {
    // A TLS client cannot read an HTTP refusal: the connection is closed.
    rec.decision = monitor::request_decision::deny;
    rec.reason = v.why;
    finish(rec);
    co_return;
  }

  beast::tcp_stream up(w_.io());
  upstream_guard guard(reg_, up);
  dial_result dr = co_await dial_tunnel(v, port, up, rec);
  if (dr.why != reason::none) {
    rec.decision = monitor::request_decision::allow;
    rec.reason = dr.why;
    if (dr.why == reason::non_public_address || dr.why == reason::self) rec.decision = monitor::request_decision::deny;
    finish(rec);
    co_return;
  }
  if (v.reported == reason::none) rec.decision = monitor::request_decision::allow;
  // Every ClientHello of the handshake is judged (a second one after a
  // HelloRetryRequest must name the same host).
  const reason late = co_await tls.watch_first_flight(up, h, rec);
  if (late != reason::none) {
    if (is_hello_refusal(late)) rec.decision = monitor::request_decision::deny;
    rec.reason = late;
    finish(rec);
    co_return;
  }
  hand_off(up, bandwidth(v), rec);
}

awaitable<void> session::run_forward() {
  start_ = std::chrono::steady_clock::now();
  monitor::access_record rec;
  rec.kind = monitor::request_kind::forward;
  rec.host = info_.target.host;
  rec.port = info_.target.port;
  if (blocked()) {
    rec.decision = monitor::request_decision::deny;
    rec.reason = reason::anomaly_block;
    finish(rec);
    co_return;
  }
  beast::tcp_stream up(w_.io());
  upstream_guard guard(reg_, up);
  // The target is the operator's own (e.g. host.docker.internal): trusted
  // config, so its address is not subject to the non-public checks.
  dial_result dr = co_await dial_trusted(w_, *snap_, info_.target, up);
  if (dr.why != reason::none) {
    rec.decision = monitor::request_decision::allow;
    rec.reason = dr.why;
    finish(rec);
    co_return;
  }
  rec.upstream = endpoint_string(dr.remote);
  rec.decision = monitor::request_decision::allow;
  hand_off(up, nullptr, rec);
}

}  // namespace egressd::proxy
