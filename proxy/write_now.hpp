#pragma once
// Internal to proxy/: writes on the request path (a refusal, the CONNECT 200,
// a request or response head, a body piece). Almost always the kernel takes
// all of it at once — a small message into a socket whose send buffer is
// empty — so the bytes go straight to sendmsg(MSG_DONTWAIT) first, and only
// what the kernel did not take goes through Beast's timed async_write. That
// skips, per write, an operation object, arming and cancelling the stream's
// timer, and a trip of the coroutine through the scheduler.
//
// The caller sets the stream's expiry before the call as for async_write (it
// applies to the slow path only).

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>

#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>

#include "proxy/asio.hpp"

namespace egressd::proxy {

template <typename ConstBuffers>
awaitable<size_t> write_now(beast::tcp_stream& s, const ConstBuffers& bufs, error_code& ec) {
  constexpr size_t max_iov = 8;
  std::array<iovec, max_iov> iov;
  size_t n_iov = 0, total = 0;
  bool fits = true;
  for (auto it = net::buffer_sequence_begin(bufs); it != net::buffer_sequence_end(bufs); ++it) {
    const net::const_buffer b(*it);
    if (b.size() == 0) continue;
    if (n_iov == max_iov) {
      fits = false;
      break;
    }
    iov[n_iov++] = iovec{const_cast<void*>(b.data()), b.size()};
    total += b.size();
  }
  ec = {};
  size_t sent = 0;
  if (fits && total != 0) {
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = n_iov;
    ssize_t n;
    do {
      n = ::sendmsg(s.socket().native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      ec.assign(errno, boost::system::system_category());
      co_return 0;
    }
    if (n > 0) sent = static_cast<size_t>(n);
    if (sent == total) co_return total;
  }
  if (total == 0 && fits) co_return 0;
  beast::buffers_suffix<ConstBuffers> rest(bufs);
  rest.consume(sent);
  const size_t more = co_await net::async_write(s, rest, net::redirect_error(use_awaitable, ec));
  co_return sent + more;
}

}  // namespace egressd::proxy
