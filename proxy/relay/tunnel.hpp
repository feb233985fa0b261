#pragma once
// Bidirectional tunnel relay with splice(2) through pooled pipes.
// Runs on the worker thread that owns both sockets; the pipe pool is that
// worker's (not thread-safe). An idle tunnel holds no pipe and no buffer:
// a pipe is taken from the pool when data is ready and returned as soon as it
// is empty again.

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace egressd::proxy {

class pipe_pool {
 public:
  struct pipe {
    int rd = -1;
    int wr = -1;
    size_t pending = 0;  // bytes spliced in, not yet spliced out
    bool valid() const { return rd >= 0; }
  };
  explicit pipe_pool(size_t max_idle = 256);
  ~pipe_pool();
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;

  // False when no pipe can be made (EMFILE...); the caller then copies.
  bool acquire(pipe& p);
  // Precondition: p.pending == 0. Returns it to the pool (or closes it).
  void release(pipe& p);
  // A pipe that may hold stale bytes (error mid-transfer) is closed.
  void discard(pipe& p);

 private:
  std::vector<pipe> idle_;
  size_t max_idle_;
};

enum class relay_end : uint8_t {
  done,           // both directions reached EOF and were half-closed through
  idle_timeout,   // no byte either way for `idle`
  client_error,   // reset/error on the client side
  upstream_error, // reset/error on the upstream side
  closed,         // a socket was closed from outside (drain/shutdown)
};
const char* to_string(relay_end e);

struct relay_result {
  uint64_t bytes_up = 0;    // client -> upstream, including first_up
  uint64_t bytes_down = 0;  // upstream -> client, including first_down
  relay_end end = relay_end::done;
};

// Writes first_up to upstream and first_down to the client, then relays both
// ways until both directions are done. EOF from one side -> shutdown(SHUT_WR)
// on the other; an error on either side or the idle timeout closes both.
// Both sockets must be open, connected and owned by the calling worker.
boost::asio::awaitable<relay_result> relay(boost::asio::ip::tcp::socket& client,
                                           boost::asio::ip::tcp::socket& upstream,
                                           std::string_view first_up,
                                           std::string_view first_down,
                                           std::chrono::milliseconds idle, pipe_pool& pipes);

}  // namespace egressd::proxy
