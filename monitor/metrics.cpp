#include "monitor/metrics.hpp"

#include <chrono>
#include <cstring>

#include "monitor/access_log.hpp"
#include "monitor/anomaly_detector.hpp"

namespace egressd::monitor {
namespace {

using type = metrics_registry::metric_type;

// acl::reason values are contiguous from none; to_string() answers
// "unknown" past the last one.
size_t count_reasons() {
  size_t n = 0;
  while (n < 256 && std::strcmp(acl::to_string(static_cast<acl::reason>(n)), "unknown") != 0) ++n;
  return n;
}

}  // namespace

const char* to_string(request_kind k) {
  switch (k) {
    case request_kind::http: return "http";
    case request_kind::connect: return "connect";
    case request_kind::sni: return "sni";
    case request_kind::host: return "host";
    case request_kind::forward: return "forward";
  }
  return "unknown";
}

const char* to_string(request_decision d) {
  switch (d) {
    case request_decision::allow: return "allow";
    case request_decision::deny: return "deny";
    case request_decision::report: return "report";
  }
  return "unknown";
}

const char* metrics::to_string(dns_result r) {
  switch (r) {
    case dns_result::ok: return "ok";
    case dns_result::cached: return "cached";
    case dns_result::nxdomain: return "nxdomain";
    case dns_result::nodata: return "nodata";
    case dns_result::timeout: return "timeout";
    case dns_result::failure: return "failure";
    case dns_result::denied: return "denied";
  }
  return "unknown";
}

metrics::metrics(unsigned workers, size_t capacity) : reg_(workers, capacity) {
  reasons_ = count_reasons();
  const size_t req = reg_.family("egressd_requests_total",
                                 "Requests and tunnels by kind, decision and termination reason.",
                                 type::counter, /*sparse=*/true);
  requests_.reserve(kinds * decisions * reasons_);
  for (size_t k = 0; k < kinds; ++k) {
    for (size_t d = 0; d < decisions; ++d) {
      for (size_t r = 0; r < reasons_; ++r) {
        requests_.push_back(reg_.counter(
            req, {{"kind", monitor::to_string(static_cast<kind>(k))},
                  {"decision", monitor::to_string(static_cast<decision>(d))},
                  {"reason", acl::to_string(static_cast<acl::reason>(r))}}));
      }
    }
  }
  rule_family_ = reg_.family("egressd_rule_requests_total",
                             "Requests and tunnels per matching rule (pattern as written).",
                             type::counter);
  agent_family_ = reg_.family("egressd_agent_requests_total",
                              "Requests and tunnels per agent named by proxy credentials, by decision.",
                              type::counter);
  const size_t bytes = reg_.family("egressd_bytes_total",
                                   "Bytes relayed: up = client to upstream, down = upstream to client.",
                                   type::counter);
  bytes_[0] = reg_.counter(bytes, {{"direction", "up"}});
  bytes_[1] = reg_.counter(bytes, {{"direction", "down"}});
  const size_t body_reads = reg_.family(
      "egressd_http_body_reads_total",
      "Socket reads that plain-HTTP bodies took (forward path): up = request bodies, down = response bodies.",
      type::counter);
  body_reads_[0] = reg_.counter(body_reads, {{"direction", "up"}});
  body_reads_[1] = reg_.counter(body_reads, {{"direction", "down"}});
  const size_t active = reg_.family("egressd_connections_active",
                                    "Open client connections by kind.", type::gauge);
  for (size_t k = 0; k < kinds; ++k) {
    active_[k] = reg_.gauge(active, {{"kind", monitor::to_string(static_cast<kind>(k))}});
  }
  const size_t alerts = reg_.family("egressd_anomaly_alerts_total", "Anomaly alerts raised by type.",
                                    type::counter);
  for (size_t t = 0; t < alert_type_count; ++t) {
    alerts_[t] = reg_.counter(alerts, {{"type", monitor::to_string(static_cast<alert_type>(t))}});
  }
  const size_t dns = reg_.family("egressd_dns_queries_total", "DNS lookups by result.", type::counter);
  for (size_t r = 0; r < dns_results; ++r) {
    dns_[r] = reg_.counter(dns, {{"result", to_string(static_cast<dns_result>(r))}});
  }
  const size_t reloads = reg_.family("egressd_config_reloads_total",
                                     "Configuration reloads by result.", type::counter);
  reloads_[0] = reg_.counter(reloads, {{"result", "ok"}});
  reloads_[1] = reg_.counter(reloads, {{"result", "error"}});
  admin_refused_ = reg_.counter(
      reg_.family("egressd_admin_refused_total",
                  "Admin endpoint connections closed at accept: the client is outside admin allow=.",
                  type::counter),
      {});
  grants_ = reg_.gauge(reg_.family("egressd_grants_active", "Grants in force (POST /v1/grants).", type::gauge), {});
  const size_t ech = reg_.family("egressd_tls_ech_total",
                                 "Tunnels whose ClientHello carried ECH/ESNI, by the ech rule's decision.",
                                 type::counter);
  ech_[0] = reg_.counter(ech, {{"decision", "allow"}});
  ech_[1] = reg_.counter(ech, {{"decision", "deny"}});
  connect_ = reg_.histogram(
      reg_.family("egressd_upstream_connect_seconds", "Time to connect to the upstream (TCP).",
                  type::histogram, false,
                  {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      {});
  duration_ = reg_.histogram(
      reg_.family("egressd_request_duration_seconds",
                  "Duration of requests and tunnels, from accept to the end.", type::histogram,
                  false, {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}),
      {});
}

metrics_registry::counter_id metrics::rule_series(const std::string& pattern) {
  return reg_.counter(rule_family_, {{"rule", pattern}});
}

metrics::agent_ids metrics::agent_series(const std::string& agent) {
  agent_ids ids{};
  for (size_t d = 0; d < decisions; ++d)
    ids[d] = reg_.counter(agent_family_,
                          {{"agent", agent}, {"decision", monitor::to_string(static_cast<decision>(d))}});
  return ids;
}

void metrics::attach(const anomaly_detector& detector) {
  reg_.add_collector([&detector](std::string& out) {
    const auto clients = detector.clients(std::chrono::steady_clock::now());
    metrics_registry::write_header(out, "egressd_client_requests_total",
                                   "Requests per client (bounded client table, least recently "
                                   "seen evicted).",
                                   type::counter);
    for (const auto& c : clients) {
      metrics_registry::write_sample(out, "egressd_client_requests_total", {{"client", c.client}},
                                     c.requests_total);
    }
    metrics_registry::write_header(out, "egressd_client_unique_domains",
                                   "Distinct hosts per client in the anomaly window.", type::gauge);
    for (const auto& c : clients) {
      metrics_registry::write_sample(out, "egressd_client_unique_domains", {{"client", c.client}},
                                     c.unique_domains);
    }
  });
}

void metrics::attach(const access_log& log) {
  reg_.add_collector([&log](std::string& out) {
    metrics_registry::write_header(out, "egressd_access_log_dropped_total",
                                   "Access-log lines lost (writer queue full or write error).",
                                   type::counter);
    metrics_registry::write_sample(out, "egressd_access_log_dropped_total", {}, log.dropped());
  });
}

}  // namespace egressd::monitor
