#include "proxy/upstream.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <vector>

#include <fmt/format.h>

#include "acl/pattern.hpp"

#include "proxy/server.hpp"

namespace egressd::proxy {

acl::ip_address to_acl_address(const net::ip::address& a) {
  if (a.is_v4()) return acl::ip_address::v4(a.to_v4().to_uint());
  return acl::ip_address::v6(a.to_v6().to_bytes());
}

net::ip::address to_asio_address(const acl::ip_address& a) {
  if (a.is_v4()) return net::ip::address_v4(a.v4_host_order());
  return net::ip::address_v6(a.bytes);
}

namespace {

// Resolution shared by dial() and dial_trusted(): static hosts, then DNS.
awaitable<acl::reason> lookup(worker& w, const config::snapshot& snap, std::string_view host,
                              std::vector<acl::ip_address>* addrs) {
  if (auto it = snap.hosts.find(host); it != snap.hosts.end()) {
    *addrs = it->second;
    co_return acl::reason::none;
  }
  dns::result res = co_await w.resolver().resolve(std::string(host));
  auto& m = w.srv().metrics();
  using dr = monitor::metrics::dns_result;
  switch (res.st) {
    case dns::status::ok:
      m.dns_query(w.index(), res.from_cache ? dr::cached : dr::ok);
      *addrs = std::move(res.addresses);
      co_return acl::reason::none;
    case dns::status::nxdomain:
      m.dns_query(w.index(), dr::nxdomain);
      co_return acl::reason::dns_failure;
    case dns::status::timeout:
      m.dns_query(w.index(), dr::timeout);
      co_return acl::reason::dns_timeout;
    default:
      m.dns_query(w.index(), dr::failure);
      co_return acl::reason::dns_failure;
  }
}

// Connects to exactly these endpoints, in turn, within `timeout connect`.
// Each socket is opened here so that quick-ACK mode is off before the
// handshake: the last ACK of the handshake then rides on the first bytes
// egressd sends (a request head, a ClientHello, a parent CONNECT) instead of
// being a packet of its own, and the origin is woken once, for the data.
// Where egressd has nothing to send at once (a tunnel whose client waits for
// the server to speak first), relay() sends that ACK alone after a few
// milliseconds (tunnel.hpp, ack_grace).
awaitable<void> connect_endpoints(worker& w, const config::snapshot& snap, const std::vector<tcp::endpoint>& eps,
                                  beast::tcp_stream& out, dial_result* r) {
  error_code ec = net::error::host_unreachable;
  const auto started = std::chrono::steady_clock::now();
  out.expires_after(snap.timeout.connect);  // one deadline for every attempt
  for (const auto& ep : eps) {
    error_code ignore;
    out.socket().close(ignore);
    out.socket().open(ep.protocol(), ec);
    if (ec) continue;
    const int zero = 0;
    (void)::setsockopt(out.socket().native_handle(), IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
    // Non-blocking as the user sees it, not only inside Asio: the splice
    // paths need O_NONBLOCK and then find it set (one ioctl per socket).
    out.socket().native_non_blocking(true, ec);
    if (ec) continue;
    co_await out.async_connect(ep, net::redirect_error(use_awaitable, ec));
    if (!ec) {
      r->remote = ep;
      break;
    }
    if (ec == beast::error::timeout) break;
  }
  out.expires_never();
  w.srv().metrics().upstream_connect(
      w.index(), std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (ec) {
    error_code ignore;
    out.socket().close(ignore);
    r->why = ec == beast::error::timeout ? acl::reason::upstream_timeout : acl::reason::upstream_unreachable;
    co_return;
  }
  error_code ignore;
  out.socket().set_option(tcp::no_delay(true), ignore);
}

}  // namespace

std::string endpoint_string(const tcp::endpoint& ep) {
  const acl::ip_address a = to_acl_address(ep.address());  // no inet_ntop/printf on the hot path
  if (!a.is_v4()) return fmt::format("[{}]:{}", a.to_string(), ep.port());
  return fmt::format("{}:{}", a.to_string(), ep.port());
}

awaitable<dial_result> dial_trusted(worker& w, const config::snapshot& snap, const config::endpoint& target,
                                    beast::tcp_stream& out) {
  dial_result r;
  std::vector<acl::ip_address> addrs;
  if (auto lit = acl::parse_ip_strict(target.host)) {
    addrs.push_back(*lit);
  } else {
    auto name = acl::normalize_host(target.host);
    r.why = name ? co_await lookup(w, snap, *name, &addrs) : acl::reason::dns_failure;
    if (r.why != acl::reason::none) co_return r;
  }
  std::vector<tcp::endpoint> eps;
  for (const auto& a : addrs) eps.emplace_back(to_asio_address(a.unmapped()), target.port);
  if (eps.empty()) {
    r.why = acl::reason::dns_failure;
    co_return r;
  }
  co_await connect_endpoints(w, snap, eps, out, &r);
  co_return r;
}

awaitable<dial_result> dial(worker& w, const config::snapshot& snap, std::string_view host,
                            const acl::ip_address* literal, uint16_t port, beast::tcp_stream& out) {
  if (snap.upstream_proxy) {
    dial_result r = co_await dial_trusted(w, snap, *snap.upstream_proxy, out);
    r.via_parent = true;
    co_return r;
  }
  dial_result r;
  std::vector<acl::ip_address> addrs;
  if (literal) {
    addrs.push_back(*literal);
  } else {
    r.why = co_await lookup(w, snap, host, &addrs);
    if (r.why != acl::reason::none) co_return r;
  }

  std::vector<tcp::endpoint> eps;
  eps.reserve(addrs.size());
  bool saw_self = false;
  for (const auto& a : addrs) {
    if (w.is_self(a, port)) {
      saw_self = true;
      continue;
    }
    if (!snap.policy->address_allowed(a, port)) {
      if (r.refused_address.empty()) r.refused_address = a.to_string();
      continue;
    }
    eps.emplace_back(to_asio_address(a.unmapped()), port);
  }
  if (eps.empty()) {
    // Any of egressd's own addresses among them: `self` says what happened.
    r.why = saw_self        ? acl::reason::self
            : addrs.empty() ? acl::reason::dns_failure
                            : acl::reason::non_public_address;
    co_return r;
  }
  co_await connect_endpoints(w, snap, eps, out, &r);
  co_return r;
}

}  // namespace egressd::proxy
