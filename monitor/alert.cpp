#include "monitor/alert.hpp"

#include <charconv>
#include <cmath>

#include "monitor/access_log.hpp"

namespace egressd::monitor {
namespace {

void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;  // JSON has no Inf/NaN
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

const char* to_string(alert_type t) {
  switch (t) {
    case alert_type::domain_diversity: return "domain_diversity";
    case alert_type::large_outbound: return "large_outbound";
    case alert_type::total_outbound: return "total_outbound";
    case alert_type::request_rate: return "request_rate";
    case alert_type::error_rate: return "error_rate";
  }
  return "unknown";
}

std::string to_json(const alert& a) {
  std::string out;
  out.reserve(192 + a.host.size());
  out += "{\"ts\":\"";
  append_rfc3339_ms(out, a.ts);
  out += "\",\"alert\":\"";
  out += to_string(a.type);
  out += "\",\"client\":";
  append_json_string(out, a.client);
  out += ",\"value\":";
  append_number(out, a.value);
  out += ",\"threshold\":";
  append_number(out, a.threshold);
  out += ",\"host\":";
  append_json_string(out, a.host);
  if (a.block_for.count() > 0) {
    out += ",\"action\":\"block\",\"block_seconds\":";
    append_number(out, static_cast<double>(a.block_for.count()) / 1000.0);
  } else {
    out += ",\"action\":\"log\"";
  }
  out += '}';
  return out;
}

}  // namespace egressd::monitor
