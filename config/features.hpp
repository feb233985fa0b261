#pragma once
// The one table of features this build parses but does not implement yet.
// Pure constants; thread-safe. To switch a feature on once the proxy
// implements it, change its line in features.cpp's supported() to `true`.

#include <cstdint>

namespace egressd::config {

enum class feature : uint8_t {
  rule_rate,         // allow ... rate=
  rule_burst,        // allow ... burst=
  rule_per_client,   // allow ... per=client
  rule_conns,        // allow ... conns=
  rule_bandwidth,    // allow ... bandwidth=
  client_groups,     // group NAME CIDR..., allow ... group=
  admin,             // admin ADDR:PORT
  anomaly,           // anomaly KEY=VALUE...
  report_mode,       // mode report
  forward,           // forward LISTEN TARGET
  upstream_proxy,    // upstream_proxy http://HOST:PORT
  dns_listen,        // dns_listen ADDR:PORT
  listen_sni,        // listen ... mode=sni
  listen_http,       // listen ... mode=http
  state_file,        // state FILE
  state_redis,       // state redis://...
  admin_allow,       // admin ... allow=
  admin_token,       // admin ... token_file= (the /v1/ API)
};

// Every feature, for tests and --check.
inline constexpr feature all_features[] = {
    feature::rule_rate,   feature::rule_burst,    feature::rule_per_client, feature::rule_conns,
    feature::rule_bandwidth, feature::client_groups, feature::admin,       feature::anomaly,
    feature::report_mode, feature::forward,       feature::upstream_proxy, feature::dns_listen,
    feature::listen_sni,  feature::listen_http,    feature::state_file,     feature::state_redis,
    feature::admin_allow, feature::admin_token,
};

bool supported(feature f);
// How the operator wrote it, e.g. "allow option rate=", "listen mode=sni".
const char* describe(feature f);

}  // namespace egressd::config
