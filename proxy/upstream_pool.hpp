#pragma once
// Idle upstream HTTP connections a worker keeps for later client connections
// to the same host:port (clients that send `Connection: close` would
// otherwise cost a connect and a close to the origin per request). Keyed by
// host:port and by the config snapshot the connection's addresses were
// checked under, so a reload never lets an old check stand. Entries live one
// second at most — no longer than the shortest DNS TTL egressd caches — so
// pooling never stretches a name's resolution. Worker thread only; bounded;
// a connection the origin closed while parked is noticed (MSG_PEEK) and
// dropped on take.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "proxy/asio.hpp"

namespace egressd::proxy {

class upstream_pool {
 public:
  struct entry {
    std::string key;   // "host:port"
    std::string addr;  // ip:port, for the access log
    std::shared_ptr<const config::snapshot> snap;
    tcp::socket sock;
    std::chrono::steady_clock::time_point expires;
  };
  static constexpr size_t max_idle = 64;
  static constexpr std::chrono::milliseconds max_age{1000};

  std::optional<entry> take(std::string_view key, const config::snapshot* snap);
  void put(entry&& e);
  size_t size() const { return idle_.size(); }

 private:
  std::vector<entry> idle_;  // oldest first
};

}  // namespace egressd::proxy
