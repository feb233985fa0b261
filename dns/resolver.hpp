#pragma once
// Asynchronous A+AAAA resolver: c-ares driven by one worker's io_context (no
// helper thread, no getaddrinfo). One instance per worker thread; every call
// must come from that thread. Owns its c-ares channel and a bounded TTL cache.
// The caller decides *whether* a name may be resolved: a denied name must
// never reach resolve().

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "acl/ip_address.hpp"

namespace egressd::dns {

enum class status : uint8_t { ok, nxdomain, timeout, failure };
const char* to_string(status s);

struct result {
  status st = status::failure;
  std::vector<acl::ip_address> addresses;  // IPv4 first, then IPv6, deduplicated
  bool from_cache = false;
};

struct resolver_options {
  // Upstream servers as "ip" or "ip:port" / "[v6]:port"; empty = resolv.conf.
  std::vector<std::pair<std::string, uint16_t>> servers;
  std::chrono::milliseconds timeout{5000};  // bounds a whole lookup, retries included
  size_t cache_entries = 10000;
  std::chrono::seconds negative_ttl{5};  // NXDOMAIN / no data
  std::chrono::seconds max_ttl{300};
  std::chrono::seconds min_ttl{1};
};

class resolver {
 public:
  resolver(boost::asio::io_context& io, resolver_options opts);
  ~resolver();
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;

  // name: normalised lower-case host name (not an IP literal).
  // Completes with ok (>=1 address), nxdomain (also for "no A/AAAA data"),
  // timeout (nothing within opts.timeout) or failure (SERVFAIL, refused, ...).
  boost::asio::awaitable<result> resolve(std::string name);

  // Drops the channel's pending queries (their awaiters complete with
  // failure); used at shutdown.
  void shutdown();

  struct stats {
    uint64_t queries = 0, cache_hits = 0, ok = 0, nxdomain = 0, timeout = 0, failure = 0;
  };
  const stats& counters() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace egressd::dns
