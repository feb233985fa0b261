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

constexpr int io_timeout_ms = 500;
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

// Grants: KEYS = egressd:grants (id -> JSON), egressd:grants:expiry (id
// scored by its end, Unix ms), egressd:grants:version (INCR on each change).
// Both writes first forget the grants past their end (Redis' clock).
#define EGRESSD_GRANTS_PRUNE                                                   \
  "local t = redis.call('TIME')\n"                                              \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"     \
  "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do\n" \
  "  redis.call('HDEL', KEYS[1], id)\n"                                         \
  "end\n"                                                                       \
  "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"

// ARGV: id, JSON, end (Unix ms), the bound on live grants.
const char* grant_put_script = EGRESSD_GRANTS_PRUNE R"(
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -2 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return -3 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return redis.call('INCR', KEYS[3])
)";

// ARGV: id. 0 when no live grant has it.
const char* grant_erase_script = EGRESSD_GRANTS_PRUNE R"(
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if n == 0 then return 0 end
return redis.call('INCR', KEYS[3])
)";

// ARGV: the version seen last. {version} when unchanged, else
// {version, id, JSON, id, JSON, ...}.
const char* grants_poll_script = R"(
local v = redis.call('GET', KEYS[3]) or '0'
if v == ARGV[1] then return {v} end
local r = redis.call('HGETALL', KEYS[1])
table.insert(r, 1, v)
return r
)";

// Merge one group's denials into the fleet's feed. KEYS[1] = egressd:denials
// (group key scored by its last denial, Unix ms); the group's hash is
// egressd:denial:KEY. ARGV: key, agent, client, host, port, reason, count
// since the last push, first, last (Unix ms), the bound on groups.
const char* denial_push_script = R"(
local k = 'egressd:denial:' .. ARGV[1]
local first, last = tonumber(ARGV[8]), tonumber(ARGV[9])
local old = tonumber(redis.call('HGET', k, 'last') or '0')
if old == 0 then
  redis.call('HSET', k, 'agent', ARGV[2], 'client', ARGV[3], 'host', ARGV[4], 'port', ARGV[5],
             'reason', ARGV[6], 'first', ARGV[8], 'last', ARGV[9])
else
  if first < tonumber(redis.call('HGET', k, 'first') or ARGV[8]) then redis.call('HSET', k, 'first', ARGV[8]) end
  if last >= old then redis.call('HSET', k, 'last', ARGV[9], 'client', ARGV[3]) end
end
redis.call('HINCRBY', k, 'count', ARGV[7])
redis.call('PEXPIRE', k, 86400000)
if last > old then redis.call('ZADD', KEYS[1], last, ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], 86400000)
local n = redis.call('ZCARD', KEYS[1])
local bound = tonumber(ARGV[10])
if n > bound then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, n - bound - 1)) do redis.call('DEL', 'egressd:denial:' .. m) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - bound - 1)
end
return 1
)";

// ARGV: since (Unix ms), the bound. agent, client, host, port, reason,
// count, first, last for each group, most recently denied first.
const char* denial_read_script = R"(
local out = {}
for _, m in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local v = redis.call('HMGET', 'egressd:denial:' .. m, 'agent', 'client', 'host', 'port', 'reason', 'count', 'first', 'last')
  if v[8] then
    for i = 1, 8 do out[#out + 1] = v[i] or '' end
  end
end
return out
)";

int64_t unix_ms(clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// The fleet-wide key of a group: as denial_feed's, with the reason's name.
std::string denial_key(const denial_feed::group& g) {
  std::string k = g.agent.empty() ? g.client : g.agent;
  k += '\0';
  k += g.host;
  k += '\0';
  k += std::to_string(g.port);
  k += '\0';
  k += acl::to_string(g.why);
  return k;
}

std::optional<acl::reason> reason_named(std::string_view name) {
  for (int i = 0; i <= int(acl::reason::overloaded); ++i)
    if (name == acl::to_string(acl::reason(i))) return acl::reason(i);
  return std::nullopt;
}

const std::vector<std::string> grant_keys{"egressd:grants", "egressd:grants:expiry", "egressd:grants:version"};

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
    grants_sha_ = link_->load(grants_poll_script);
    denial_sha_ = link_->load(denial_push_script);
    ok = link_->connected() && !take_sha_.empty() && !beat_sha_.empty() && !block_sha_.empty() && !poll_sha_.empty() &&
         !grants_sha_.empty();
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

void redis_state::set_grant_sink(grant_sink sink) {
  std::lock_guard<std::mutex> lk(sink_mu_);
  grant_sink_ = std::move(sink);
}

void redis_state::sync_grants() {
  std::lock_guard<std::mutex> lk(sink_mu_);
  const grant_sink& sink = grant_sink_;
  if (!sink) return;  // keep grants_seen_: the first sink gets the whole set
  auto r = link_->eval(grants_sha_, grants_poll_script, grant_keys, {grants_seen_.empty() ? "-" : grants_seen_});
  if (!r.ok || r.items.empty() || r.items[0] == grants_seen_) return;
  int64_t version = 0;
  try {
    version = std::stoll(r.items[0]);
  } catch (...) {
    return;
  }
  std::vector<grant> set;
  for (size_t i = 1; i + 1 < r.items.size(); i += 2) {
    auto j = nlohmann::json::parse(r.items[i + 1], nullptr, false);
    std::string why;
    auto g = j.is_discarded() ? std::nullopt : grant_from_file_json(j, &why);
    if (g && g->id == r.items[i]) set.push_back(std::move(*g));  // anything else is not ours: ignored
  }
  grants_seen_ = r.items[0];
  const bool fresh = grants_fresh_;
  grants_fresh_ = false;
  sink(version, std::move(set), fresh);
}

bool redis_state::control_ready() {
  if (!up()) return false;
  if (!control_) control_ = std::make_unique<redis_link>();
  if (control_->connected()) return true;
  std::string err;
  return control_->connect(spec_.host, spec_.port, spec_.db, password_, io_timeout_ms, &err);
}

int64_t redis_state::put_grant(const grant& g, size_t max_live) {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (!control_ready()) return -1;
  const auto end_ms = std::chrono::duration_cast<std::chrono::milliseconds>(g.expires.time_since_epoch()).count();
  const std::vector<std::string> args{g.id, to_file_json(g).dump(), std::to_string(end_ms), std::to_string(max_live)};
  auto r = control_->eval_text(grant_put_script, grant_keys, args);
  // A link that went stale while idle (Redis restarted): once more, afresh.
  if (!r.ok && !control_->connected() && control_ready()) r = control_->eval_text(grant_put_script, grant_keys, args);
  if (!r.ok) control_->close();
  return r.ok ? r.integer : -1;
}

int64_t redis_state::erase_grant(const std::string& id) {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (!control_ready()) return -1;
  auto r = control_->eval_text(grant_erase_script, grant_keys, {id});
  if (!r.ok && !control_->connected() && control_ready()) r = control_->eval_text(grant_erase_script, grant_keys, {id});
  if (!r.ok) control_->close();
  return r.ok ? r.integer : -1;
}

void redis_state::set_denial_source(std::function<std::vector<denial_feed::group>()> source) {
  std::lock_guard<std::mutex> lk(sink_mu_);
  denial_source_ = std::move(source);
}

void redis_state::push_denials() {
  std::vector<denial_feed::group> changes;
  {
    std::lock_guard<std::mutex> lk(sink_mu_);  // the source's owner waits for this call in set_denial_source
    if (!denial_source_) return;
    changes = denial_source_();
  }
  // One pipelined round trip; what a lost link did not push is lost to the
  // fleet's feed (this replica's own feed still has it).
  std::vector<redis_link::call> calls;
  for (const auto& g : changes) {
    calls.push_back({{"egressd:denials"},
                     {denial_key(g), g.agent, g.client, g.host, std::to_string(g.port), acl::to_string(g.why),
                      std::to_string(g.count), std::to_string(unix_ms(g.first)), std::to_string(unix_ms(g.last)),
                      std::to_string(denial_feed::max_groups)}});
  }
  if (calls.empty()) return;
  link_->eval_many(&denial_sha_, denial_push_script, calls);
}

std::optional<std::vector<denial_feed::group>> redis_state::read_denials(
    std::optional<denial_feed::clock::time_point> since) {
  std::lock_guard<std::mutex> lk(control_mu_);
  if (!control_ready()) return std::nullopt;
  const std::vector<std::string> args{since ? std::to_string(unix_ms(*since)) : "-inf",
                                      std::to_string(denial_feed::max_groups)};
  auto r = control_->eval_text(denial_read_script, {"egressd:denials"}, args);
  if (!r.ok && !control_->connected() && control_ready())
    r = control_->eval_text(denial_read_script, {"egressd:denials"}, args);
  if (!r.ok) {
    control_->close();
    return std::nullopt;
  }
  std::vector<denial_feed::group> out;
  for (size_t i = 0; i + 8 <= r.items.size(); i += 8) {
    const auto* f = &r.items[i];
    auto why = reason_named(f[4]);
    denial_feed::group g;
    try {
      g.port = static_cast<uint16_t>(std::stoul(f[3]));
      g.count = std::stoull(f[5]);
      g.first = clock::time_point(std::chrono::milliseconds(std::stoll(f[6])));
      g.last = clock::time_point(std::chrono::milliseconds(std::stoll(f[7])));
    } catch (...) {
      continue;
    }
    if (!why) continue;
    g.agent = f[0];
    g.client = f[1];
    g.host = f[2];
    g.why = *why;
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace egressd::state
