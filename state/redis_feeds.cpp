// The grant set and the denial feed a fleet shares through Redis (see
// redis_state.hpp): their scripts, the state thread's poll and push, and the
// admin thread's writes and reads over the control connection.

#include <chrono>

#include <fmt/format.h>

#include "state/redis_link.hpp"
#include "state/redis_state.hpp"

namespace egressd::state {
namespace {

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

}  // namespace

bool redis_state::load_feed_scripts() {
  grants_sha_ = link_->load(grants_poll_script);
  denial_sha_ = link_->load(denial_push_script);
  return link_->connected() && !grants_sha_.empty() && !denial_sha_.empty();
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
