// Tunnel relay: two direction coroutines plus relay()'s own watchdog loop,
// all on the calling worker's thread. The shared state (struct tunnel) lives
// in relay()'s coroutine frame, which outlives both directions: relay() only
// returns after both completion handlers have run.
#include "proxy/relay/tunnel.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <exception>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "proxy/relay/splice_pump.hpp"

namespace egressd::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

const char* to_string(relay_end e) {
  switch (e) {
    case relay_end::done: return "done";
    case relay_end::idle_timeout: return "idle_timeout";
    case relay_end::client_error: return "client_error";
    case relay_end::upstream_error: return "upstream_error";
    case relay_end::closed: return "closed";
  }
  return "unknown";
}

namespace {

// Bytes one direction may deliver per wake-up before it yields to the event
// loop (fairness between the tunnels of a worker). Also the place a bandwidth
// limiter plugs in: it would pass min(turn_budget, tokens) and wait for
// tokens when it has none.
constexpr size_t turn_budget = 1024 * 1024;

struct tunnel {
  tunnel(tcp::socket& c, tcp::socket& u, pipe_pool& pipes, const asio::any_io_executor& ex,
         acl::bandwidth_limiter* limiter)
      : client(c), upstream(u), up(pipes), down(pipes), watchdog(ex), bw(limiter) {
    if (bw) {
      pace_up.emplace(ex);
      pace_down.emplace(ex);
    }
  }

  // First end wins; closing both sockets wakes every pending wait.
  void finish(relay_end why) {
    if (ended) return;
    ended = true;
    end = why;
    error_code ignored;
    client.close(ignored);
    upstream.close(ignored);
    if (pace_up) pace_up->cancel();
    if (pace_down) pace_down->cancel();
  }
  void touch() { last_activity = clock_type::now(); }

  tcp::socket& client;
  tcp::socket& upstream;
  splice_pump up;    // client -> upstream
  splice_pump down;  // upstream -> client
  asio::steady_timer watchdog;  // idle ticks; cancelled when both directions end
  clock_type::time_point last_activity{};
  // bandwidth= pacing (only for rules that have it): a shared byte budget
  // per direction, and a timer per direction to wait for it.
  acl::bandwidth_limiter* bw = nullptr;
  std::optional<asio::steady_timer> pace_up, pace_down;
  int running = 0;
  bool up_eof = false, down_eof = false;  // a direction ended at its source's FIN
  bool ended = false;
  relay_end end = relay_end::done;
};

// Completion of one direction coroutine (never detached).
struct direction_done {
  tunnel* t;
  void operator()(std::exception_ptr e) const {
    if (e) t->finish(relay_end::closed);  // only bad_alloc can get here
    if (--t->running == 0) t->watchdog.cancel();
  }
};

// One direction: first bytes, then wait for readiness and let the pump run.
// Everything that must survive a wait lives in the tunnel, so this frame
// stays small.
asio::awaitable<void> run_direction(tunnel& t, bool upward, std::string_view first) {
  tcp::socket& src = upward ? t.client : t.upstream;
  tcp::socket& dst = upward ? t.upstream : t.client;
  splice_pump& pump = upward ? t.up : t.down;
  const relay_end src_failed = upward ? relay_end::client_error : relay_end::upstream_error;
  const relay_end dst_failed = upward ? relay_end::upstream_error : relay_end::client_error;
  error_code ec;

  if (!first.empty()) {
    const size_t n = co_await asio::async_write(dst, asio::buffer(first.data(), first.size()),
                                                asio::redirect_error(asio::use_awaitable, ec));
    pump.count(n);
    if (t.ended) co_return;
    if (ec) {
      t.finish(!dst.is_open() || ec == asio::error::operation_aborted ? relay_end::closed
                                                                      : dst_failed);
      co_return;
    }
    t.touch();
  }

  bool want_write = false;
  for (;;) {
    tcp::socket& waited = want_write ? dst : src;
    co_await waited.async_wait(want_write ? tcp::socket::wait_write : tcp::socket::wait_read,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (t.ended) co_return;
    if (!src.is_open() || !dst.is_open() || ec == asio::error::operation_aborted) {
      t.finish(relay_end::closed);
      co_return;
    }
    if (ec) {
      t.finish(want_write ? dst_failed : src_failed);
      co_return;
    }
    size_t budget = turn_budget;
    const auto dir = upward ? acl::bandwidth_limiter::direction::up : acl::bandwidth_limiter::direction::down;
    if (t.bw) {
      clock_type::duration wait{};
      budget = t.bw->grant(dir, clock_type::now(), turn_budget, &wait);
      if (budget == 0) {
        asio::steady_timer& pace = upward ? *t.pace_up : *t.pace_down;
        pace.expires_after(wait);
        co_await pace.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (t.ended) co_return;
        t.touch();  // paced, not idle
        continue;
      }
    }
    const uint64_t before = pump.bytes();
    const auto s = pump.step(src.native_handle(), dst.native_handle(), budget);
    if (t.bw) {
      const uint64_t moved = pump.bytes() - before;
      if (moved < budget) t.bw->refund(dir, budget - moved);
    }
    t.touch();
    switch (s) {
      case splice_pump::status::need_read: want_write = false; break;
      case splice_pump::status::need_write: want_write = true; break;
      case splice_pump::status::eof:
        // The FIN goes on now, unless the other way has ended too: relay()
        // then closes both sockets, and close(2) sends it (with any corked
        // bytes) for one syscall less.
        (upward ? t.up_eof : t.down_eof) = true;
        if (!(upward ? t.down_eof : t.up_eof)) dst.shutdown(tcp::socket::shutdown_send, ec);  // peer may be gone
        co_return;
      case splice_pump::status::src_error: t.finish(src_failed); co_return;
      case splice_pump::status::dst_error: t.finish(dst_failed); co_return;
    }
  }
}

}  // namespace

asio::awaitable<relay_result> relay(tcp::socket& client, tcp::socket& upstream,
                                    std::string_view first_up, std::string_view first_down,
                                    std::chrono::milliseconds idle, pipe_pool& pipes,
                                    acl::bandwidth_limiter* bw) {
  const auto ex = co_await asio::this_coro::executor;
  tunnel t(client, upstream, pipes, ex, bw);
  error_code ec;
  // (An upstream is already non-blocking: connect_endpoints sets it.)
  for (tcp::socket* s : {&client, &upstream})
    if (!ec && s->is_open() && !s->native_non_blocking()) s->native_non_blocking(true, ec);
  if (ec || !client.is_open() || !upstream.is_open()) {
    t.finish(relay_end::closed);
    co_return relay_result{0, 0, t.end};
  }

  t.touch();
  t.running = 2;
  asio::co_spawn(ex, run_direction(t, true, first_up), direction_done{&t});
  asio::co_spawn(ex, run_direction(t, false, first_down), direction_done{&t});

  const auto tick = std::max<clock_type::duration>(idle / 4, std::chrono::milliseconds(1));
  // Nothing to send up yet: the upstream may still owe the origin the last
  // ACK of its handshake (upstream.cpp keeps it for the first bytes). If the
  // client has sent nothing after ack_grace, send it alone.
  bool ack_owed = first_up.empty();
  while (t.running > 0) {
    t.watchdog.expires_after(ack_owed ? std::min<clock_type::duration>(tick, ack_grace) : tick);
    co_await t.watchdog.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (t.running == 0 || t.ended) continue;
    if (ack_owed) {
      ack_owed = false;
      if (t.up.bytes() == 0 && upstream.is_open()) {
        const int one = 1;  // sends a scheduled ACK now (tcp(7), TCP_QUICKACK)
        (void)::setsockopt(upstream.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      }
    }
    if (!client.is_open() || !upstream.is_open()) {
      t.finish(relay_end::closed);
    } else if (clock_type::now() - t.last_activity >= idle) {
      t.finish(relay_end::idle_timeout);
    }
  }
  t.up.abandon();
  t.down.abandon();
  if (t.up_eof && t.down_eof) {
    // Both ways ended at a FIN and the second was not passed on by
    // shutdown(2): closing sends it now, whatever the caller does next.
    client.close(ec);
    upstream.close(ec);
  }
  co_return relay_result{t.up.bytes(), t.down.bytes(), t.end};
}

}  // namespace egressd::proxy
