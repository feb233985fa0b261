// The TLS checks of a tunnel (CONNECT to a tls_port, listen mode=sni), SPEC
// "TLS privacy extensions": reading the first ClientHello
// (read_client_hello), the rules every ClientHello meets (judge_hello), and
// the first-flight watch (watch_first_flight): the short phase between the
// judged first ClientHello and the splice relay, so that every ClientHello
// of the handshake is judged and none the server could act on is relayed
// unjudged.
//
//   1. The first ClientHello goes up; the client's next bytes are held, read
//      and checked as they come by watch_held (a second ClientHello is
//      refused at once, even if the server never answers).
//   2. The server's bytes are read until its first handshake message is
//      known (proxy/inspect/first_flight.hpp): at most 228 bytes decide.
//   3. Before a byte of that answer reaches the client, what the client has
//      sent so far is taken from its socket: it was all sent before the
//      client could see the answer, so it may hold ChangeCipherSpec, alerts
//      and early data, never a handshake record (a second ClientHello).
//   4. The answer goes to the client. A ServerHello (TLS 1.2, or 1.3 without
//      retry) or anything else ends the watch: the relay takes over.
//   5. After a HelloRetryRequest the client's second ClientHello is read
//      whole (after any ChangeCipherSpec / early-data records) and judged
//      like the first, and must carry the first one's SNI; only then does it
//      go up. Bytes behind it may not hold a third.
//
// Cost: one read of at most 512 bytes of the server (the rest of its flight
// is spliced), those written from a buffer instead of spliced, a watcher
// coroutine and timer for the client side (usually one peek finds nothing);
// all of it in the frames and buffers of the caller (the session, or the
// tunnel job's check_tunnel), which are gone once the relay starts, so an
// idle tunnel holds nothing more. Runs on the worker thread of its caller.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "acl/pattern.hpp"
#include "proxy/inspect/client_hello.hpp"
#include "proxy/inspect/first_flight.hpp"
#include "proxy/session_impl.hpp"
#include "proxy/write_now.hpp"

namespace egressd::proxy {

using acl::reason;

namespace {

// Client bytes held while the watch lasts: early data before a second
// ClientHello, and that ClientHello. Beyond it the client waits (TCP flow
// control); a second ClientHello that does not fit is refused.
constexpr size_t max_held = 2 * max_client_hello;
// One read of the server's first flight: enough for its first record's
// verdict (at most 228 bytes decide); the rest (certificates, ...) stays in
// the socket for splice. Small, so that the buffer is cheap: thousands of
// tunnels may be in their watch at once.
constexpr size_t server_read = 512;

const uint8_t* bytes_of(const beast::flat_buffer& b) { return static_cast<const uint8_t*>(b.data().data()); }

}  // namespace

// The client's side while the server has not answered: its bytes are taken
// as they come and checked at once, so that a second ClientHello is refused
// even when the server is slow or silent (closing the upstream ends the
// session's wait for it). Stops on EOF, a full buffer, or `stop`.
awaitable<void> tls_gate::watch_held(held_watch& hw, const hello& first, tcp::socket& upstream) {
  error_code ec;
  for (;;) {
    bool eof = false;
    if (!drain_client(max_held, &eof)) {
      hw.verdict = reason::client_closed;
    } else {
      hw.verdict = check_held(0, first, false);
    }
    if (hw.verdict != reason::none) {
      upstream.close(ec);
      co_return;
    }
    if (eof || cbuf_.size() >= max_held || hw.stop) co_return;
    co_await client_.socket().async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
    if (ec || hw.stop) co_return;
  }
}

reason tls_gate::judge_hello(const hello& h, std::string_view expected, bool need_sni) const {
  if (h.why != reason::none) return h.why;
  // The outer SNI of an ECH hello names only the client-facing server.
  if (h.ech && !snap_->ech_allow) return reason::ech;
  if (!h.has_sni) return need_sni ? reason::no_sni : reason::none;
  if (!expected.empty() && h.sni != expected) return reason::sni_mismatch;
  return reason::none;
}

tls_gate::hello tls_gate::hello_of(const hello_result& h) {
  hello out;
  if (h.status == hello_status::bad_sni) {
    out.why = reason::bad_sni;
  } else if (h.status != hello_status::ok) {
    out.why = reason::not_tls;
    return out;
  }
  out.ech = h.ech;
  out.size = h.wire_size;
  if (h.has_sni) {
    auto norm = acl::normalize_host(h.sni());
    if (norm) {
      out.has_sni = true;
      out.sni = std::move(*norm);
    } else {
      out.why = reason::bad_sni;  // the parser's name rules are normalize_host's
    }
  }
  return out;
}

awaitable<tls_gate::hello> tls_gate::read_client_hello() {
  hello out;
  error_code ec;
  for (;;) {
    auto h = parse_client_hello(static_cast<const uint8_t*>(cbuf_.data().data()), cbuf_.size());
    if (h.status == hello_status::need_more) {
      client_.expires_after(snap_->timeout.header);
      size_t n = co_await client_.async_read_some(cbuf_.prepare(2048), net::redirect_error(use_awaitable, ec));
      cbuf_.commit(n);
      if (ec) {
        out.why = cbuf_.size() == 0 ? reason::client_closed : reason::not_tls;
        co_return out;
      }
      continue;
    }
    co_return hello_of(h);
  }
}

bool tls_gate::drain_client(size_t cap, bool* eof) {
  const int fd = client_.socket().native_handle();
  // Usually the client has sent nothing more: find out without growing cbuf_.
  uint8_t probe;
  ssize_t peeked;
  do {
    peeked = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (peeked < 0 && errno == EINTR);
  if (peeked == 0 && eof) *eof = true;
  if (peeked <= 0) return peeked == 0 || errno == EAGAIN || errno == EWOULDBLOCK;
  while (cbuf_.size() < cap) {
    const auto b = cbuf_.prepare(std::min<size_t>(cap - cbuf_.size(), 4096));
    ssize_t got;
    do {
      got = ::recv(fd, b.data(), b.size(), MSG_DONTWAIT);
    } while (got < 0 && errno == EINTR);
    if (got > 0) {
      cbuf_.commit(static_cast<size_t>(got));
      continue;
    }
    // EOF: the relay sees it again and half-closes the upstream.
    if (got == 0 && eof) *eof = true;
    return got == 0 || errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

reason tls_gate::check_held(size_t from, const hello& first, bool final) const {
  const uint8_t* d = bytes_of(cbuf_) + from;
  const size_t n = cbuf_.size() - from;
  const record_scan sc = scan_client_records(d, n);
  if (sc.what == record_scan::kind::clean) return reason::none;
  if (sc.what == record_scan::kind::not_tls) return reason::not_tls;
  // A handshake record the server has not asked for: refused whatever it
  // is; the reason says what it would have done.
  const hello_result r = parse_client_hello(d + sc.at, n - sc.at);
  // Still arriving and more may come: wait for all of it, for the reason.
  if (r.status == hello_status::need_more && !final && n < max_held) return reason::none;
  const hello h = hello_of(r);
  if (h.why == reason::bad_sni) return reason::bad_sni;
  if (h.why == reason::none && h.has_sni != first.has_sni) return reason::sni_mismatch;
  if (h.why == reason::none && h.sni != first.sni) return reason::sni_mismatch;
  return reason::not_tls;
}

awaitable<reason> tls_gate::watch_first_flight(beast::tcp_stream& up, const hello& first,
                                              monitor::access_record& rec) {
  error_code ec;
  up.expires_after(snap_->timeout.header);
  rec.bytes_up += co_await write_now(up, net::buffer(cbuf_.data().data(), first.size), ec);
  if (ec) co_return reason::upstream_reset;
  cbuf_.consume(first.size);

  held_watch hw;
  hw.running = true;
  hw.done.emplace(w_.io(), net::steady_timer::time_point::max());
  net::co_spawn(w_.io(), watch_held(hw, first, up.socket()), [&hw](std::exception_ptr) {
    hw.running = false;
    hw.done->cancel();
  });
  server_first answer = server_first::need_more;
  error_code up_ec;
  for (;;) {
    answer = parse_server_first(bytes_of(ubuf_), ubuf_.size());
    if (answer != server_first::need_more) break;
    up.expires_after(snap_->timeout.header);
    const size_t got = co_await up.async_read_some(ubuf_.prepare(server_read), net::redirect_error(use_awaitable, up_ec));
    ubuf_.commit(got);
    if (up_ec) break;
  }
  up.expires_never();
  if (hw.running) {
    hw.stop = true;
    error_code ignore;
    client_.socket().cancel(ignore);
    co_await hw.done->async_wait(net::redirect_error(use_awaitable, ignore));
  }
  if (hw.verdict != reason::none) co_return hw.verdict;
  // EOF: the relay passes it on.
  if (up_ec && up_ec != net::error::eof) {
    if (const reason r = check_held(0, first); r != reason::none) co_return r;  // e.g. half a second hello
    co_return up_ec == beast::error::timeout ? reason::upstream_timeout : reason::upstream_reset;
  }

  if (!drain_client(max_held)) co_return reason::client_closed;
  if (const reason r = check_held(0, first); r != reason::none) co_return r;
  client_.expires_after(snap_->timeout.header);
  rec.bytes_down += co_await write_now(client_, ubuf_.data(), ec);
  ubuf_.consume(ubuf_.size());
  if (ec) co_return reason::client_closed;
  if (answer != server_first::hello_retry_request) co_return reason::none;
  co_return co_await relay_second_hello(up, first, rec);
}

// After a HelloRetryRequest: the second ClientHello, whole, judged, then up.
awaitable<reason> tls_gate::relay_second_hello(beast::tcp_stream& up, const hello& first,
                                              monitor::access_record& rec) {
  error_code ec;
  for (;;) {
    const uint8_t* d = bytes_of(cbuf_);
    const record_scan sc = scan_client_records(d, cbuf_.size());
    if (sc.what == record_scan::kind::not_tls) co_return reason::not_tls;
    if (sc.what == record_scan::kind::handshake) {
      const hello_result r = parse_client_hello(d + sc.at, cbuf_.size() - sc.at);
      if (r.status != hello_status::need_more) {
        const hello second = hello_of(r);
        rec.ech = rec.ech || second.ech;
        // Same SNI as the first, or none as the first: a name that appears
        // or disappears is a mismatch too.
        reason bad = judge_hello(second, first.sni, false);
        if (bad == reason::none && second.has_sni != first.has_sni) bad = reason::sni_mismatch;
        if (bad != reason::none) co_return bad;
        const size_t through = sc.at + second.size;
        if (const reason r3 = check_held(through, first); r3 != reason::none) co_return r3;
        up.expires_after(snap_->timeout.header);
        rec.bytes_up += co_await write_now(up, net::buffer(d, through), ec);
        up.expires_never();
        if (ec) co_return reason::upstream_reset;
        cbuf_.consume(through);
        co_return reason::none;
      }
    }
    if (cbuf_.size() >= max_held) co_return reason::not_tls;
    client_.expires_after(snap_->timeout.header);
    const size_t got = co_await client_.async_read_some(
        cbuf_.prepare(std::min<size_t>(4096, max_held - cbuf_.size())), net::redirect_error(use_awaitable, ec));
    cbuf_.commit(got);
    if (ec) co_return reason::client_closed;  // e.g. it gave up on the retry
  }
}

namespace {

void take_bytes(std::string& from, beast::flat_buffer& to) {
  to.commit(net::buffer_copy(to.prepare(from.size()), net::buffer(from)));
  std::string().swap(from);
}

}  // namespace

awaitable<bool> check_tunnel(tunnel_job& j, conn_entry& reg, worker& w) {
  const config::snapshot& snap = *j.check;
  if (j.first_up.empty()) {
    // Nothing sent yet (the usual case): wait holding no buffer and no
    // stream, the header timeout on one timer. A drain closing the socket
    // ends the wait too.
    tcp::socket& c = j.client;
    net::steady_timer limit(w.io(), snap.timeout.header);
    limit.async_wait([&c](error_code e) {
      error_code ignore;
      if (!e) c.cancel(ignore);
    });
    error_code ec;
    co_await c.async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
    limit.cancel();
    if (ec) {
      j.rec.reason = reason::client_closed;
      co_return false;
    }
  }
  beast::tcp_stream client(std::move(j.client));
  beast::tcp_stream up(std::move(j.upstream));
  reg.client = &client.socket();
  reg.upstream = &up.socket();
  beast::flat_buffer cbuf, ubuf;
  take_bytes(j.first_up, cbuf);
  take_bytes(j.first_down, ubuf);  // the server's, read with a parent proxy's 200
  tls_gate tls(client, cbuf, ubuf, snap, w);
  const tls_gate::hello h = co_await tls.read_client_hello();
  if (h.has_sni) j.rec.sni = h.sni;
  j.rec.ech = h.ech;
  reason bad = tls.judge_hello(h, j.rec.host, snap.require_sni);
  if (bad == reason::none) bad = co_await tls.watch_first_flight(up, h, j.rec);
  if (bad == reason::none) {
    j.client = client.release_socket();
    j.upstream = up.release_socket();
    j.first_up.assign(static_cast<const char*>(cbuf.data().data()), cbuf.size());
  }
  reg.client = &j.client;
  reg.upstream = &j.upstream;
  if (bad == reason::none) co_return true;
  if (is_hello_refusal(bad)) j.rec.decision = monitor::request_decision::deny;
  j.rec.reason = bad;
  co_return false;
}

}  // namespace egressd::proxy
