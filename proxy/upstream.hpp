#pragma once
// Resolving and connecting to an upstream: resolve once (static hosts table,
// then DNS), check every address, connect to exactly the checked addresses
// in turn within `timeout connect`. No second lookup, so DNS rebinding gains
// nothing. Runs on the caller's worker.

#include <string>
#include <string_view>

#include "acl/ip_address.hpp"
#include "acl/policy.hpp"
#include "proxy/asio.hpp"
#include "proxy/worker.hpp"

namespace egressd::proxy {

struct dial_result {
  acl::reason why = acl::reason::none;  // none: connected
  tcp::endpoint remote;                 // when connected
  std::string refused_address;          // the first refused address (non_public_address)
  bool via_parent = false;              // connected to `upstream_proxy`, not the destination
};

// host: normalised name (resolved) — ignored when literal is non-null, in
// which case that address alone is used. The caller has already decided the
// name (or literal) is allowed. With `upstream_proxy` configured, connects to
// the parent instead (trusted config: its address is not checked, and the
// destination name is left to the parent to resolve).
awaitable<dial_result> dial(worker& w, const config::snapshot& snap, std::string_view host,
                            const acl::ip_address* literal, uint16_t port, beast::tcp_stream& out);

// Connects to a trusted endpoint from the config (forward targets, the
// parent proxy): resolved like any name, but its addresses are not subject to
// the non-public checks.
awaitable<dial_result> dial_trusted(worker& w, const config::snapshot& snap, const config::endpoint& target,
                                    beast::tcp_stream& out);

std::string endpoint_string(const tcp::endpoint& ep);

acl::ip_address to_acl_address(const net::ip::address& a);
net::ip::address to_asio_address(const acl::ip_address& a);

}  // namespace egressd::proxy
