// Per-worker pipe pool; see pipe_pool.hpp for the contract.
#include "proxy/relay/pipe_pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <mutex>

namespace egressd::proxy {

namespace {

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        (old.sa_flags & SA_SIGINFO) == 0) {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      ::sigaction(SIGPIPE, &ign, nullptr);
    }
  });
}

}  // namespace

pipe_pool::pipe_pool(size_t max_idle, size_t pipe_size, size_t max_pipes)
    : max_idle_(max_idle), pipe_size_(pipe_size), max_pipes_(max_pipes) {
  ignore_sigpipe_once();
}

pipe_pool::~pipe_pool() {
  for (pipe& p : idle_) close_pipe(p);
}

bool pipe_pool::acquire(pipe& p) {
  if (!idle_.empty()) {
    p = idle_.back();
    idle_.pop_back();
    ++in_use_;
    return true;
  }
  if (in_use_ >= max_pipes_) {
    ++copy_fallbacks_;
    return false;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    ++copy_fallbacks_;
    return false;
  }
  if (pipe_size_ != 0) {
    // May fail with EPERM past the per-user pipe limit: keep the size we got.
    (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(pipe_size_));
  }
  // Past pipe-user-pages-soft an unprivileged user gets 2-page pipes that
  // cannot grow; splicing 8 KiB at a time costs more than the copy path.
  const int got = ::fcntl(fds[1], F_GETPIPE_SZ);
  if (got < static_cast<int>(min_useful_pipe)) {
    ::close(fds[0]);
    ::close(fds[1]);
    ++copy_fallbacks_;
    return false;
  }
  p.rd = fds[0];
  p.wr = fds[1];
  p.pending = 0;
  ++created_;
  ++in_use_;
  return true;
}

void pipe_pool::release(pipe& p) {
  if (!p.valid()) return;
  if (p.pending != 0) {
    discard(p);
    return;
  }
  --in_use_;
  if (idle_.size() < max_idle_) {
    idle_.push_back(p);
    p = pipe{};
  } else {
    close_pipe(p);
  }
}

void pipe_pool::discard(pipe& p) {
  if (!p.valid()) return;
  --in_use_;
  close_pipe(p);
}

void pipe_pool::close_pipe(pipe& p) {
  ::close(p.rd);
  ::close(p.wr);
  p = pipe{};
}

}  // namespace egressd::proxy
