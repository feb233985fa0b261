// The switch list: one line per feature. Flip `false` to `true` when the
// proxy implements it; the parser then stops reporting
// "FILE:LINE: <thing> is not supported yet by this build".
#include "config/features.hpp"

namespace egressd::config {

bool supported(feature f) {
  switch (f) {
    case feature::rule_rate: return true;
    case feature::rule_burst: return true;
    case feature::rule_per_client: return true;
    case feature::rule_conns: return true;
    case feature::rule_bandwidth: return true;
    case feature::client_groups: return true;
    case feature::admin: return true;
    case feature::anomaly: return true;
    case feature::report_mode: return true;
    case feature::forward: return true;
    case feature::upstream_proxy: return true;
    case feature::dns_listen: return true;
    case feature::listen_sni: return true;
    case feature::listen_http: return true;
    case feature::state_file: return false;
    case feature::state_redis: return false;
    case feature::admin_allow: return true;
    case feature::admin_token: return false;
  }
  return false;
}

const char* describe(feature f) {
  switch (f) {
    case feature::rule_rate: return "allow option rate=";
    case feature::rule_burst: return "allow option burst=";
    case feature::rule_per_client: return "allow option per=";
    case feature::rule_conns: return "allow option conns=";
    case feature::rule_bandwidth: return "allow option bandwidth=";
    case feature::client_groups: return "client groups (group NAME, allow group=)";
    case feature::admin: return "the admin directive";
    case feature::anomaly: return "the anomaly directive";
    case feature::report_mode: return "mode report";
    case feature::forward: return "the forward directive";
    case feature::upstream_proxy: return "the upstream_proxy directive";
    case feature::dns_listen: return "the dns_listen directive";
    case feature::listen_sni: return "listen mode=sni";
    case feature::listen_http: return "listen mode=http";
    case feature::state_file: return "state FILE";
    case feature::state_redis: return "state redis://";
    case feature::admin_allow: return "admin option allow=";
    case feature::admin_token: return "admin option token_file=";
  }
  return "?";
}

}  // namespace egressd::config
