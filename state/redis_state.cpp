#include "state/redis_state.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include <fmt/format.h>

#include "config/text_file.hpp"
#include "state/redis_link.hpp"

namespace egressd::state {
namespace {

constexpr int64_t cycle_ms = 20;
constexpr int64_t beat_ms = 1000;
constexpr int64_t replica_ttl_ms = 5000;
constexpr int64_t poll_ms = 250;
constexpr int64_t max_backoff_ms = 5000;

// Take up to ARGV[3] tokens from a GCRA bucket (ARGV[1] = microseconds per
// token, ARGV[2] = burst) at Redis' own clock; a negative count gives tokens
// back. Returns the count taken.
const char* take_script = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tol = interval * tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local n = want
if want >= 0 then
  n = math.floor((now + tol - tat) / interval)
  if n > want then n = want end
  if n < 0 then n = 0 end
  tat = tat + n * interval
else
  tat = math.max(now, tat + want * interval)
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor(tol / 1000) + 60000)
return n
)";

// Register ARGV[1] as alive now; forget replicas silent for ARGV[2] ms;
// return how many are alive.
const char* beat_script = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
)";

// Block client ARGV[1] for ARGV[2] more ms (an existing later end wins).
const char* block_script = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = now + tonumber(ARGV[2])
local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if score > old then redis.call('ZADD', KEYS[1], score, ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[1])))
return 1
)";

// The blocks in force: client, remaining ms, ...
const char* poll_script = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local r = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES', 'LIMIT', 0, 4096)
for i = 2, #r, 2 do r[i] = tostring(tonumber(r[i]) - now) end
return r
)";

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string random_id() {
  char host[64] = {};
  gethostname(host, sizeof host - 1);
  std::random_device rd;
  return fmt::format("{}:{}:{:08x}", host, getpid(), rd());
}

}  // namespace

std::unique_ptr<redis_state> redis_state::start(const config::state_spec& spec, monitor::metrics& metrics, hooks h,
                                                std::string* error) {
  std::unique_ptr<redis_state> s(new redis_state());
  s->spec_ = spec;
  s->name_ = fmt::format("redis://{}:{}/{}", spec.host, spec.port, spec.db);
  if (!spec.password_file.empty()) {
    std::string err;
    if (!config::read_text_file(spec.password_file, &s->password_, &err)) {
      *error = fmt::format("cannot read the Redis password_file {}: {}", spec.password_file, err);
      return nullptr;
    }
    while (!s->password_.empty() && (s->password_.back() == '\n' || s->password_.back() == '\r'))
      s->password_.pop_back();
  }
  s->replica_id_ = random_id();
  s->link_ = std::make_unique<redis_link>();
  s->hooks_ = std::move(h);
  auto& reg = metrics.registry();
  s->registry_ = &reg;
  s->up_gauge_ = reg.gauge(reg.family("egressd_state_up",
                                      "1 while the shared state (state redis://) is reachable, else 0.",
                                      monitor::metrics_registry::metric_type::gauge),
                           {});
  s->replicas_gauge_ = reg.gauge(reg.family("egressd_state_replicas",
                                            "Replicas sharing the state, as last seen in Redis.",
                                            monitor::metrics_registry::metric_type::gauge),
                                 {});
  reg.set(s->replicas_gauge_, 1);
  const int64_t now = steady_ms();
  s->last_cycle_ms_ = now;
  s->try_connect(now);  // serve with the fleet's state from the first request when Redis is there
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

redis_state::~redis_state() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Give back what this replica held (a rolling update would otherwise
  // strand up to b tokens per rule), best effort, one round trip.
  if (!link_ || !link_->connected()) return;
  std::vector<redis_link::call> calls;
  std::vector<std::shared_ptr<rate_lease>> all = leases_;  // no pruning: the rule tables may be gone already
  for (const auto& t : tables_) {
    auto more = t->collect(true);
    all.insert(all.end(), more.begin(), more.end());
  }
  for (const auto& l : all) {
    const int64_t held = l->drop();
    if (held > 0)
      calls.push_back({{"egressd:rate:" + l->key()},
                       {fmt::format("{:.3f}", 1e6 / l->per_second()), std::to_string(l->burst()),
                        std::to_string(-held)}});
  }
  link_->eval_many(&take_sha_, take_script, calls);
}

std::shared_ptr<rate_lease> redis_state::lease(const std::string& key, double per_second, uint32_t burst) {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& l : leases_)
    if (l->key() == key) return l;
  leases_.push_back(std::make_shared<rate_lease>(key, per_second, burst));
  return leases_.back();
}

std::shared_ptr<rate_lease_table> redis_state::lease_table(const std::string& key, double per_second,
                                                           uint32_t burst, size_t max_clients) {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& t : tables_)
    if (t->key() == key) return t;
  tables_.push_back(std::make_shared<rate_lease_table>(key, per_second, burst, max_clients));
  return tables_.back();
}

void redis_state::set_hooks(hooks h) {
  std::lock_guard<std::mutex> lk(mu_);
  hooks_ = std::move(h);
}

std::vector<std::shared_ptr<rate_lease>> redis_state::leases_snapshot(bool all_clients) {
  std::vector<std::shared_ptr<rate_lease_table>> tables;
  std::vector<std::shared_ptr<rate_lease>> out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Only this thread still holding one: its rule is in no table any more.
    leases_.erase(std::remove_if(leases_.begin(), leases_.end(), [](const auto& l) { return l.use_count() == 1; }),
                  leases_.end());
    tables_.erase(std::remove_if(tables_.begin(), tables_.end(), [](const auto& t) { return t.use_count() == 1; }),
                  tables_.end());
    out = leases_;
    tables = tables_;
  }
  for (const auto& t : tables) {
    auto more = t->collect(all_clients);
    out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return out;
}

void redis_state::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    lk.unlock();
    cycle(steady_ms());
    lk.lock();
    cv_.wait_for(lk, std::chrono::milliseconds(cycle_ms), [this] { return stop_; });
  }
}

bool redis_state::try_connect(int64_t now_ms) {
  std::string err;
  bool ok = link_->connect(spec_.host, spec_.port, spec_.db, password_, io_timeout_ms, &err);
  if (ok) {
    take_sha_ = link_->load(take_script);
    beat_sha_ = link_->load(beat_script);
    block_sha_ = link_->load(block_script);
    poll_sha_ = link_->load(poll_script);
    ok = link_->connected() && !take_sha_.empty() && !beat_sha_.empty() && !block_sha_.empty() && !poll_sha_.empty() &&
         load_feed_scripts();
    if (!ok) err = "SCRIPT LOAD failed (is this Redis 6.2 or later, with Lua?)";
  }
  if (!ok) {
    link_->close();
    went_down(err, now_ms);
    return false;
  }
  backoff_ms_ = 100;
  grants_seen_.clear();  // Redis may have restarted empty: read the set again
  grants_fresh_ = true;
  heartbeat();
  if (!link_->connected()) {
    went_down("connection lost", now_ms);
    return false;
  }
  up_.store(true, std::memory_order_relaxed);
  registry_->set(up_gauge_, 1);
  std::fprintf(stderr, "egressd: shared state %s is up (%u replicas)\n", name_.c_str(), replicas());
  std::fflush(stderr);
  reported_ = true;
  return true;
}

void redis_state::went_down(const std::string& why, int64_t now_ms) {
  next_attempt_ms_ = now_ms + backoff_ms_;
  backoff_ms_ = std::min(backoff_ms_ * 2, max_backoff_ms);
  if (!up_.load(std::memory_order_relaxed) && reported_) return;  // still down: said already
  up_.store(false, std::memory_order_relaxed);
  registry_->set(up_gauge_, 0);
  std::fprintf(stderr,
               "egressd: shared state %s is unreachable (%s): rate limits fall back to this replica's share "
               "(1/%u), blocks stay until their end, grants in force until their expiry (no new ones: 503); "
               "reconnecting with back-off\n",
               name_.c_str(), why.c_str(), replicas());
  std::fflush(stderr);
  reported_ = true;
}

void redis_state::heartbeat() {
  auto r = link_->eval(beat_sha_, beat_script, {"egressd:replicas"},
                       {replica_id_, std::to_string(replica_ttl_ms)});
  if (r.ok && r.integer > 0) {
    replicas_.store(unsigned(r.integer), std::memory_order_relaxed);
    registry_->set(replicas_gauge_, r.integer);
  }
}

void redis_state::refill_from_redis(const std::vector<std::shared_ptr<rate_lease>>& leases) {
  // Each lease holds enough for twice the last cycle's demand, at least one
  // token (an idle replica answers its first request at once), at most a
  // tenth of a second of the rate (the overshoot bound: README), and pays
  // back the credit token of a new client first. One pipelined round trip.
  std::vector<redis_link::call> calls;
  std::vector<std::pair<rate_lease*, int64_t>> who;  // lease, owed at the time of asking
  for (const auto& l : leases) {
    const int64_t max_batch =
        std::clamp<int64_t>(int64_t(std::ceil(l->per_second() * 0.1)), 1, int64_t(l->burst()));
    const int64_t target = std::clamp<int64_t>(int64_t(2 * l->demand), 1, max_batch);
    const int64_t owed = l->owed.load(std::memory_order_relaxed);
    const int64_t want = std::max<int64_t>(target - l->tokens(), 0) + owed;
    if (want <= 0) continue;
    calls.push_back({{"egressd:rate:" + l->key()},
                     {fmt::format("{:.3f}", 1e6 / l->per_second()), std::to_string(l->burst()), std::to_string(want)}});
    who.emplace_back(l.get(), owed);
  }
  const auto replies = link_->eval_many(&take_sha_, take_script, calls);
  for (size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i].ok || replies[i].integer <= 0) continue;
    auto [l, owed] = who[i];
    const int64_t pay = std::min<int64_t>(replies[i].integer, owed);
    l->owed.fetch_sub(pay, std::memory_order_relaxed);
    l->add(replies[i].integer - pay);
  }
}

void redis_state::refill_locally(rate_lease& l, unsigned replicas, double seconds) {
  const double n = std::max(1u, replicas);
  const int64_t cap = std::max<int64_t>(1, int64_t(std::ceil(l.burst() / n)));
  l.local_credit += l.per_second() / n * seconds;
  const auto whole = int64_t(l.local_credit);
  l.local_credit -= double(whole);
  const int64_t room = cap - l.tokens();
  if (room > 0) l.add(std::min(room, whole));
  if (room <= 0) l.local_credit = 0;  // a full bucket earns nothing
}

void redis_state::sync_blocks() {
  hooks h;
  {
    std::lock_guard<std::mutex> lk(mu_);
    h = hooks_;
  }
  std::vector<block> mine = h.local_blocks ? h.local_blocks() : std::vector<block>{};
  const int64_t now_ms = steady_ms();
  for (auto& [client, end_ms] : outage_blocks_)
    if (end_ms > now_ms) mine.push_back({client, end_ms - now_ms});
  outage_blocks_.clear();
  for (size_t i = 0; i < mine.size(); ++i) {
    const auto& b = mine[i];
    link_->eval(block_sha_, block_script, {"egressd:blocks"}, {b.client, std::to_string(b.remaining_ms)});
    if (!link_->connected()) {  // keep the unpublished ones for when Redis is back
      for (size_t j = i; j < mine.size() && outage_blocks_.size() < 1024; ++j)
        outage_blocks_.push_back({mine[j].client, now_ms + mine[j].remaining_ms});
      return;
    }
  }
  auto r = link_->eval(poll_sha_, poll_script, {"egressd:blocks"}, {});
  if (!r.ok || !h.apply_remote_block) return;
  for (size_t i = 0; i + 1 < r.items.size(); i += 2) {
    block b{r.items[i], 0};
    try {
      b.remaining_ms = std::stoll(r.items[i + 1]);
    } catch (...) {
      continue;
    }
    if (b.remaining_ms > 0) h.apply_remote_block(b);
  }
}

void redis_state::cycle(int64_t now_ms) {
  const double seconds = double(now_ms - last_cycle_ms_) / 1000.0;
  last_cycle_ms_ = now_ms;
  if (!link_->connected() && now_ms >= next_attempt_ms_) try_connect(now_ms);
  auto leases = leases_snapshot(!link_->connected());
  for (auto& l : leases) l->demand = l->take_demand();
  if (link_->connected()) {
    if (now_ms - last_beat_ms_ >= beat_ms) {
      last_beat_ms_ = now_ms;
      heartbeat();
    }
    refill_from_redis(leases);
    if (link_->connected() && now_ms - last_poll_ms_ >= poll_ms) {
      last_poll_ms_ = now_ms;
      sync_blocks();
      if (link_->connected()) sync_grants();
    }
    if (link_->connected() && now_ms - last_denials_ms_ >= beat_ms) {
      last_denials_ms_ = now_ms;
      push_denials();
    }
    if (!link_->connected()) went_down("connection lost", now_ms);
    return;
  }
  // Outage: this replica's share of each fleet limit, from the last count seen.
  const unsigned n = replicas();
  for (auto& l : leases) refill_locally(*l, n, seconds);
  // Blocks raised here during the outage: the detector enforces them; they
  // are kept (with their end) and published when Redis is back.
  hooks h;
  {
    std::lock_guard<std::mutex> lk(mu_);
    h = hooks_;
  }
  if (h.local_blocks) {
    for (auto& b : h.local_blocks())
      if (outage_blocks_.size() < 1024) outage_blocks_.push_back({std::move(b.client), now_ms + b.remaining_ms});
  }
}

}  // namespace egressd::state
