#include "proxy/upstream_pool.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace egressd::proxy {
namespace {

// A parked connection is usable only if the origin has neither closed it nor
// sent anything unasked.
bool still_idle(tcp::socket& s) {
  char c;
  const ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::optional<upstream_pool::entry> upstream_pool::take(std::string_view key, const config::snapshot* snap) {
  const auto now = std::chrono::steady_clock::now();
  for (size_t i = idle_.size(); i-- > 0;) {
    entry& e = idle_[i];
    const bool expired = e.expires <= now;
    if (!expired && (e.key != key || e.snap.get() != snap)) continue;
    entry out = std::move(e);
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
    error_code ec;
    if (expired || !still_idle(out.sock)) {
      out.sock.close(ec);
      continue;
    }
    return out;
  }
  return std::nullopt;
}

void upstream_pool::put(entry&& e) {
  const auto now = std::chrono::steady_clock::now();
  // Drop what has expired, then the oldest if still full.
  error_code ec;
  while (!idle_.empty() && (idle_.front().expires <= now || idle_.size() >= max_idle)) {
    idle_.front().sock.close(ec);
    idle_.erase(idle_.begin());
  }
  e.expires = now + max_age;
  idle_.push_back(std::move(e));
}

}  // namespace egressd::proxy
