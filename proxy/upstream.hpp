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
};

// host: normalised name (resolved) — ignored when literal is non-null, in
// which case that address alone is used. The caller has already decided the
// name (or literal) is allowed.
awaitable<dial_result> dial(worker& w, const config::snapshot& snap, std::string_view host,
                            const acl::ip_address* literal, uint16_t port, beast::tcp_stream& out);

acl::ip_address to_acl_address(const net::ip::address& a);
net::ip::address to_asio_address(const acl::ip_address& a);

}  // namespace egressd::proxy
