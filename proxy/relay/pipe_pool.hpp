#pragma once
// Per-worker pool of kernel pipes for splice(2). Owned by one worker and used
// only from its thread (not thread-safe, no locks). A pipe leaves the pool
// while a tunnel direction has bytes in flight and comes back as soon as it is
// empty, so the pool holds roughly one pipe per direction that is moving data
// at the same moment, never one per connection.
//
// Pipe capacity counts against the user's pipe-user-pages-soft limit (64 MiB
// by default for a non-root user; root is exempt): with 256 KiB pipes, 256
// pipes (idle ones included, across all workers) reach it. Past it the kernel
// only makes 8 KiB pipes; acquire() then fails and the caller copies.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace egressd::proxy {

class pipe_pool {
 public:
  struct pipe {
    int rd = -1;
    int wr = -1;
    size_t pending = 0;  // bytes spliced in, not yet spliced out
    bool valid() const { return rd >= 0; }
  };

  // 256 KiB: relay CPU per GB is ~25% lower than with 64 KiB pipes and ~60%
  // higher than with 1 MiB (tests/unit/relay_throughput_test.cpp), but a
  // direction whose destination is slow parks up to a full pipe in the
  // kernel, and capacity counts against the per-user limit: 256 KiB is the
  // compromise.
  static constexpr size_t default_pipe_size = 256 * 1024;
  // A new pipe smaller than this (the per-user limit was reached) is closed
  // and the burst is copied instead.
  static constexpr size_t min_useful_pipe = 64 * 1024;

  // pipe_size: F_SETPIPE_SZ for new pipes (0 keeps the kernel default, 64 KiB).
  // max_pipes: pipes that may exist at once, idle ones included (HAProxy's
  // maxpipes; bounds kernel memory and the per-user pipe quota this worker
  // takes); past it bursts are copied. 0 disables splice.
  // Also makes SIGPIPE ignored process-wide if it still has its default
  // disposition: splice(2) into a reset socket raises SIGPIPE (it has no
  // MSG_NOSIGNAL), which would kill the process.
  explicit pipe_pool(size_t max_idle = 256, size_t pipe_size = default_pipe_size,
                     size_t max_pipes = SIZE_MAX);
  ~pipe_pool();
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;

  // False when no pipe can be made (max_pipes reached, EMFILE, or only a
  // uselessly small one past the per-user limit); the caller then copies.
  bool acquire(pipe& p);
  // Precondition: p.pending == 0. Returns it to the pool (or closes it).
  void release(pipe& p);
  // A pipe that may hold stale bytes (error mid-transfer) is closed.
  void discard(pipe& p);

  // Introspection for tests and metrics.
  size_t idle() const { return idle_.size(); }
  size_t in_use() const { return in_use_; }
  uint64_t created() const { return created_; }
  uint64_t copy_fallbacks() const { return copy_fallbacks_; }  // copy fallbacks
  size_t pipe_size() const { return pipe_size_; }

 private:
  static void close_pipe(pipe& p);

  std::vector<pipe> idle_;
  size_t max_idle_;
  size_t pipe_size_;
  size_t max_pipes_;
  size_t in_use_ = 0;
  uint64_t created_ = 0;
  uint64_t copy_fallbacks_ = 0;
};

}  // namespace egressd::proxy
