#include "monitor/anomaly_detector.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <list>
#include <unordered_map>
#include <utility>

namespace egressd::monitor {
namespace {

constexpr size_t ring_size = 60;  // sub-buckets per window
constexpr int64_t never = std::numeric_limits<int64_t>::min();
// Distinct hosts remembered per client: enough to cross any threshold up to
// this size and to report the count; bounds memory per client.
constexpr size_t min_host_capacity = 128;

int64_t ticks(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

int64_t to_ns(std::chrono::milliseconds d) { return d.count() * 1'000'000; }

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

struct bucket {
  uint32_t requests = 0;
  uint32_t errors = 0;
  uint64_t bytes = 0;
};

struct host_entry {
  uint64_t hash;
  int64_t last_seen;
};

}  // namespace

struct anomaly_detector::client_state {
  explicit client_state(std::string k) : key(std::move(k)) { last_alert.fill(never); }

  std::string key;
  std::array<bucket, ring_size> ring{};
  int64_t head = never;  // absolute index of the newest sub-bucket
  uint64_t requests = 0, errors = 0, bytes = 0;  // sums over the ring
  std::list<host_entry> hosts;                   // least recently seen first
  std::unordered_map<uint64_t, std::list<host_entry>::iterator> host_index;
  std::array<int64_t, alert_type_count> last_alert;
  int64_t blocked_until = never;
  uint64_t requests_total = 0;

  void clear_window() {
    ring.fill(bucket{});
    head = never;
    requests = errors = bytes = 0;
    hosts.clear();
    host_index.clear();
    last_alert.fill(never);
  }

  // Moves the window to `now`: sub-buckets that fell out are subtracted,
  // hosts not seen for a whole window forgotten.
  void advance(int64_t now, int64_t window_ns) {
    const int64_t g = std::max<int64_t>(window_ns / static_cast<int64_t>(ring_size), 1);
    const int64_t idx = floor_div(now, g);
    if (head == never) {
      head = idx;
    } else if (idx > head) {
      const int64_t gap = idx - head;
      if (gap >= static_cast<int64_t>(ring_size)) {
        ring.fill(bucket{});
        requests = errors = bytes = 0;
      } else {
        for (int64_t i = 1; i <= gap; ++i) {
          bucket& b = slot(head + i);
          requests -= b.requests;
          errors -= b.errors;
          bytes -= b.bytes;
          b = bucket{};
        }
      }
      head = idx;
    }  // idx < head: a slightly older clock reading from another worker; use head
    while (!hosts.empty() && now - hosts.front().last_seen >= window_ns) {
      host_index.erase(hosts.front().hash);
      hosts.pop_front();
    }
  }

  bucket& slot(int64_t index) {
    const auto n = static_cast<int64_t>(ring_size);
    return ring[static_cast<size_t>(((index % n) + n) % n)];
  }

  void add_host(std::string_view host, int64_t now, size_t capacity) {
    const uint64_t h = std::hash<std::string_view>{}(host);
    auto it = host_index.find(h);
    if (it != host_index.end()) {
      it->second->last_seen = std::max(it->second->last_seen, now);
      hosts.splice(hosts.end(), hosts, it->second);
      return;
    }
    hosts.push_back(host_entry{h, now});
    host_index.emplace(h, std::prev(hosts.end()));
    if (hosts.size() > capacity) {
      host_index.erase(hosts.front().hash);
      hosts.pop_front();
    }
  }
};

struct anomaly_detector::shard {
  mutable std::mutex mu;
  anomaly_thresholds t;  // a copy per shard, so observe() takes one lock
  size_t capacity = 0;
  std::list<client_state> lru;  // most recently seen first
  std::unordered_map<std::string_view, std::list<client_state>::iterator> index;

  client_state* find(std::string_view client) {
    auto it = index.find(client);
    return it == index.end() ? nullptr : &*it->second;
  }

  client_state& touch(std::string_view client) {
    auto it = index.find(client);
    if (it != index.end()) {
      lru.splice(lru.begin(), lru, it->second);
      return lru.front();
    }
    if (lru.size() >= capacity) {
      index.erase(lru.back().key);
      lru.pop_back();
    }
    lru.emplace_front(std::string(client));
    index.emplace(lru.front().key, lru.begin());
    return lru.front();
  }
};

anomaly_detector::anomaly_detector(const anomaly_thresholds& t, size_t max_clients,
                                   size_t max_recent_alerts)
    : max_clients_(std::max<size_t>(max_clients, 1)),
      max_recent_(std::max<size_t>(max_recent_alerts, 1)) {
  const size_t n = max_clients_ < 256 ? 1 : 16;
  for (size_t i = 0; i < n; ++i) {
    auto s = std::make_unique<shard>();
    s->capacity = max_clients_ / n + (i < max_clients_ % n ? 1 : 0);
    s->t = t;
    shards_.push_back(std::move(s));
  }
  blocking_.store(t.block_for.count() > 0, std::memory_order_relaxed);
}

anomaly_detector::~anomaly_detector() = default;

anomaly_detector::shard& anomaly_detector::shard_for(std::string_view client) const {
  if (shards_.size() == 1) return *shards_[0];
  return *shards_[std::hash<std::string_view>{}(client) % shards_.size()];
}

void anomaly_detector::set_thresholds(const anomaly_thresholds& t) {
  for (auto& s : shards_) {
    std::lock_guard lk(s->mu);
    if (s->t.window != t.window) {
      for (auto& c : s->lru) c.clear_window();
    }
    s->t = t;
  }
  blocking_.store(t.block_for.count() > 0, std::memory_order_relaxed);
}

anomaly_thresholds anomaly_detector::thresholds() const {
  std::lock_guard lk(shards_[0]->mu);
  return shards_[0]->t;
}

std::vector<alert> anomaly_detector::observe(std::string_view client, std::string_view host,
                                             uint64_t bytes_out, bool is_error,
                                             clock::time_point now_tp) {
  std::vector<alert> raised;
  const int64_t now = ticks(now_tp);
  shard& s = shard_for(client);
  {
    std::lock_guard lk(s.mu);
    const anomaly_thresholds& t = s.t;
    const int64_t window_ns = std::max<int64_t>(to_ns(t.window), 1);
    client_state& c = s.touch(client);
    c.advance(now, window_ns);

    bucket& b = c.slot(c.head);
    ++b.requests;
    ++c.requests;
    if (is_error) {
      ++b.errors;
      ++c.errors;
    }
    b.bytes += bytes_out;
    c.bytes += bytes_out;
    ++c.requests_total;
    if (!host.empty()) {
      c.add_host(host, now, std::max<size_t>(min_host_capacity, t.unique_domains + 1));
    }

    const auto raise = [&](alert_type type, double value, double threshold) {
      int64_t& last = c.last_alert[static_cast<size_t>(type)];
      if (last != never && now - last < window_ns) return;  // once per window
      last = now;
      alert a;
      a.type = type;
      a.client = std::string(client);
      a.host = std::string(host);
      a.value = value;
      a.threshold = threshold;
      a.ts = std::chrono::system_clock::now();
      a.block_for = t.block_for;
      raised.push_back(std::move(a));
    };

    if (c.hosts.size() > t.unique_domains) {
      raise(alert_type::domain_diversity, static_cast<double>(c.hosts.size()),
            static_cast<double>(t.unique_domains));
    }
    if (bytes_out > t.bytes_out) {
      raise(alert_type::large_outbound, static_cast<double>(bytes_out),
            static_cast<double>(t.bytes_out));
    }
    if (c.bytes > t.total_bytes_out) {
      raise(alert_type::total_outbound, static_cast<double>(c.bytes),
            static_cast<double>(t.total_bytes_out));
    }
    const double max_requests =
        t.requests_per_second * std::chrono::duration<double>(t.window).count();
    if (static_cast<double>(c.requests) > max_requests + 1e-9) {
      raise(alert_type::request_rate, static_cast<double>(c.requests), max_requests);
    }
    if (c.requests >= t.min_requests && c.requests > 0 &&
        static_cast<double>(c.errors) > t.error_rate * static_cast<double>(c.requests) + 1e-9) {
      raise(alert_type::error_rate,
            100.0 * static_cast<double>(c.errors) / static_cast<double>(c.requests),
            100.0 * t.error_rate);
    }
    if (!raised.empty() && t.block_for.count() > 0) c.blocked_until = now + to_ns(t.block_for);
  }
  if (!raised.empty()) remember(raised);
  return raised;
}

void anomaly_detector::remember(const std::vector<alert>& alerts) {
  std::lock_guard lk(recent_mu_);
  for (const auto& a : alerts) {
    if (recent_.size() >= max_recent_) recent_.pop_front();
    recent_.push_back(a);
    if (a.block_for.count() > 0 && new_blocks_.size() < 1024) new_blocks_.emplace_back(a.client, a.block_for);
  }
}

std::vector<std::pair<std::string, std::chrono::milliseconds>> anomaly_detector::take_new_blocks() {
  std::lock_guard lk(recent_mu_);
  return std::exchange(new_blocks_, {});
}

void anomaly_detector::block(std::string_view client, clock::time_point until) {
  shard& s = shard_for(client);
  {
    std::lock_guard lk(s.mu);
    client_state& c = s.touch(client);
    c.blocked_until = c.blocked_until == never ? ticks(until) : std::max(c.blocked_until, ticks(until));
  }
  remote_blocks_.store(true, std::memory_order_relaxed);
}

bool anomaly_detector::is_blocked(std::string_view client, clock::time_point now) const {
  if (!blocking_.load(std::memory_order_relaxed) && !remote_blocks_.load(std::memory_order_relaxed)) return false;
  shard& s = shard_for(client);
  std::lock_guard lk(s.mu);
  const client_state* c = s.find(client);
  return c && c->blocked_until != never && ticks(now) < c->blocked_until;
}

std::vector<alert> anomaly_detector::recent_alerts() const {
  std::lock_guard lk(recent_mu_);
  return {recent_.begin(), recent_.end()};
}

std::string anomaly_detector::recent_alerts_json() const {
  const auto alerts = recent_alerts();
  std::string out = "[";
  for (size_t i = 0; i < alerts.size(); ++i) {
    if (i) out += ',';
    out += to_json(alerts[i]);
  }
  out += ']';
  return out;
}

std::vector<anomaly_detector::client_stats> anomaly_detector::clients(clock::time_point now) const {
  std::vector<client_stats> out;
  for (const auto& s : shards_) {
    std::lock_guard lk(s->mu);
    const int64_t window_ns = std::max<int64_t>(to_ns(s->t.window), 1);
    for (auto& c : s->lru) {
      c.advance(ticks(now), window_ns);
      out.push_back(client_stats{c.key, c.requests_total, c.hosts.size()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const client_stats& a, const client_stats& b) { return a.client < b.client; });
  return out;
}

std::optional<anomaly_detector::window_totals> anomaly_detector::totals(
    std::string_view client, clock::time_point now) const {
  shard& s = shard_for(client);
  std::lock_guard lk(s.mu);
  client_state* c = s.find(client);
  if (!c) return std::nullopt;
  c->advance(ticks(now), std::max<int64_t>(to_ns(s.t.window), 1));
  return window_totals{c->requests, c->errors, c->bytes, c->hosts.size()};
}

size_t anomaly_detector::client_count() const {
  size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lk(s->mu);
    n += s->lru.size();
  }
  return n;
}

}  // namespace egressd::monitor
