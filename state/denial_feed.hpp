#pragma once
// The denial feed behind `GET /v1/denials`: recent denials grouped by
// (agent or client address, host, port, reason) with a count and the first
// and last time. Each worker records into its own shard under the shard's
// own mutex, which only a reader of the feed ever contends (workers never
// share one); a reader merges the shards. Memory is bounded: each shard
// keeps at most max_groups groups, the least recently denied dropped first.

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "acl/policy.hpp"

namespace egressd::state {

class denial_feed {
 public:
  using clock = std::chrono::system_clock;
  static constexpr size_t max_groups = 1000;

  struct group {
    std::string agent;   // the grouping key when not empty
    std::string client;  // address without port: the key when agent is empty, else the last one seen
    std::string host;
    uint16_t port = 0;
    acl::reason why = acl::reason::none;
    uint64_t count = 0;
    clock::time_point first, last;
  };

  explicit denial_feed(unsigned shards);
  ~denial_feed();

  // From the thread owning `shard` (a worker's index).
  void record(unsigned shard, std::string_view agent, std::string_view client, std::string_view host, uint16_t port,
              acl::reason why, clock::time_point now);

  // Any thread: the merged groups whose `last` is at or after `since`, most
  // recently denied first, at most max_groups.
  std::vector<group> read(std::optional<clock::time_point> since) const;

  // Any thread (the state thread, `state redis://`): every group denied
  // since the last call, one per shard and key, with `count` the denials
  // since then (first/last as recorded). A group dropped from a full shard
  // before it was taken loses its untaken count.
  std::vector<group> take_changes();

 private:
  struct shard;
  std::vector<std::unique_ptr<shard>> shards_;
};

}  // namespace egressd::state
