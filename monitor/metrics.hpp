#pragma once
// The series SPEC "Admin endpoint" requires, as typed calls over a
// metrics_registry, so the proxy never builds a label on the data path:
//   egressd_requests_total{kind,decision,reason}   (sparse: only seen combos)
//   egressd_rule_requests_total{rule}              (rule pattern text)
//   egressd_bytes_total{direction}                 (up | down)
//   egressd_http_body_reads_total{direction}       (socket reads of plain-HTTP bodies)
//   egressd_connections_active{kind}
//   egressd_anomaly_alerts_total{type}
//   egressd_client_requests_total{client}          (from the anomaly detector's
//   egressd_client_unique_domains{client}           bounded client table)
//   egressd_dns_queries_total{result}
//   egressd_config_reloads_total{result}           (ok | error)
//   egressd_admin_refused_total                    (admin clients outside allow=)
//   egressd_upstream_connect_seconds, egressd_request_duration_seconds
//   egressd_access_log_dropped_total
//   egressd_agent_requests_total{agent,decision}   (agents from the config only)
//   egressd_grants_active                           (grants in force)
//   egressd_tls_ech_total{decision}                (allow | deny: ClientHellos
//                                                   carrying ECH, by the ech rule)
// Thread contract: as metrics_registry. Calls taking a `shard` come from the
// worker owning that shard (worker index), or pass shared_shard() from any
// other thread; anomaly_alert() and config_reload() may be called from any
// thread. Objects given to attach() must outlive every render() call.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "acl/policy.hpp"
#include "monitor/alert.hpp"
#include "monitor/metrics_registry.hpp"
#include "monitor/request_class.hpp"

namespace egressd::monitor {

class access_log;
class anomaly_detector;

class metrics {
 public:
  // Label values match the access log's `kind` and `decision` fields.
  using kind = request_kind;
  using decision = request_decision;
  enum class direction : uint8_t { up, down };  // up: client -> upstream
  enum class dns_result : uint8_t { ok, cached, nxdomain, nodata, timeout, failure, denied };
  static const char* to_string(dns_result r);

  explicit metrics(unsigned workers, size_t capacity = metrics_registry::default_capacity);

  unsigned shared_shard() const { return reg_.shared_shard(); }
  metrics_registry& registry() { return reg_; }
  const metrics_registry& registry() const { return reg_; }

  // --- data path (shard = worker index) --------------------------------------
  // A request or tunnel, counted once when it ends (reason::none when clean).
  void request(unsigned shard, kind k, decision d, acl::reason r) {
    reg_.add(shard, requests_[index(k, d, r)]);
  }
  void rule_request(unsigned shard, metrics_registry::counter_id rule) { reg_.add(shard, rule); }
  void bytes(unsigned shard, direction d, uint64_t n) {
    reg_.add(shard, bytes_[static_cast<size_t>(d)], n);
  }
  // Socket reads (recv calls) a plain-HTTP body took, added once per body.
  void body_reads(unsigned shard, direction d, uint64_t n) {
    if (n) reg_.add(shard, body_reads_[static_cast<size_t>(d)], n);
  }
  void connection_opened(unsigned shard, kind k) { reg_.add(shard, active_[static_cast<size_t>(k)], 1); }
  void connection_closed(unsigned shard, kind k) { reg_.add(shard, active_[static_cast<size_t>(k)], -1); }
  void dns_query(unsigned shard, dns_result r) { reg_.add(shard, dns_[static_cast<size_t>(r)]); }
  // A tunnel whose ClientHello carried ECH, refused (`ech deny`) or relayed.
  void tls_ech(unsigned shard, bool allowed) { reg_.add(shard, ech_[allowed ? 0 : 1]); }
  void upstream_connect(unsigned shard, double seconds) { reg_.observe(shard, connect_, seconds); }
  void request_duration(unsigned shard, double seconds) { reg_.observe(shard, duration_, seconds); }

  // --- any thread --------------------------------------------------------------
  void anomaly_alert(alert_type t) {
    reg_.add(reg_.shared_shard(), alerts_[static_cast<size_t>(t)]);
  }
  void config_reload(bool ok) { reg_.add(reg_.shared_shard(), reloads_[ok ? 0 : 1]); }
  void admin_refused() { reg_.add(reg_.shared_shard(), admin_refused_); }
  void grants_active(int64_t n) { reg_.set(grants_, n); }

  // The id of egressd_rule_requests_total{rule="PATTERN"}; call when building
  // a snapshot (get-or-create: a rule kept across reloads keeps its count).
  metrics_registry::counter_id rule_series(const std::string& pattern);
  // egressd_agent_requests_total{agent="NAME",decision=...}, one id per
  // decision (indexed by request_decision); get-or-create like rule_series,
  // so an agent kept across reloads keeps its counts.
  using agent_ids = std::array<metrics_registry::counter_id, 3>;
  agent_ids agent_series(const std::string& agent);
  void agent_request(unsigned shard, const agent_ids& ids, decision d) {
    reg_.add(shard, ids[static_cast<size_t>(d)]);
  }

  // Per-client series from the detector's bounded table; access-log drops.
  void attach(const anomaly_detector& detector);
  void attach(const access_log& log);

  std::string render() const { return reg_.render(); }

  // Values, for tests and the admin endpoint's own checks.
  uint64_t requests_value(kind k, decision d, acl::reason r) const {
    return reg_.value(requests_[index(k, d, r)]);
  }
  uint64_t tls_ech_value(bool allowed) const { return reg_.value(ech_[allowed ? 0 : 1]); }

 private:
  static constexpr size_t kinds = 5, decisions = 3, dns_results = 7;
  size_t index(kind k, decision d, acl::reason r) const {
    size_t ri = static_cast<size_t>(r);
    if (ri >= reasons_) ri = 0;  // a reason added to acl after this build: count as none
    return (static_cast<size_t>(k) * decisions + static_cast<size_t>(d)) * reasons_ + ri;
  }

  metrics_registry reg_;
  size_t reasons_ = 0;
  size_t rule_family_ = 0;
  size_t agent_family_ = 0;
  std::vector<metrics_registry::counter_id> requests_;
  metrics_registry::counter_id bytes_[2];
  metrics_registry::counter_id body_reads_[2];
  metrics_registry::gauge_id active_[kinds];
  metrics_registry::counter_id alerts_[alert_type_count];
  metrics_registry::counter_id dns_[dns_results];
  metrics_registry::counter_id reloads_[2];
  metrics_registry::counter_id admin_refused_;
  metrics_registry::counter_id ech_[2];  // allow, deny
  metrics_registry::histogram_id connect_, duration_;
  metrics_registry::gauge_id grants_;
};

}  // namespace egressd::monitor
