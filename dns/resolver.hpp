#pragma once
// Asynchronous A+AAAA resolver: c-ares driven by one worker's io_context (no
// helper thread, no getaddrinfo). One instance per worker thread; every call
// must come from that thread, and resolve() must be co_spawned on that
// io_context. Owns its c-ares channel and a bounded TTL cache. Destroy it
// before its io_context; destroying it with lookups pending completes their
// awaiters with failure (they resume later without touching the resolver).
// The caller decides *whether* a name may be resolved: a denied name must
// never reach resolve(). The static hosts table is also the caller's: this
// resolver asks DNS only, without search domains.

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
#include "dns/result.hpp"

namespace egressd::dns {

struct resolver_options {
  // Upstream servers as ("ip" or "[v6]", port; 0 = 53); empty = resolv.conf.
  std::vector<std::pair<std::string, uint16_t>> servers;
  std::chrono::milliseconds timeout{5000};  // bounds a whole lookup, retries included
  size_t cache_entries = 10000;             // 0 disables the cache
  std::chrono::seconds negative_ttl{5};     // NXDOMAIN / no data
  std::chrono::seconds max_ttl{300};
  std::chrono::seconds min_ttl{1};
};

class resolver {
 public:
  // Throws std::runtime_error on a server that is not an IP address or a
  // c-ares init failure (start-up only).
  resolver(boost::asio::io_context& io, resolver_options opts);
  ~resolver();
  resolver(const resolver&) = delete;
  resolver& operator=(const resolver&) = delete;

  // name: normalised lower-case host name (not an IP literal).
  // Completes with ok (>=1 address), nxdomain (also for "no A/AAAA data"),
  // timeout (nothing within opts.timeout) or failure (SERVFAIL, refused, ...).
  // Concurrent lookups of one name share a single upstream query.
  boost::asio::awaitable<result> resolve(std::string name);

  // Drops the channel's pending queries (their awaiters complete with
  // failure) and fails every later resolve(); used at shutdown.
  void shutdown();

  // ok..failure count resolve() outcomes (cache hits included), so they sum
  // to the number of resolve() calls; cache_hits is the subset served from
  // the cache; queries counts upstream lookups (A+AAAA pair, coalesced).
  struct stats {
    uint64_t queries = 0, cache_hits = 0, ok = 0, nxdomain = 0, timeout = 0, failure = 0;
  };
  const stats& counters() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace egressd::dns
