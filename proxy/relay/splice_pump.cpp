// One tunnel direction: splice through a pooled pipe, or copy when no pipe
// can be made. See splice_pump.hpp for the contract.
#include "proxy/relay/splice_pump.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <new>

namespace egressd::proxy {

namespace {
constexpr unsigned splice_flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
}

splice_pump::~splice_pump() {
  // Normal ends call abandon(); this only runs on an abnormal teardown.
  if (pipe_.valid()) {
    ::close(pipe_.rd);
    ::close(pipe_.wr);
  }
}

splice_pump::status splice_pump::step(int src_fd, int dst_fd, size_t budget) {
  size_t moved = 0;
  bool drained = false;  // the source said EAGAIN after the bytes now held
  for (;;) {
    if (held_bytes() != 0) {
      switch (flush(dst_fd, moved)) {
        case io::again: return status::need_write;
        case io::error: return status::dst_error;
        default: break;
      }
    }
    // Nothing held from here on.
    if (src_eof_) {
      drop();
      return status::eof;
    }
    if (drained || moved >= budget) {
      // Drained, or yield: the caller waits for readiness (Asio re-arms the
      // descriptor for every wait, so bytes that arrived meanwhile are seen),
      // and other tunnels get a turn.
      drop();
      return status::need_read;
    }
    if (!holding() && !take()) {
      error_ = ENOMEM;
      return status::src_error;
    }
    switch (fill(src_fd, budget - moved)) {
      case io::progress: break;
      case io::eof: src_eof_ = true; break;
      case io::again:
        // The pipe is empty here, so EAGAIN proves the socket is drained
        // (with bytes in the pipe it could also mean "pipe full").
        drop();
        return status::need_read;
      case io::error: return status::src_error;
    }
    // A small burst: look once more before delivering it. A FIN right behind
    // the bytes then leaves in the same segment as they do (flush() corks
    // them and the caller's shutdown() sends both), and a drained source is
    // known without one more read after the flush. (An EAGAIN here could in
    // theory mean a pipe full of tiny segments; the caller's wait then simply
    // completes at once.)
    if (!src_eof_ && pipe_.valid() && pipe_.pending < readahead_limit && pipe_.pending < budget - moved) {
      switch (fill(src_fd, budget - moved - pipe_.pending)) {
        case io::progress: break;
        case io::eof: src_eof_ = true; break;
        case io::again: drained = true; break;
        case io::error: return status::src_error;
      }
    }
  }
}

void splice_pump::abandon() {
  if (pipe_.valid()) {
    if (pipe_.pending == 0) {
      pool_->release(pipe_);
    } else {
      pool_->discard(pipe_);
    }
  }
  buffer_.reset();
  buffer_off_ = buffer_len_ = 0;
}

bool splice_pump::take() {
  if (pool_->acquire(pipe_)) return true;
  buffer_.reset(new (std::nothrow) char[copy_buffer_size]);
  buffer_off_ = buffer_len_ = 0;
  return buffer_ != nullptr;
}

void splice_pump::drop() {
  if (pipe_.valid()) pool_->release(pipe_);
  buffer_.reset();
  buffer_off_ = buffer_len_ = 0;
}

splice_pump::io splice_pump::fill(int src_fd, size_t max) {
  for (;;) {
    ssize_t n;
    if (pipe_.valid()) {
      n = ::splice(src_fd, nullptr, pipe_.wr, nullptr, max, splice_flags);
    } else {
      n = ::recv(src_fd, buffer_.get(), max < copy_buffer_size ? max : copy_buffer_size, 0);
    }
    if (n > 0) {
      if (pipe_.valid()) {
        pipe_.pending += static_cast<size_t>(n);
      } else {
        buffer_off_ = 0;
        buffer_len_ = static_cast<uint32_t>(n);
      }
      return io::progress;
    }
    if (n == 0) return io::eof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return io::again;
    error_ = errno;
    return io::error;
  }
}

splice_pump::io splice_pump::flush(int dst_fd, size_t& moved) {
  while (held_bytes() != 0) {
    ssize_t n;
    if (pipe_.valid()) {
      // Source at EOF: cork the last bytes, the caller's shutdown() pushes them with the FIN.
      n = ::splice(pipe_.rd, nullptr, dst_fd, nullptr, pipe_.pending, splice_flags | (src_eof_ ? SPLICE_F_MORE : 0));
    } else {
      n = ::send(dst_fd, buffer_.get() + buffer_off_, buffer_len_ - buffer_off_,
                 MSG_NOSIGNAL | (src_eof_ ? MSG_MORE : 0));
    }
    if (n > 0) {
      if (pipe_.valid()) {
        pipe_.pending -= static_cast<size_t>(n);
      } else {
        buffer_off_ += static_cast<uint32_t>(n);
      }
      moved += static_cast<size_t>(n);
      bytes_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return io::again;
    error_ = n < 0 ? errno : EPIPE;  // 0 cannot happen with bytes held
    return io::error;
  }
  return io::progress;
}

}  // namespace egressd::proxy
