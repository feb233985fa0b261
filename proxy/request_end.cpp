// The end of every request or tunnel (record_end): one place that turns the
// access record into metrics, anomaly observations and the log line. Runs on
// the worker thread that served the request.

#include <chrono>

#include "proxy/server.hpp"
#include "proxy/session_impl.hpp"

namespace egressd::proxy {

using acl::reason;

namespace {

// What counts as an error for the anomaly detector: denials, 4xx/5xx and
// failed tunnels (SNI check, upstream reset).
bool is_error(const monitor::access_record& rec, reason r) {
  if (rec.decision == monitor::request_decision::deny || rec.status >= 400) return true;
  return r == reason::upstream_reset || r == reason::sni_mismatch || r == reason::no_sni || r == reason::not_tls ||
         r == reason::bad_sni || r == reason::ech;
}

}  // namespace

void record_end(worker& w, const rule_limits* limits, int rule_index, int agent_index, std::string_view client_key,
                std::chrono::steady_clock::time_point start, monitor::access_record& rec) {
  const auto steady_now = std::chrono::steady_clock::now();
  const auto elapsed = steady_now - start;
  rec.ts = std::chrono::system_clock::now();
  rec.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();

  auto& m = w.srv().metrics();
  const unsigned shard = w.index();
  const reason r = rec.reason;
  m.request(shard, rec.kind, rec.decision, r);
  if (rec.ech) m.tls_ech(shard, r != reason::ech);
  if (!rec.rule.empty() && limits)
    if (const auto* rt = limits->at(rule_index)) m.rule_request(shard, rt->metric);
  if (limits)
    if (const auto* ids = limits->agent(agent_index)) m.agent_request(shard, *ids, rec.decision);
  if (rec.bytes_up) m.bytes(shard, monitor::metrics::direction::up, rec.bytes_up);
  if (rec.bytes_down) m.bytes(shard, monitor::metrics::direction::down, rec.bytes_down);
  m.request_duration(shard, std::chrono::duration<double>(elapsed).count());

  // The feed behind GET /v1/denials, keyed by agent when one is named.
  if (rec.decision == monitor::request_decision::deny)
    w.srv().denials().record(shard, rec.agent, client_key, rec.host, rec.port, r, rec.ts);

  auto alerts = w.srv().detector().observe(client_key, rec.host, rec.bytes_up, is_error(rec, r), steady_now);
  auto* log = w.log();
  for (auto& a : alerts) {
    m.anomaly_alert(a.type);
    if (log) log->write_line(monitor::to_json(a));
  }
  if (log) log->write(std::move(rec));
}

}  // namespace egressd::proxy
