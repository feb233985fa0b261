#pragma once
// Entry point of one client connection on its worker. The coroutine owns the
// client socket (and any upstream socket it opens) for the connection's
// whole life; it pins the config snapshot current when it started.

#include "proxy/asio.hpp"
#include "proxy/worker.hpp"

namespace egressd::proxy {

awaitable<void> run_session(tcp::socket client, tcp::endpoint peer, listener_info info, worker& w);

}  // namespace egressd::proxy
