#pragma once
// Accepting at the descriptor limit. accept(2) failing with EMFILE, ENFILE,
// ENOBUFS or ENOMEM leaves the connection in the listen queue and the
// listener readable: retrying at once spins a core (the admin endpoint did,
// ~19,000 failing accepts a second). Every accept loop (workers, admin, DNS
// over TCP) therefore backs off on these errors; a worker also keeps one spare
// descriptor so that at the limit it can still accept a newcomer, tell it why
// (mode=proxy/http: 503 `overloaded`) or just close it (mode=sni, forwards),
// and free the slot again — a newcomer is never left hanging until its own
// timeout.
//
// spare_descriptor is owned by one thread (its worker). note_accept_failure
// may be called from any thread.

#include <chrono>
#include <string_view>

#include "proxy/asio.hpp"

namespace egressd::proxy {

// EMFILE, ENFILE, ENOBUFS, ENOMEM: resource exhaustion, not a client's fault.
bool out_of_descriptors(const error_code& ec);

// How long an accept loop waits before trying again after such an error.
inline constexpr std::chrono::milliseconds accept_backoff{100};

// Waits accept_backoff on the caller's executor.
awaitable<void> back_off();

// Answers a just-accepted client with `response` and closes its sending
// side, then waits up to 250 ms for it to close, discarding what it sends:
// closing with unread bytes would send a reset, which can destroy the answer
// before the client reads it. The caller closes the socket afterwards.
awaitable<void> tell_overloaded(tcp::socket& s, std::string_view response);

// One open descriptor (/dev/null) held in reserve.
class spare_descriptor {
 public:
  spare_descriptor() { restore(); }
  ~spare_descriptor();
  spare_descriptor(const spare_descriptor&) = delete;
  spare_descriptor& operator=(const spare_descriptor&) = delete;
  // Closes the spare so the next accept can succeed; false if none was held.
  bool release();
  // Reopens it if not held; false when even that fails (still at the limit).
  bool restore();
  // Closes the connection `fd` and keeps its descriptor number as the spare,
  // in one dup2() onto a process-wide /dev/null: the slot is never free, so
  // another thread cannot take it in between (as it could between a close()
  // and an open()). Falls back to close() + restore().
  void adopt(int fd);

 private:
  int fd_ = -1;
};

// One stderr line per 10 s at most, process-wide, saying where accepting
// failed and how many such events the previous line did not report.
void note_accept_failure(std::string_view where, const error_code& ec);

}  // namespace egressd::proxy
