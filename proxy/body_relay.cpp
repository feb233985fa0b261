#include "proxy/body_relay.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

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
    std::array<iovec, 8> iov;
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
// framing and the bandwidth budget shared by the two decoders below.
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

  // Writes the pending head (if any), then `data` framed for the output,
  // then the last chunk when `last`; one sendmsg for all of it.
  awaitable<bool> emit(const char* data, size_t n, bool last) {
    std::array<char, 20> size_line{};
    std::array<net::const_buffer, 5> parts;
    size_t k = 0;
    if (head_pending) parts[k++] = net::buffer(route.head);
    if (n) {
      if (route.chunked_out) {
        auto [e, err] = std::to_chars(size_line.data(), size_line.data() + 16, n, 16);
        (void)err;
        *e++ = '\r';
        *e++ = '\n';
        parts[k++] = net::buffer(size_line.data(), static_cast<size_t>(e - size_line.data()));
      }
      parts[k++] = net::buffer(data, n);
      if (route.chunked_out) parts[k++] = net::buffer("\r\n", 2);
      *route.moved += n;
    }
    if (last && route.chunked_out) parts[k++] = net::buffer("0\r\n\r\n", 5);
    head_pending = false;
    if (k == 0) co_return true;
    error_code ec;
    co_await pump.write(std::span<const net::const_buffer>(parts.data(), k), ec);
    co_return !ec;
  }
  // Before the first socket read: a head not sent yet leaves alone.
  awaitable<bool> flush_head() {
    if (!head_pending) co_return true;
    const bool ok = co_await emit(nullptr, 0, false);
    co_return ok;
  }

  static constexpr auto dir =
      isRequest ? acl::bandwidth_limiter::direction::up : acl::bandwidth_limiter::direction::down;
  worker& w;
  http::parser<isRequest, http::buffer_body>& p;
  const body_route& route;
  body_pump pump;
  buffer_pool::handle buf;
  bool head_pending;
  std::optional<net::steady_timer> pace;
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
    const bool sent = co_await m.emit(static_cast<const char*>(in_buf.data().data()), n, false);
    in_buf.consume(n);
    if (!sent) co_return body_end::write_error;
  }
  const bool head_sent = co_await m.flush_head();
  if (!head_sent) co_return body_end::write_error;
  pipe_pool::pipe pp;
  if (left && !m.route.chunked_out && m.w.pipes().acquire(pp)) {
    // The rest moves through a pipe (splice needs O_NONBLOCK sockets).
    error_code ec;
    m.route.in.native_non_blocking(true, ec);
    if (!ec) m.route.out.native_non_blocking(true, ec);
    body_end e = body_end::read_error;
    if (!ec) e = co_await splice_length(m, pp, left, to_eof);
    if (pp.pending == 0)
      m.w.pipes().release(pp);
    else
      m.w.pipes().discard(pp);
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
    const bool sent = co_await m.emit(m.buf.get(), static_cast<size_t>(got), false);
    if (!sent) co_return body_end::write_error;
  }
  if (m.route.chunked_out) {
    const bool sent = co_await m.emit(nullptr, 0, true);
    if (!sent) co_return body_end::write_error;
  }
  co_return body_end::ok;
}

// A parser error is the peer's framing (a bad chunk line, extension or trailer).
body_end framing_or_read(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_chunk).category() ? body_end::bad_framing
                                                                                   : body_end::read_error;
}

// Chunked: Beast's parser decodes from a 64 KiB input buffer (in_buf's bytes
// first, then large socket reads) into the pool buffer; each decoded piece
// is written at once. Bytes past the last chunk go back to in_buf.
template <bool isRequest>
awaitable<body_end> move_chunked(body_move<isRequest>& m) {
  auto& in_buf = m.route.in_buf;
  buffer_pool::handle in;  // taken once in_buf's bytes are used up
  const char* src = static_cast<const char*>(in_buf.data().data());
  size_t len = in_buf.size();
  m.p.eager(true);
  for (bool need_read = len == 0;;) {
    if (need_read) {
      if (len >= buffer_pool::buffer_size) co_return body_end::bad_framing;  // a 64 KiB chunk line
      if (!in) {
        in = m.w.buffers().take();
        std::memcpy(in.get(), src, len);  // an unfinished chunk header: a few bytes
        in_buf.consume(in_buf.size());
      } else {
        std::memmove(in.get(), src, len);
      }
      src = in.get();
      const bool head_sent = co_await m.flush_head();
      if (!head_sent) co_return body_end::write_error;
      error_code ec;
      const ssize_t got = co_await m.pump.read(in.get() + len, buffer_pool::buffer_size - len, ec);
      if (got <= 0) co_return body_end::read_error;  // EOF inside a chunked body: a partial message
      len += static_cast<size_t>(got);
    }
    const size_t cap = co_await m.allowance(buffer_pool::buffer_size);
    m.p.get().body().data = m.buf.get();
    m.p.get().body().size = cap;
    error_code ec;
    const size_t used = m.p.put(net::const_buffer(src, len), ec);
    const size_t got = cap - m.p.get().body().size;
    m.refund(cap - got);
    src += used;
    len -= used;
    if (!in) in_buf.consume(used);
    need_read = ec == http::error::need_more || len == 0 || (used == 0 && got == 0);
    if (ec && ec != http::error::need_more && ec != http::error::need_buffer) co_return framing_or_read(ec);
    const bool done = m.p.is_done();
    if (got || done) {
      const bool sent = co_await m.emit(m.buf.get(), got, done);
      if (!sent) co_return body_end::write_error;
    }
    if (done) break;
  }
  if (in && len) {  // the start of the next message (pipelined)
    auto b = in_buf.prepare(len);
    std::memcpy(b.data(), src, len);
    in_buf.commit(len);
  }
  co_return body_end::ok;
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
