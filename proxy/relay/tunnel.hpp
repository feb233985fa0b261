#pragma once
// Bidirectional tunnel relay with splice(2) through pooled pipes.
// Runs on the worker thread that owns both sockets; the pipe pool is that
// worker's (not thread-safe). An idle tunnel holds no pipe and no buffer:
// a pipe is taken from the pool when data is ready and returned as soon as it
// is empty again.

#include <chrono>
#include <cstdint>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "acl/bandwidth_limiter.hpp"
#include "proxy/relay/pipe_pool.hpp"

namespace egressd::proxy {

enum class relay_end : uint8_t {
  done,           // both directions reached EOF, passed on; both sockets closed
  idle_timeout,   // no byte either way for `idle`
  client_error,   // reset/error on the client side
  upstream_error, // reset/error on the upstream side
  closed,         // a socket was closed from outside (drain/shutdown)
};
const char* to_string(relay_end e);

struct relay_result {
  uint64_t bytes_up = 0;    // client -> upstream, including first_up
  uint64_t bytes_down = 0;  // upstream -> client, including first_down
  relay_end end = relay_end::done;
};

// Writes first_up to upstream and first_down to the client, then relays both
// ways until both directions are done. EOF from one side -> shutdown(SHUT_WR)
// on the other, but for the second EOF: then both sockets are closed (which
// sends that FIN) before the relay completes. An error on either side or the
// idle timeout closes both.
// Both sockets must be open, connected and owned by the calling worker; they
// are switched to O_NONBLOCK. first_up/first_down must stay valid until the
// relay completes (they are written by the direction coroutines).
//
// Cancel (drain) by closing either socket from the worker's thread: the relay
// closes the other one and completes with `closed`. A close is seen at once
// while a direction waits on that socket, else at the next watchdog tick
// (idle/4). Idle time is checked by that watchdog (one timer per tunnel,
// re-armed every idle/4, not per splice), so a timeout fires between `idle`
// and 1.25 * `idle` after the last byte.
// Precondition: idle > 0.
//
// With first_up empty, the upstream's handshake ACK may still be pending
// (connect_endpoints() dials with quick-ACK off so that it rides on the
// first bytes): if no byte has gone up after ack_grace, the relay sends it
// on its own, so a server that speaks first (SMTP, SSH) waits at most that.
//
// bw (optional, shared with other tunnels of the same rule, thread-safe):
// each direction takes at most what the limiter grants per step and waits
// for budget otherwise; splice stays zero-copy.
//
// Memory of an idle tunnel: relay()'s frame (the shared state), two
// direction frames with their co_spawn entry frames, three pending waits; no
// pipe, no buffer. Measured ~3.3 KiB of heap (relay_scale_test).
//
// SIGPIPE: splice(2) into a reset socket raises it; pipe_pool's constructor
// sets it to SIG_IGN unless the program installed a disposition of its own.
inline constexpr std::chrono::milliseconds ack_grace{5};

boost::asio::awaitable<relay_result> relay(boost::asio::ip::tcp::socket& client,
                                           boost::asio::ip::tcp::socket& upstream,
                                           std::string_view first_up,
                                           std::string_view first_down,
                                           std::chrono::milliseconds idle, pipe_pool& pipes,
                                           acl::bandwidth_limiter* bw = nullptr);

}  // namespace egressd::proxy
