#pragma once
// The one way egressd opens a TCP listening socket (proxy, transparent and
// forward listeners, admin endpoint, DNS-over-TCP): open, SO_REUSEADDR,
// optionally SO_REUSEPORT (one acceptor per worker), bind, listen. Called on
// the main thread before the owning io_context runs.

#include <memory>

#include "proxy/asio.hpp"

namespace egressd::proxy {

std::unique_ptr<tcp::acceptor> open_acceptor(net::io_context& io, const tcp::endpoint& ep, bool reuseport,
                                             int backlog, error_code& ec);

}  // namespace egressd::proxy
