#pragma once
// One direction of a tunnel, without Asio: moves bytes from a readable socket
// to a writable socket through a pipe taken from the worker's pipe_pool, or
// through a small heap buffer when the pool cannot make a pipe (EMFILE).
//
// step() is synchronous and never blocks (both sockets are O_NONBLOCK): it
// moves what the kernel allows and says what to wait for next. The caller
// (the relay coroutine) owns the waiting. Between bursts the pump holds no
// pipe and no buffer, so an idle direction costs sizeof(splice_pump).
//
// Owned by one tunnel, used on its worker's thread only. The pool must
// outlive every call; the destructor does not touch the pool (it closes a
// pipe still held), so an abnormal teardown order cannot use a dead pool.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proxy/relay/pipe_pool.hpp"

namespace egressd::proxy {

class splice_pump {
 public:
  enum class status : uint8_t {
    need_read,   // source drained (EAGAIN with nothing held) or turn budget
                 // used up; nothing held. Wait until the source is readable.
    need_write,  // destination full with bytes still held. Wait for writable.
    eof,         // source sent FIN and everything was delivered; nothing held.
                 // The last bytes may be corked (MSG_MORE): the caller
                 // shuts the destination down next, which sends them with
                 // the FIN in one segment.
    src_error,   // error() holds errno from the source side
    dst_error,   // error() holds errno from the destination side
  };

  // A burst smaller than this is followed by one more read before it is
  // delivered (see step()).
  static constexpr size_t readahead_limit = 4 * 1024;

  // Size of the copy buffer used for a burst when no pipe can be made.
  static constexpr size_t copy_buffer_size = 16 * 1024;

  explicit splice_pump(pipe_pool& pool) : pool_(&pool) {}
  ~splice_pump();
  splice_pump(const splice_pump&) = delete;
  splice_pump& operator=(const splice_pump&) = delete;

  // Moves bytes until the source is drained, the destination is full, or
  // about `budget` bytes (> 0) were delivered in this call. The budget is
  // both the fairness quantum between tunnels of one worker and the hook for
  // bandwidth pacing: a limiter passes what it may send now.
  status step(int src_fd, int dst_fd, size_t budget);

  // Ends the direction: an empty pipe goes back to the pool, one holding
  // undelivered bytes is closed. Idempotent.
  void abandon();

  // Counts bytes delivered by other means (first bytes written by the caller).
  void count(uint64_t n) { bytes_ += n; }
  uint64_t bytes() const { return bytes_; }  // delivered to the destination
  int error() const { return error_; }
  bool holding() const { return pipe_.valid() || buffer_ != nullptr; }
  size_t held_bytes() const { return pipe_.valid() ? pipe_.pending : buffer_len_ - buffer_off_; }

 private:
  enum class io : uint8_t { progress, again, eof, error };
  bool take();        // acquires a pipe or, failing that, the copy buffer
  void drop();        // returns what is held; precondition: nothing pending
  io fill(int src_fd, size_t max);
  io flush(int dst_fd, size_t& moved);

  pipe_pool* pool_;
  pipe_pool::pipe pipe_;
  std::unique_ptr<char[]> buffer_;
  uint32_t buffer_off_ = 0;
  uint32_t buffer_len_ = 0;
  uint64_t bytes_ = 0;
  int error_ = 0;
  bool src_eof_ = false;
};

}  // namespace egressd::proxy
