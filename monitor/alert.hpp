#pragma once
// An anomaly alert (SPEC "Anomaly metrics"): a plain value type, copied
// freely between threads. Rendered as the alert log line and as an element
// of the /alerts array.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace egressd::monitor {

enum class alert_type : uint8_t {
  domain_diversity,  // more than unique_domains distinct hosts in the window
  large_outbound,    // one request or tunnel sent more than bytes_out upstream
  total_outbound,    // more than total_bytes_out sent upstream in the window
  request_rate,      // more than `requests` requests in the window
  error_rate,        // more than error_rate % errors, once min_requests are in
};
inline constexpr size_t alert_type_count = 5;
const char* to_string(alert_type t);

struct alert {
  alert_type type = alert_type::domain_diversity;
  std::string client;  // source address (no port)
  std::string host;    // host of the request that crossed the threshold
  // Units: distinct hosts, bytes, bytes, requests per window, percent.
  double value = 0;
  double threshold = 0;
  std::chrono::system_clock::time_point ts;
  // action=block:DURATION: the client is refused for this long (0: log only).
  std::chrono::milliseconds block_for{0};
};

// {"ts":"...","alert":"large_outbound","client":"10.0.0.5","value":150000,
//  "threshold":102400,"host":"unknown4.com","action":"log"}
// With action=block: "action":"block","block_seconds":N.
std::string to_json(const alert& a);

}  // namespace egressd::monitor
