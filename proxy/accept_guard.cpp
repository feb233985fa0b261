#include "proxy/accept_guard.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <string>

#include <boost/asio/this_coro.hpp>

namespace egressd::proxy {

bool out_of_descriptors(const error_code& ec) {
  if (ec.category() != boost::system::system_category()) return false;
  const int e = ec.value();
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

awaitable<void> back_off() {
  net::steady_timer t(co_await net::this_coro::executor, accept_backoff);
  error_code ec;
  co_await t.async_wait(net::redirect_error(use_awaitable, ec));
}

namespace {

constexpr std::chrono::milliseconds overload_linger{250};

// Reads and discards what is queued; false on EOF or an error.
bool discard_input(int fd, char* sink, size_t size) {
  for (;;) {
    const ssize_t n = ::recv(fd, sink, size, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

}  // namespace

awaitable<void> tell_overloaded(tcp::socket& s, std::string_view response) {
  const int fd = s.native_handle();
  char sink[2048];
  const bool reading = discard_input(fd, sink, sizeof sink);
  (void)::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  (void)::shutdown(fd, SHUT_WR);
  if (!reading) co_return;  // it already closed its side: nothing to wait for
  net::steady_timer t(co_await net::this_coro::executor, overload_linger);
  t.async_wait([&s](error_code ec) {
    error_code ignore;
    if (!ec) s.cancel(ignore);
  });
  for (;;) {
    error_code ec;
    co_await s.async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
    if (ec || !discard_input(fd, sink, sizeof sink)) break;
  }
  t.cancel();
}

spare_descriptor::~spare_descriptor() {
  if (fd_ >= 0) ::close(fd_);
}

bool spare_descriptor::release() {
  if (fd_ < 0) return false;
  ::close(fd_);
  fd_ = -1;
  return true;
}

void spare_descriptor::adopt(int fd) {
  static const int keeper = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // never closed
  if (fd_ < 0 && keeper >= 0 && ::dup3(keeper, fd, O_CLOEXEC) == fd) {
    fd_ = fd;
    return;
  }
  ::close(fd);
  restore();
}

bool spare_descriptor::restore() {
  if (fd_ < 0) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd_ >= 0;
}

void note_accept_failure(std::string_view where, const error_code& ec) {
  using clock = std::chrono::steady_clock;
  static std::atomic<int64_t> next_ns{0};
  static std::atomic<uint64_t> quiet{0};
  constexpr int64_t period_ns = 10'000'000'000;
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now().time_since_epoch()).count();
  int64_t due = next_ns.load(std::memory_order_relaxed);
  if (now < due || !next_ns.compare_exchange_strong(due, now + period_ns, std::memory_order_relaxed)) {
    quiet.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const uint64_t skipped = quiet.exchange(0, std::memory_order_relaxed);
  std::string what(where);
  std::fprintf(stderr,
               "egressd: %s: cannot accept: %s (%llu more since the last such line; raise the descriptor "
               "limit, e.g. ulimit -n, or lower limit max_conns)\n",
               what.c_str(), ec.message().c_str(), static_cast<unsigned long long>(skipped));
}

}  // namespace egressd::proxy
