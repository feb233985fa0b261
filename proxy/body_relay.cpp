#include "proxy/body_relay.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "proxy/inspect/chunked.hpp"
#include "proxy/relay/pipe_pool.hpp"
#include "proxy/server.hpp"
#include "proxy/worker.hpp"

namespace egressd::proxy {

namespace {

using clock_type = std::chrono::steady_clock;

// The idle timeout of one body: shared with the timer's handler, which may
// run after the body (and its coroutine frame) is gone, so it lives on the
// heap and the handler touches the sockets only while `stopped` is false.
struct idle_watch {
  template <typename Executor>
  explicit idle_watch(const Executor& ex) : timer(ex) {}
  net::steady_timer timer;
  clock_type::time_point last;
  std::chrono::milliseconds idle{0};
  tcp::socket* a = nullptr;
  tcp::socket* b = nullptr;
  bool armed = false, stopped = false, fired = false;
};

void arm(const std::shared_ptr<idle_watch>& w) {
  w->armed = true;
  w->timer.expires_at(w->last + w->idle);
  w->timer.async_wait([w](error_code ec) {
    w->armed = false;
    if (ec || w->stopped) return;
    if (clock_type::now() - w->last < w->idle) {
      arm(w);  // bytes moved since it was armed: the deadline moved on
      return;
    }
    w->fired = true;
    error_code ignore;
    w->a->cancel(ignore);
    w->b->cancel(ignore);
  });
}

// Non-blocking reads and writes on the two sockets, waiting (under the idle
// watch) only when the kernel has nothing to give or no room to take.
class body_pump {
 public:
  body_pump(tcp::socket& in, tcp::socket& out, std::chrono::milliseconds idle)
      : in_(in), out_(out), idle_(idle), last_(clock_type::now()) {}
  ~body_pump() {
    if (watch_) {
      watch_->stopped = true;
      watch_->timer.cancel();
    }
  }
  body_pump(const body_pump&) = delete;
  body_pump& operator=(const body_pump&) = delete;

  // Up to n bytes from `in`; 0 at EOF; -1 with ec on an error or the timeout.
  awaitable<ssize_t> read(char* p, size_t n, error_code& ec) {
    for (;;) {
      const ssize_t r = ::recv(in_.native_handle(), p, n, MSG_DONTWAIT);
      ++reads;
      if (r >= 0) {
        if (r > 0) last_ = clock_type::now();
        co_return r;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec.assign(errno, boost::system::system_category());
        co_return -1;
      }
      co_await wait(in_, tcp::socket::wait_read, ec);
      if (ec) co_return -1;
    }
  }

  // All of `parts` to `out`.
  awaitable<void> write(std::span<const net::const_buffer> parts, error_code& ec) {
    std::array<iovec, 32> iov;  // body_move::flush writes at most 17
    size_t n_iov = 0;
    for (const auto& b : parts)
      if (b.size()) iov[n_iov++] = iovec{const_cast<void*>(b.data()), b.size()};
    size_t first = 0;
    while (first < n_iov) {
      msghdr msg{};
      msg.msg_iov = iov.data() + first;
      msg.msg_iovlen = n_iov - first;
      const ssize_t r = ::sendmsg(out_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          ec.assign(errno, boost::system::system_category());
          co_return;
        }
        co_await wait(out_, tcp::socket::wait_write, ec);
        if (ec) co_return;
        continue;
      }
      last_ = clock_type::now();
      for (size_t left = static_cast<size_t>(r); left && first < n_iov;) {
        const size_t take = std::min(left, iov[first].iov_len);
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + take;
        iov[first].iov_len -= take;
        left -= take;
        if (iov[first].iov_len == 0) ++first;
      }
    }
  }

  // A wait that is not idleness (bandwidth= pacing) restarts the clock.
  void touch() { last_ = clock_type::now(); }

  // For the splice path, which makes its own syscalls.
  awaitable<void> wait_in(error_code& ec) { co_await wait(in_, tcp::socket::wait_read, ec); }
  awaitable<void> wait_out(error_code& ec) { co_await wait(out_, tcp::socket::wait_write, ec); }

  uint64_t reads = 0;  // recv(2)/splice(2) calls from `in`, EAGAIN included

 private:
  awaitable<void> wait(tcp::socket& s, tcp::socket::wait_type what, error_code& ec) {
    if (!watch_) {
      watch_ = std::make_shared<idle_watch>(s.get_executor());
      watch_->idle = idle_;
      watch_->a = &in_;
      watch_->b = &out_;
    }
    watch_->last = last_;
    if (!watch_->armed) arm(watch_);
    co_await s.async_wait(what, net::redirect_error(use_awaitable, ec));
    if (watch_->fired) ec = beast::error::timeout;
  }

  tcp::socket& in_;
  tcp::socket& out_;
  std::chrono::milliseconds idle_;
  clock_type::time_point last_;
  std::shared_ptr<idle_watch> watch_;  // made at the first wait
};

// One body on its way: the pump, the pool buffer, the pending head, the
// runs to write next and the bandwidth budget shared by the movers below.
template <bool isRequest>
struct body_move {
  body_move(worker& wk, http::parser<isRequest, http::buffer_body>& parser, const body_route& r)
      : w(wk), p(parser), route(r), pump(r.in, r.out, r.idle), buf(wk.buffers().take()),
        head_pending(!r.head.empty()) {}
  ~body_move() {
    w.srv().metrics().body_reads(w.index(), isRequest ? monitor::metrics::direction::up
                                                      : monitor::metrics::direction::down,
                                 pump.reads);
  }

  // How much the next piece may hold: at most `want`, and (bandwidth=) what
  // the rule's shared budget grants, waiting for it when it grants nothing.
  awaitable<size_t> allowance(size_t want) {
    if (!route.bw) co_return want;
    for (;;) {
      clock_type::duration wait{};
      const size_t n = route.bw->grant(dir, clock_type::now(), want, &wait);
      if (n) co_return n;
      if (!pace) pace.emplace(co_await net::this_coro::executor);
      pace->expires_after(wait);
      error_code ec;
      co_await pace->async_wait(net::redirect_error(use_awaitable, ec));
      pump.touch();
    }
  }
  void refund(size_t n) {
    if (route.bw && n) route.bw->refund(dir, n);
  }

  // Queues n bytes at `data` for the next flush (joined to the last run when
  // they follow it). The caller flushes first when full().
  void add(const char* data, size_t n) {
    if (n_parts && static_cast<const char*>(parts[n_parts - 1].data()) + parts[n_parts - 1].size() == data)
      parts[n_parts - 1] = net::buffer(parts[n_parts - 1].data(), parts[n_parts - 1].size() + n);
    else
      parts[n_parts++] = net::buffer(data, n);
  }
  bool full() const { return n_parts == parts.size(); }
  // Writes the pending head (if any) and the queued runs: one sendmsg.
  awaitable<bool> flush() {
    std::array<net::const_buffer, max_parts + 1> all;
    size_t k = 0;
    if (head_pending) all[k++] = net::buffer(route.head);
    for (size_t i = 0; i < n_parts; ++i) all[k++] = parts[i];
    head_pending = false;
    n_parts = 0;
    if (k == 0) co_return true;
    error_code ec;
    co_await pump.write(std::span<const net::const_buffer>(all.data(), k), ec);
    co_return !ec;
  }
  // n body bytes at `data`, with the head if it is still pending.
  awaitable<bool> emit(const char* data, size_t n) {
    add(data, n);
    *route.moved += n;
    const bool ok = co_await flush();
    co_return ok;
  }

  static constexpr auto dir =
      isRequest ? acl::bandwidth_limiter::direction::up : acl::bandwidth_limiter::direction::down;
  static constexpr size_t max_parts = 16;
  worker& w;
  http::parser<isRequest, http::buffer_body>& p;
  const body_route& route;
  body_pump pump;
  buffer_pool::handle buf;
  bool head_pending;
  std::array<net::const_buffer, max_parts> parts;
  size_t n_parts = 0;
  std::optional<net::steady_timer> pace;
};

// A pipe from the worker's pool for as long as one body moves, taken at the
// first piece worth splicing (with both sockets switched to O_NONBLOCK, as
// splice needs) and given back at the end (dropped if bytes are left in it).
class pipe_lease {
 public:
  explicit pipe_lease(worker& w) : w_(w) {}
  ~pipe_lease() {
    if (!held_) return;
    if (pp_.pending == 0)
      w_.pipes().release(pp_);
    else
      w_.pipes().discard(pp_);
  }
  pipe_lease(const pipe_lease&) = delete;
  pipe_lease& operator=(const pipe_lease&) = delete;

  // The pipe, or null when none is to be had (the caller copies instead).
  pipe_pool::pipe* take(tcp::socket& in, tcp::socket& out) {
    if (!held_ && !tried_) {
      tried_ = true;
      error_code ec;
      if (w_.pipes().acquire(pp_)) {
        for (tcp::socket* s : {&in, &out})
          if (!ec && !s->native_non_blocking()) s->native_non_blocking(true, ec);
        if (ec)
          w_.pipes().release(pp_);  // blocking sockets cannot splice: copy
        else
          held_ = true;
      }
    }
    return held_ ? &pp_ : nullptr;
  }

 private:
  worker& w_;
  pipe_pool::pipe pp_;
  bool held_ = false, tried_ = false;
};

// Moves `left` bytes (UINT64_MAX: to EOF) from in to out through a kernel
// pipe: splice(2) both ways, no copy through user space. ok / read_error /
// write_error as move_length.
template <bool isRequest>
awaitable<body_end> splice_length(body_move<isRequest>& m, pipe_pool::pipe& pp, uint64_t left, bool to_eof) {
  const int in_fd = m.route.in.native_handle(), out_fd = m.route.out.native_handle();
  const size_t pipe_size = m.w.pipes().pipe_size();
  while (left) {
    const size_t want = co_await m.allowance(static_cast<size_t>(std::min<uint64_t>(pipe_size, left)));
    const ssize_t got = ::splice(in_fd, nullptr, pp.wr, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    ++m.pump.reads;
    m.refund(want - static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got == 0) co_return to_eof ? body_end::ok : body_end::read_error;  // EOF short of the length
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) co_return body_end::read_error;
      error_code ec;
      co_await m.pump.wait_in(ec);
      if (ec) co_return body_end::read_error;
      continue;
    }
    m.pump.touch();
    pp.pending += static_cast<size_t>(got);
    left -= to_eof ? 0 : static_cast<uint64_t>(got);
    while (pp.pending) {
      // No SPLICE_F_MORE: a streamed body's piece must leave now, not corked.
      const ssize_t put = ::splice(pp.rd, nullptr, out_fd, nullptr, pp.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (put > 0) {
        pp.pending -= static_cast<size_t>(put);
        *m.route.moved += static_cast<uint64_t>(put);
        m.pump.touch();
        continue;
      }
      if (put < 0 && errno == EINTR) continue;
      if (put == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) co_return body_end::write_error;
      error_code ec;
      co_await m.pump.wait_out(ec);
      if (ec) co_return body_end::write_error;
    }
  }
  co_return body_end::ok;
}

// Content-Length (bounded by what remains) or close-delimited (to EOF):
// the parser's buffered bytes first, straight from in_buf, then spliced
// through a pooled pipe, or (no pipe to be had) read into the pool buffer.
template <bool isRequest>
awaitable<body_end> move_length(body_move<isRequest>& m) {
  const bool to_eof = !m.p.content_length();
  uint64_t left = to_eof ? UINT64_MAX : *m.p.content_length_remaining();
  auto& in_buf = m.route.in_buf;
  while (left && in_buf.size()) {
    const size_t n = co_await m.allowance(static_cast<size_t>(std::min<uint64_t>(in_buf.size(), left)));
    left -= to_eof ? 0 : n;
    const bool sent = co_await m.emit(static_cast<const char*>(in_buf.data().data()), n);
    in_buf.consume(n);
    if (!sent) co_return body_end::write_error;
  }
  const bool head_sent = co_await m.flush();
  if (!head_sent) co_return body_end::write_error;
  pipe_lease lease(m.w);
  if (left)
    if (auto* pp = lease.take(m.route.in, m.route.out)) {
      const body_end e = co_await splice_length(m, *pp, left, to_eof);
      co_return e;
    }
  while (left) {
    const size_t want = co_await m.allowance(static_cast<size_t>(std::min<uint64_t>(buffer_pool::buffer_size, left)));
    error_code ec;
    const ssize_t got = co_await m.pump.read(m.buf.get(), want, ec);
    m.refund(want - static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got < 0) co_return body_end::read_error;
    if (got == 0) co_return to_eof ? body_end::ok : body_end::read_error;  // EOF short of the length
    left -= to_eof ? 0 : static_cast<uint64_t>(got);
    const bool sent = co_await m.emit(m.buf.get(), static_cast<size_t>(got));
    if (!sent) co_return body_end::write_error;
  }
  co_return body_end::ok;
}

// Scans [src, src + len) of a chunked body and writes the runs to forward
// (one sendmsg, unless more than max_parts runs). `used` ends where the body
// ended. Nothing: the body goes on; else how it ended.
template <bool isRequest>
awaitable<std::optional<body_end>> forward_scanned(body_move<isRequest>& m, chunked_scanner& sc, const char* src,
                                                   size_t len, size_t& used) {
  const uint64_t scanned = sc.data_scanned();
  std::optional<body_end> end;
  for (used = 0; used < len && !end;) {
    const auto r = sc.next({src + used, len - used});
    if (r.st == chunked_scanner::status::bad) co_return body_end::bad_framing;
    if (r.pass && r.n) {
      if (m.full()) {
        const bool sent = co_await m.flush();
        if (!sent) co_return body_end::write_error;
      }
      m.add(src + used, r.n);
    }
    used += r.n;
    if (r.st == chunked_scanner::status::done) end = body_end::ok;
  }
  *m.route.moved += sc.data_scanned() - scanned;
  const bool sent = co_await m.flush();
  if (!sent) co_return body_end::write_error;
  co_return end;
}

// Chunked: relayed as it came, checked by chunked_scanner on the way
// (in_buf's bytes first, then socket reads into the pool buffer). Once a
// large chunk's size line is read, the rest of its data is spliced, and
// while the chunks are large each read takes little more than the data
// left and the next size line, so that the next chunk's data is spliced too.
// Bytes past the end of the body (pipelined) go back to in_buf.
template <bool isRequest>
awaitable<body_end> move_chunked(body_move<isRequest>& m) {
  static constexpr uint64_t splice_min = 16 * 1024, size_line_room = 1024;
  chunked_scanner sc(m.route.keep_chunks ? chunked_scanner::mode::framed : chunked_scanner::mode::decoded);
  auto& in_buf = m.route.in_buf;
  while (in_buf.size()) {
    const size_t n = co_await m.allowance(in_buf.size());
    size_t used = 0;
    const auto end = co_await forward_scanned(m, sc, static_cast<const char*>(in_buf.data().data()), n, used);
    in_buf.consume(used);
    if (end) {
      m.refund(n - used);  // what follows the body is not its to pay for
      co_return *end;
    }
  }
  const bool head_sent = co_await m.flush();
  if (!head_sent) co_return body_end::write_error;
  pipe_lease lease(m.w);
  for (;;) {
    pipe_pool::pipe* pp = sc.data_left() >= splice_min ? lease.take(m.route.in, m.route.out) : nullptr;
    if (pp) {
      const body_end e = co_await splice_length(m, *pp, sc.data_left(), false);
      if (e != body_end::ok) co_return e;
      sc.skip_data(sc.data_left());
      continue;
    }
    uint64_t cap = buffer_pool::buffer_size;
    if (sc.chunk_size() >= 2 * splice_min && lease.take(m.route.in, m.route.out))
      cap = std::min(cap, sc.data_left() + size_line_room);
    const size_t want = co_await m.allowance(static_cast<size_t>(cap));
    error_code ec;
    const ssize_t got = co_await m.pump.read(m.buf.get(), want, ec);
    m.refund(want - static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got <= 0) co_return body_end::read_error;  // EOF inside a chunked body: a partial message
    size_t used = 0;
    const auto end = co_await forward_scanned(m, sc, m.buf.get(), static_cast<size_t>(got), used);
    if (!end) continue;
    if (*end == body_end::ok && used < static_cast<size_t>(got)) {  // the start of the next message
      const size_t rest = static_cast<size_t>(got) - used;
      std::memcpy(in_buf.prepare(rest).data(), m.buf.get() + used, rest);
      in_buf.commit(rest);
      m.refund(rest);
    }
    co_return *end;
  }
}

}  // namespace

template <bool isRequest>
awaitable<body_end> relay_body(worker& w, http::parser<isRequest, http::buffer_body>& p, const body_route& route) {
  if (p.is_done()) {
    // No body (Content-Length: 0, HEAD, 204, 304): the head alone.
    if (route.head.empty()) co_return body_end::ok;
    body_pump pump(route.in, route.out, route.idle);
    error_code ec;
    const net::const_buffer head = net::buffer(route.head);
    co_await pump.write(std::span<const net::const_buffer>(&head, 1), ec);
    co_return ec ? body_end::write_error : body_end::ok;
  }
  body_move<isRequest> m(w, p, route);
  body_end e;
  if (p.chunked())
    e = co_await move_chunked(m);
  else
    e = co_await move_length(m);
  co_return e;
}

template awaitable<body_end> relay_body<true>(worker&, http::parser<true, http::buffer_body>&, const body_route&);
template awaitable<body_end> relay_body<false>(worker&, http::parser<false, http::buffer_body>&, const body_route&);

}  // namespace egressd::proxy
