// Throughput of relay() over loopback, one direction, relay on one thread
// (the test's), sender and receiver on their own threads. A measurement, not
// a check: it runs only with EGRESSD_RELAY_BENCH=1 (size in MiB from
// EGRESSD_RELAY_BENCH_MIB, default 1024) and prints MB/s per pipe size, for
// the copy fallback, and for a direct connection without relay.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
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

uint64_t bench_bytes() {
  const char* mib = std::getenv("EGRESSD_RELAY_BENCH_MIB");
  return (mib ? std::strtoull(mib, nullptr, 10) : 1024) << 20;
}

// Blocking sink: reads and discards until EOF.
uint64_t drain(int fd) {
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) return total;
    total += static_cast<uint64_t>(n);
  }
}

// Blocking source of `total` bytes (content irrelevant), then FIN.
void source(int fd, uint64_t total) {
  std::vector<char> buf(1 << 20, 'x');
  for (uint64_t sent = 0; sent < total;) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(buf.size(), total - sent));
    ssize_t n = ::send(fd, buf.data(), chunk, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<uint64_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
}

double thread_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct run_stats {
  double mb_s = 0;
  double relay_cpu_ms_per_gb = 0;  // CPU time of the relay thread
};

double mb_per_s(uint64_t bytes, std::chrono::steady_clock::duration d) {
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

// One run through the relay; `no_pipes` forces the copy fallback.
run_stats through_relay(size_t pipe_size, bool no_pipes) {
  const uint64_t n = bench_bytes();
  asio::io_context io;
  loopback lo(io);
  pipe_pool pool(256, pipe_size, no_pipes ? 0 : SIZE_MAX);
  auto c = lo.make_pair();
  auto u = lo.make_pair();
  std::optional<relay_result> result;
  asio::co_spawn(io, relay(c.relay_side, u.relay_side, {}, {}, 30s, pool),
                 [&](std::exception_ptr, relay_result r) { result = r; });
  uint64_t got = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread tx([&] { source(c.peer.get(), n); });
  std::thread rx([&] {
    got = drain(u.peer.get());
    u.peer.reset();  // lets the down direction end too
  });
  const double cpu0 = thread_cpu_s();
  io.run();
  const double cpu = thread_cpu_s() - cpu0;
  tx.join(), rx.join();
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(result && result->end == relay_end::done);
  EXPECT_EQ(got, n);
  EXPECT_EQ(result->bytes_up, n);
  return run_stats{mb_per_s(n, elapsed), cpu * 1e3 / (static_cast<double>(n) / 1e9)};
}

double direct() {
  const uint64_t n = bench_bytes();
  asio::io_context io;
  loopback lo(io);
  auto p = lo.make_pair();
  const int rx_fd = p.relay_side.native_handle();
  uint64_t got = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread tx([&] { source(p.peer.get(), n); });
  std::thread rx([&] { got = drain(rx_fd); });
  tx.join(), rx.join();
  EXPECT_EQ(got, n);
  return mb_per_s(n, std::chrono::steady_clock::now() - t0);
}

TEST(relay_throughput, loopback_one_direction) {
  if (!std::getenv("EGRESSD_RELAY_BENCH")) GTEST_SKIP() << "set EGRESSD_RELAY_BENCH=1";
  std::printf("%llu MiB one way, %u cores\n",
              static_cast<unsigned long long>(bench_bytes() >> 20),
              std::thread::hardware_concurrency());
  std::printf("direct (no relay)       %8.0f MB/s\n", direct());
  for (size_t size : {size_t{0}, size_t{256} << 10, size_t{1} << 20}) {
    for (int rep = 0; rep < 3; ++rep) {
      const auto r = through_relay(size, false);
      std::printf("splice, pipe %5zu KiB  %8.0f MB/s  relay thread %5.0f ms CPU/GB\n",
                  size ? size >> 10 : 64, r.mb_s, r.relay_cpu_ms_per_gb);
    }
  }
  for (int rep = 0; rep < 3; ++rep) {
    const auto r = through_relay(0, true);
    std::printf("copy fallback (16 KiB)  %8.0f MB/s  relay thread %5.0f ms CPU/GB\n", r.mb_s,
                r.relay_cpu_ms_per_gb);
  }
}

}  // namespace
