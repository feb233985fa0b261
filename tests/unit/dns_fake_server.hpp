#pragma once
// A tiny authoritative DNS server for tests: UDP on 127.0.0.1, port 0, and TCP
// on the same port, served by its own std::thread. Per-name behaviour (answer
// A/AAAA with a TTL, NXDOMAIN, SERVFAIL, silence, delayed answers, truncated
// over UDP so the client must retry over TCP); records every question.
// Thread contract: configure and inspect from the test thread (mutex inside);
// the server thread only reads the configuration.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace egressd::dns::testing {

class fake_dns_server {
 public:
  enum class kind { answer, nxdomain, servfail, silent };
  struct zone {
    kind k = kind::answer;
    std::vector<std::string> v4, v6;  // empty answer section = NODATA
    uint32_t ttl = 60;
    std::chrono::milliseconds delay{0};
    bool truncate_udp = false;  // UDP gets TC=1 and no answers; TCP answers
  };
  struct question {
    std::string name;
    uint16_t qtype;
    bool tcp;
  };
  static constexpr uint16_t type_a = 1, type_aaaa = 28;

  fake_dns_server() {
    // TCP first (port 0), then UDP on the same port; the loopback TCP port
    // space is the busier one. Retry on the rare UDP collision.
    for (int attempt = 0; attempt < 50 && port_ == 0; ++attempt) {
      tcp_ = ::socket(AF_INET, SOCK_STREAM, 0);
      fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
      if (tcp_ < 0 || fd_ < 0) throw std::runtime_error("socket");
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof sa;
      if (::bind(tcp_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(tcp_, 16) != 0 ||
          ::getsockname(tcp_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
        throw std::runtime_error(std::string("tcp bind: ") + std::strerror(errno));
      }
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        port_ = ntohs(sa.sin_port);
      } else {
        ::close(tcp_);
        ::close(fd_);
      }
    }
    if (port_ == 0) throw std::runtime_error("no free port for TCP+UDP");
    const int rcvbuf = 1 << 20;  // bursts of hundreds of queries (capped by rmem_max)
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    thread_ = std::thread([this] { loop(); });
  }
  ~fake_dns_server() {
    stop_ = true;
    thread_.join();
    for (int c : conns_) ::close(c);
    ::close(tcp_);
    ::close(fd_);
  }
  fake_dns_server(const fake_dns_server&) = delete;
  fake_dns_server& operator=(const fake_dns_server&) = delete;

  uint16_t port() const { return port_; }
  void set(const std::string& name, zone z) {
    std::lock_guard lk(mu_);
    zones_[name] = std::move(z);
  }
  // Behaviour for names without a zone (default: NXDOMAIN).
  void set_default(zone z) {
    std::lock_guard lk(mu_);
    default_ = std::move(z);
  }
  std::vector<question> questions() const {
    std::lock_guard lk(mu_);
    return seen_;
  }
  size_t count(const std::string& name, uint16_t qtype) const {
    std::lock_guard lk(mu_);
    size_t n = 0;
    for (const auto& q : seen_) n += (q.name == name && q.qtype == qtype);
    return n;
  }
  size_t count_tcp(const std::string& name) const {
    std::lock_guard lk(mu_);
    size_t n = 0;
    for (const auto& q : seen_) n += (q.name == name && q.tcp);
    return n;
  }
  size_t count(const std::string& name) const {
    return count(name, type_a) + count(name, type_aaaa);
  }

 private:
  struct pending {
    std::chrono::steady_clock::time_point due;
    std::vector<uint8_t> bytes;
    sockaddr_in to;
  };

  void loop() {
    std::vector<pending> later;
    while (!stop_) {
      std::vector<pollfd> fds{{fd_, POLLIN, 0}, {tcp_, POLLIN, 0}};
      for (int c : conns_) fds.push_back({c, POLLIN, 0});
      ::poll(fds.data(), fds.size(), 5);
      if (fds[1].revents & POLLIN) {
        const int c = ::accept(tcp_, nullptr, nullptr);
        if (c >= 0) conns_.push_back(c);
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) serve_tcp(fds[i].fd);
      }
      const auto now = std::chrono::steady_clock::now();
      for (auto it = later.begin(); it != later.end();) {
        if (it->due <= now) {
          send(it->bytes, it->to);
          it = later.erase(it);
        } else {
          ++it;
        }
      }
      if (!(fds[0].revents & POLLIN)) continue;
      uint8_t buf[1500];
      sockaddr_in from{};
      socklen_t flen = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
      zone z;
      auto reply = handle(buf, n, false, &z);
      if (reply.empty()) continue;
      if (z.delay.count() > 0) {
        later.push_back({now + z.delay, std::move(reply), from});
      } else {
        send(reply, from);
      }
    }
  }

  // One DNS message over TCP (2-byte length prefix); closes on EOF/error.
  void serve_tcp(int c) {
    uint8_t len[2];
    uint8_t buf[1500];
    bool ok = read_full(c, len, 2);
    const size_t n = static_cast<size_t>(len[0] << 8 | len[1]);
    ok = ok && n <= sizeof buf && read_full(c, buf, n);
    if (ok) {
      zone z;
      auto reply = handle(buf, static_cast<ssize_t>(n), true, &z);
      if (!reply.empty()) {
        const uint8_t hdr[2] = {static_cast<uint8_t>(reply.size() >> 8), static_cast<uint8_t>(reply.size())};
        reply.insert(reply.begin(), hdr, hdr + 2);
        ok = ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(reply.size());
      }
    }
    if (!ok) {
      ::close(c);
      std::erase(conns_, c);
    }
  }

  static bool read_full(int c, uint8_t* p, size_t n) {
    while (n > 0) {
      pollfd pf{c, POLLIN, 0};
      if (::poll(&pf, 1, 1000) <= 0) return false;
      const ssize_t r = ::recv(c, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  // Records the question and builds the reply (empty: stay silent).
  std::vector<uint8_t> handle(const uint8_t* buf, ssize_t n, bool tcp, zone* zout) {
    if (n < 12) return {};
    std::string name;
    size_t pos = 12;
    while (pos < static_cast<size_t>(n) && buf[pos] != 0) {
      const size_t len = buf[pos];
      if (pos + 1 + len > static_cast<size_t>(n)) break;
      if (!name.empty()) name += '.';
      name.append(reinterpret_cast<const char*>(buf + pos + 1), len);
      pos += 1 + len;
    }
    if (pos + 5 > static_cast<size_t>(n)) return {};
    const size_t qend = pos + 5;  // root label, qtype, qclass
    const uint16_t qtype = static_cast<uint16_t>(buf[pos + 1] << 8 | buf[pos + 2]);
    zone& z = *zout;
    {
      std::lock_guard lk(mu_);
      seen_.push_back({name, qtype, tcp});
      auto it = zones_.find(name);
      z = it != zones_.end() ? it->second : default_;
    }
    if (z.k == kind::silent) return {};
    if (z.truncate_udp && !tcp) {
      zone empty = z;
      empty.v4.clear();
      empty.v6.clear();
      auto r = build(buf, qend, qtype, empty);
      r[2] |= 0x02;  // TC
      return r;
    }
    return build(buf, qend, qtype, z);
  }

  static std::vector<uint8_t> build(const uint8_t* q, size_t qend, uint16_t qtype, const zone& z) {
    std::vector<std::vector<uint8_t>> rdatas;
    if (z.k == kind::answer) {
      for (const auto& s : qtype == type_a ? z.v4 : qtype == type_aaaa ? z.v6
                                                                         : std::vector<std::string>{}) {
        std::vector<uint8_t> rd(qtype == type_a ? 4 : 16);
        ::inet_pton(qtype == type_a ? AF_INET : AF_INET6, s.c_str(), rd.data());
        rdatas.push_back(std::move(rd));
      }
    }
    const uint8_t rcode = z.k == kind::nxdomain ? 3 : z.k == kind::servfail ? 2 : 0;
    std::vector<uint8_t> r(q, q + qend);
    r[2] = static_cast<uint8_t>(0x80 | (q[2] & 0x79));  // QR, opcode, RD; AA/TC clear
    r[3] = static_cast<uint8_t>(0x80 | rcode);          // RA
    r[6] = 0;
    r[7] = static_cast<uint8_t>(rdatas.size());
    r[8] = r[9] = r[10] = r[11] = 0;
    for (const auto& rd : rdatas) {
      const uint8_t rr[] = {0xc0, 0x0c, static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype),
                            0, 1,
                            static_cast<uint8_t>(z.ttl >> 24), static_cast<uint8_t>(z.ttl >> 16),
                            static_cast<uint8_t>(z.ttl >> 8), static_cast<uint8_t>(z.ttl),
                            0, static_cast<uint8_t>(rd.size())};
      r.insert(r.end(), rr, rr + sizeof rr);
      r.insert(r.end(), rd.begin(), rd.end());
    }
    return r;
  }

  void send(const std::vector<uint8_t>& bytes, const sockaddr_in& to) {
    ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }

  int fd_ = -1;
  int tcp_ = -1;
  std::vector<int> conns_;  // server thread only
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, zone> zones_;
  zone default_{kind::nxdomain, {}, {}, 60, std::chrono::milliseconds(0), false};
  std::vector<question> seen_;
  std::thread thread_;
};

}  // namespace egressd::dns::testing
