// The denial feed (see denial_feed.hpp).

#include "state/denial_feed.hpp"

#include <algorithm>
#include <functional>
#include <tuple>

namespace egressd::state {
namespace {

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// agent-or-client \0 host \0 port \0 reason: no field can contain a NUL.
void make_key(std::string& key, std::string_view who, std::string_view host, uint16_t port, acl::reason why) {
  key.assign(who);
  key += '\0';
  key += host;
  key += '\0';
  key += std::to_string(port);
  key += '\0';
  key += static_cast<char>(static_cast<uint8_t>(why) + 1);
}

}  // namespace

struct denial_feed::shard {
  struct entry {
    std::string key;
    group g;
    uint64_t taken = 0;  // g.count already handed to take_changes()
  };
  mutable std::mutex mu;
  std::list<entry> order;  // most recently denied first
  std::unordered_map<std::string_view, std::list<entry>::iterator, string_hash, std::equal_to<>> index;
  std::string scratch;  // key buffer reused by record()
};

denial_feed::denial_feed(unsigned shards) {
  for (unsigned i = 0; i < std::max(1u, shards); ++i) shards_.push_back(std::make_unique<shard>());
}

denial_feed::~denial_feed() = default;

void denial_feed::record(unsigned shard_index, std::string_view agent, std::string_view client, std::string_view host,
                         uint16_t port, acl::reason why, clock::time_point now) {
  shard& s = *shards_[shard_index % shards_.size()];
  std::lock_guard lock(s.mu);
  make_key(s.scratch, agent.empty() ? client : agent, host, port, why);
  if (auto it = s.index.find(std::string_view(s.scratch)); it != s.index.end()) {
    group& g = it->second->g;
    ++g.count;
    g.last = now;
    if (!agent.empty()) g.client.assign(client);
    s.order.splice(s.order.begin(), s.order, it->second);
    return;
  }
  if (s.order.size() >= max_groups) {
    s.index.erase(std::string_view(s.order.back().key));
    s.order.pop_back();
  }
  s.order.push_front(shard::entry{
      s.scratch, group{std::string(agent), std::string(client), std::string(host), port, why, 1, now, now}, 0});
  s.index.emplace(std::string_view(s.order.front().key), s.order.begin());
}

std::vector<denial_feed::group> denial_feed::read(std::optional<clock::time_point> since) const {
  std::unordered_map<std::string, group> merged;
  for (const auto& sp : shards_) {
    std::lock_guard lock(sp->mu);
    for (const auto& e : sp->order) {
      auto [it, fresh] = merged.try_emplace(e.key, e.g);
      if (fresh) continue;
      group& g = it->second;
      g.count += e.g.count;
      g.first = std::min(g.first, e.g.first);
      if (e.g.last > g.last) {
        g.last = e.g.last;
        g.client = e.g.client;
      }
    }
  }
  std::vector<group> out;
  out.reserve(merged.size());
  for (auto& [k, g] : merged)
    if (!since || g.last >= *since) out.push_back(std::move(g));
  std::sort(out.begin(), out.end(), [](const group& a, const group& b) {
    if (a.last != b.last) return a.last > b.last;
    return std::tie(a.agent, a.client, a.host, a.port) < std::tie(b.agent, b.client, b.host, b.port);
  });
  if (out.size() > max_groups) out.resize(max_groups);
  return out;
}

std::vector<denial_feed::group> denial_feed::take_changes() {
  std::vector<group> out;
  for (const auto& sp : shards_) {
    std::lock_guard lock(sp->mu);
    for (auto& e : sp->order) {  // most recently denied first: stop at the first one unchanged
      if (e.g.count == e.taken) break;
      out.push_back(e.g);
      out.back().count = e.g.count - e.taken;
      e.taken = e.g.count;
    }
  }
  return out;
}

}  // namespace egressd::state
