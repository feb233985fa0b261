// relay() at scale and its resources: many concurrent tunnels (far ends as
// coroutines on the relay's own io_context, single thread), no fd leak over
// every kind of ending, and the heap held by an idle tunnel.
#include <malloc.h>

#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "proxy/relay/tunnel.hpp"
#include "relay_test_util.hpp"

namespace {

using namespace relay_test;
using namespace std::chrono_literals;
using egressd::proxy::pipe_pool;
using egressd::proxy::relay;
using egressd::proxy::relay_end;
using egressd::proxy::relay_result;
using boost::system::error_code;

void spawn_relay(asio::io_context& io, tcp_pair& c, tcp_pair& u, std::string_view first_up,
                 std::string_view first_down, std::chrono::milliseconds idle, pipe_pool& pool,
                 std::optional<relay_result>& out) {
  asio::co_spawn(io, relay(c.relay_side, u.relay_side, first_up, first_down, idle, pool),
                 [&out](std::exception_ptr e, relay_result r) {
                   EXPECT_FALSE(e) << "relay threw";
                   out = r;
                 });
}

std::string stream_bytes(std::string_view prefix, uint64_t seed, size_t n) {
  std::string s(prefix);
  s.resize(prefix.size() + n);
  fill_stream(seed, 0, s.data() + prefix.size(), n);
  return s;
}

asio::awaitable<std::string> read_to_eof(tcp::socket& s) {
  std::string in;
  std::vector<char> buf(16 * 1024);
  for (;;) {
    error_code ec;
    const size_t n = co_await s.async_read_some(asio::buffer(buf),
                                                asio::redirect_error(asio::use_awaitable, ec));
    in.append(buf.data(), n);
    if (ec) break;
  }
  co_return in;
}

struct tunnel_case {
  explicit tunnel_case(loopback& lo) : c(lo.make_pair()), u(lo.make_pair()) {}
  tcp_pair c, u;
  std::string first_up, first_down;
  std::optional<relay_result> result;
  // Far ends as Asio sockets, and what they send and expect.
  std::optional<tcp::socket> client_end, upstream_end;
  std::string client_sends, client_expects, upstream_sends, upstream_expects;
  bool client_ok = false, upstream_ok = false;
};

// Far ends of one tunnel: the client sends, half-closes, reads the reply;
// the upstream reads to EOF, then replies and closes. (A reference to a case
// that outlives the run rather than by-value class arguments: GCC 12
// mishandles class-type temporaries passed by value to a coroutine.)
asio::awaitable<void> run_client_end(tunnel_case& t) {
  co_await asio::async_write(*t.client_end, asio::buffer(t.client_sends), asio::use_awaitable);
  t.client_end->shutdown(tcp::socket::shutdown_send);
  const std::string got = co_await read_to_eof(*t.client_end);
  t.client_ok = got == t.client_expects;
}
asio::awaitable<void> run_upstream_end(tunnel_case& t) {
  const std::string got = co_await read_to_eof(*t.upstream_end);
  t.upstream_ok = got == t.upstream_expects;
  co_await asio::async_write(*t.upstream_end, asio::buffer(t.upstream_sends), asio::use_awaitable);
  t.upstream_end->close();
}

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

size_t up_size(int i) { return 1000 + static_cast<size_t>(i) * 397 % 50000; }
size_t down_size(int i) { return 3000 + static_cast<size_t>(i) * 911 % 90000; }

// Runs `count` small tunnels concurrently on `io` and checks every byte.
void run_many(asio::io_context& io, loopback& lo, pipe_pool& pool, int count) {
  std::vector<std::unique_ptr<tunnel_case>> cases;
  for (int i = 0; i < count; ++i) {
    auto& t = *cases.emplace_back(std::make_unique<tunnel_case>(lo));
    t.first_up = "up" + std::to_string(i);
    t.first_down = "down" + std::to_string(i);
    const uint64_t seed = 100 + static_cast<uint64_t>(i) * 2;
    t.client_sends = stream_bytes({}, seed, up_size(i));
    t.upstream_expects = stream_bytes(t.first_up, seed, up_size(i));
    t.upstream_sends = stream_bytes({}, seed + 1, down_size(i));
    t.client_expects = stream_bytes(t.first_down, seed + 1, down_size(i));
    t.client_end.emplace(io, tcp::v4(), t.c.peer.release());
    t.upstream_end.emplace(io, tcp::v4(), t.u.peer.release());
    spawn_relay(io, t.c, t.u, t.first_up, t.first_down, 30s, pool, t.result);
    asio::co_spawn(io, run_client_end(t), rethrow);
    asio::co_spawn(io, run_upstream_end(t), rethrow);
  }
  io.restart();
  io.run();
  for (int i = 0; i < count; ++i) {
    const auto& t = *cases[static_cast<size_t>(i)];
    EXPECT_TRUE(t.client_ok) << i;
    EXPECT_TRUE(t.upstream_ok) << i;
    ASSERT_TRUE(t.result) << i;
    EXPECT_EQ(t.result->end, relay_end::done) << i;
    EXPECT_EQ(t.result->bytes_up, t.first_up.size() + up_size(i));
    EXPECT_EQ(t.result->bytes_down, t.first_down.size() + down_size(i));
  }
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(relay_scale, two_hundred_concurrent_tunnels) {
  asio::io_context io;
  loopback lo(io);
  pipe_pool pool;
  run_many(io, lo, pool, 200);
  EXPECT_LE(pool.idle(), 256u);
}

// Every way a tunnel can end, then everything is destroyed: the process has
// exactly the fds it had before.
TEST(relay_scale, no_fd_leak) {
  const int before = count_open_fds();
  {
    asio::io_context io;
    loopback lo(io);
    pipe_pool pool;
    const int with_listener = count_open_fds();
    run_many(io, lo, pool, 20);  // done
    for (relay_end want : {relay_end::upstream_error, relay_end::idle_timeout, relay_end::closed}) {
      auto c = lo.make_pair();
      auto u = lo.make_pair();
      std::optional<relay_result> result;
      spawn_relay(io, c, u, "x", "y", 50ms, pool, result);
      std::thread peer;
      if (want == relay_end::upstream_error) {
        // Upstream resets while the client is mid-stream.
        peer = std::thread([&] {
          recv_stream(u.peer.get(), 0, {}, 1);
          u.peer.reset_hard();
        });
        ::send(c.peer.get(), "zzzz", 4, MSG_NOSIGNAL);
      } else if (want == relay_end::closed) {
        asio::post(io, [&] { u.relay_side.close(); });
      }
      io.restart();
      io.run();
      if (peer.joinable()) peer.join();
      ASSERT_TRUE(result);
      EXPECT_EQ(result->end, want) << egressd::proxy::to_string(want);
    }
    EXPECT_EQ(pool.in_use(), 0u);
    // Only pooled pipes remain (the pairs above are destroyed).
    EXPECT_EQ(count_open_fds(), with_listener + 2 * static_cast<int>(pool.idle()));
  }
  EXPECT_EQ(count_open_fds(), before);
}

// Heap held per idle tunnel: frames, pending waits, timer; no pipe, no buffer.
TEST(relay_scale, idle_tunnel_memory) {
  constexpr int n = 200;
  asio::io_context io;
  loopback lo(io);
  pipe_pool pool;
  std::vector<std::unique_ptr<tunnel_case>> cases;
  for (int i = 0; i < n; ++i) cases.push_back(std::make_unique<tunnel_case>(lo));
  // Warm up the allocator caches and Asio's per-thread state with one tunnel.
  {
    std::optional<relay_result> r;
    auto c = lo.make_pair();
    auto u = lo.make_pair();
    spawn_relay(io, c, u, {}, {}, 60s, pool, r);
    io.run_for(20ms);
    c.relay_side.close();
    io.run();
    io.restart();
  }
  const size_t heap_before = mallinfo2().uordblks;
  for (auto& t : cases) spawn_relay(io, t->c, t->u, {}, {}, 60s, pool, t->result);
  io.run_for(100ms);
  const size_t heap_idle = mallinfo2().uordblks;
  const double per_tunnel = (static_cast<double>(heap_idle) - static_cast<double>(heap_before)) / n;
  std::printf("heap per idle tunnel: %.0f bytes (pipes in use: %zu)\n", per_tunnel, pool.in_use());
  EXPECT_EQ(pool.in_use(), 0u);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // The sanitizers' allocators are not glibc's: mallinfo2() says nothing there.
  EXPECT_GT(per_tunnel, 0.0);
  EXPECT_LE(per_tunnel, 8192.0);
#endif
  for (auto& t : cases) t->c.relay_side.close();
  io.run();
  for (auto& t : cases) {
    ASSERT_TRUE(t->result);
    EXPECT_EQ(t->result->end, relay_end::closed);
  }
}

}  // namespace
