#include "proxy/upstream.hpp"

#include <vector>

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

awaitable<dial_result> dial(worker& w, const config::snapshot& snap, std::string_view host,
                            const acl::ip_address* literal, uint16_t port, beast::tcp_stream& out) {
  dial_result r;
  std::vector<acl::ip_address> addrs;
  if (literal) {
    addrs.push_back(*literal);
  } else if (auto it = snap.hosts.find(host); it != snap.hosts.end()) {
    addrs = it->second;
  } else {
    dns::result res = co_await w.resolver().resolve(std::string(host));
    auto& m = w.srv().metrics();
    using dr = monitor::metrics::dns_result;
    switch (res.st) {
      case dns::status::ok: m.dns_query(w.index(), res.from_cache ? dr::cached : dr::ok); break;
      case dns::status::nxdomain: m.dns_query(w.index(), dr::nxdomain); break;
      case dns::status::timeout: m.dns_query(w.index(), dr::timeout); break;
      default: m.dns_query(w.index(), dr::failure); break;
    }
    switch (res.st) {
      case dns::status::ok:
        addrs = std::move(res.addresses);
        break;
      case dns::status::timeout:
        r.why = acl::reason::dns_timeout;
        co_return r;
      default:
        r.why = acl::reason::dns_failure;
        co_return r;
    }
  }

  std::vector<tcp::endpoint> eps;
  eps.reserve(addrs.size());
  bool saw_self = false;
  for (const auto& a : addrs) {
    if (w.srv().is_self(a, port)) {
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
    r.why = saw_self && r.refused_address.empty() ? acl::reason::self
            : addrs.empty()                        ? acl::reason::dns_failure
                                                   : acl::reason::non_public_address;
    co_return r;
  }

  error_code ec;
  const auto started = std::chrono::steady_clock::now();
  out.expires_after(snap.timeout.connect);
  r.remote = co_await out.async_connect(eps, net::redirect_error(use_awaitable, ec));
  out.expires_never();
  w.srv().metrics().upstream_connect(
      w.index(), std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (ec) {
    r.why = ec == beast::error::timeout ? acl::reason::upstream_timeout : acl::reason::upstream_unreachable;
    co_return r;
  }
  error_code ignore;
  out.socket().set_option(tcp::no_delay(true), ignore);
  co_return r;
}

}  // namespace egressd::proxy
