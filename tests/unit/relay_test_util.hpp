#pragma once
// Helpers shared by the relay tests (test-only): loopback TCP pairs whose
// relay side is an Asio socket and whose far side is a plain fd, a
// deterministic byte stream with a running checksum, and blocking senders /
// receivers meant to run on their own std::thread while the test thread runs
// the io_context. Nothing here is thread-safe beyond that split.

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace relay_test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Owns a plain socket fd.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Close with RST instead of FIN.
  void reset_hard() {
    if (fd_ < 0) return;
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    reset();
  }

 private:
  int fd_ = -1;
};

struct tcp_pair {
  tcp::socket relay_side;  // handed to relay()
  unique_fd peer;          // the far end (the client or the upstream server)
};

class loopback {
 public:
  explicit loopback(asio::io_context& io)
      : io_(io), acceptor_(io, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0)) {}

  tcp_pair make_pair() {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto ep = acceptor_.local_endpoint();
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ep.port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
    tcp::socket s(io_);
    acceptor_.accept(s);
    return tcp_pair{std::move(s), std::move(fd)};
  }

 private:
  asio::io_context& io_;
  tcp::acceptor acceptor_;
};

// Deterministic stream: byte at offset `off` of stream `seed`.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline void fill_stream(uint64_t seed, uint64_t off, char* p, size_t n) {
  while (n > 0) {
    const uint64_t word = mix(seed * 0x100000001b3ULL ^ (off / 8));
    for (unsigned b = off % 8; b < 8 && n > 0; ++b, ++off, --n) {
      *p++ = static_cast<char>(word >> (8 * b));
    }
  }
}

// FNV-1a 64 over a byte sequence, fed in pieces.
struct checksum {
  uint64_t h = 0xcbf29ce484222325ULL;
  void feed(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ULL;
  }
};

// What a receiver saw.
struct received {
  uint64_t bytes = 0;
  uint64_t sum = checksum{}.h;
  bool matches = true;      // every byte equal to prefix + stream(seed)
  int end_errno = 0;        // 0: clean EOF; else errno of the failing recv
};

// Blocking: sends `prefix` (may be empty) then `total` bytes of stream `seed`,
// then shuts down the write side if `shut`. Returns the checksum of all of it.
inline uint64_t send_stream(int fd, uint64_t seed, uint64_t total, bool shut = true,
                            std::string_view prefix = {}) {
  checksum sum;
  std::vector<char> buf(256 * 1024);
  sum.feed(prefix.data(), prefix.size());
  for (size_t off = 0; off < prefix.size();) {
    ssize_t n = ::send(fd, prefix.data() + off, prefix.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return sum.h;
    off += static_cast<size_t>(n);
  }
  for (uint64_t off = 0; off < total;) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(buf.size(), total - off));
    fill_stream(seed, off, buf.data(), chunk);
    sum.feed(buf.data(), chunk);
    for (size_t sent = 0; sent < chunk;) {
      ssize_t n = ::send(fd, buf.data() + sent, chunk - sent, MSG_NOSIGNAL);
      if (n <= 0) return sum.h;
      sent += static_cast<size_t>(n);
    }
    off += chunk;
  }
  if (shut) ::shutdown(fd, SHUT_WR);
  return sum.h;
}

// The checksum a receiver should see for prefix + stream(seed, total).
inline uint64_t expected_sum(std::string_view prefix, uint64_t seed, uint64_t total) {
  checksum sum;
  sum.feed(prefix.data(), prefix.size());
  std::vector<char> buf(256 * 1024);
  for (uint64_t off = 0; off < total;) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(buf.size(), total - off));
    fill_stream(seed, off, buf.data(), chunk);
    sum.feed(buf.data(), chunk);
    off += chunk;
  }
  return sum.h;
}

// Blocking: reads until EOF or error (or `limit` bytes), checking each byte
// against prefix + stream(seed).
inline received recv_stream(int fd, uint64_t seed, std::string_view prefix = {},
                            uint64_t limit = UINT64_MAX) {
  received r;
  checksum sum;
  std::vector<char> buf(256 * 1024), want(buf.size());
  while (r.bytes < limit) {
    const size_t ask = static_cast<size_t>(std::min<uint64_t>(buf.size(), limit - r.bytes));
    ssize_t n = ::recv(fd, buf.data(), ask, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      r.end_errno = n < 0 ? errno : 0;
      break;
    }
    sum.feed(buf.data(), static_cast<size_t>(n));
    if (r.matches) {
      size_t i = 0;
      for (; i < static_cast<size_t>(n) && r.bytes + i < prefix.size(); ++i) {
        if (buf[i] != prefix[r.bytes + i]) r.matches = false;
      }
      if (i < static_cast<size_t>(n)) {
        const uint64_t off = r.bytes + i - prefix.size();
        fill_stream(seed, off, want.data(), static_cast<size_t>(n) - i);
        if (std::memcmp(buf.data() + i, want.data(), static_cast<size_t>(n) - i) != 0) {
          r.matches = false;
        }
      }
    }
    r.bytes += static_cast<uint64_t>(n);
  }
  r.sum = sum.h;
  return r;
}

inline int count_open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n - 1;  // the directory stream itself
}

}  // namespace relay_test
