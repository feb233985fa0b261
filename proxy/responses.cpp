#include "proxy/responses.hpp"

#include <fmt/format.h>

namespace egressd::proxy {

using acl::reason;

int status_for(reason r) {
  switch (r) {
    case reason::not_allowed:
    case reason::denied_rule:
    case reason::port:
    case reason::method:
    case reason::non_public_address:
    case reason::ip_literal:
    case reason::self:
    case reason::anomaly_block:
      return 403;
    case reason::auth_required:
    case reason::auth_failed:
      return 407;
    case reason::rate_limited:
    case reason::conns_limited:
    case reason::auth_throttled:
      return 429;
    case reason::header_too_large:
      return 431;
    case reason::uri_too_long:
      return 414;
    case reason::dns_failure:
    case reason::upstream_unreachable:
    case reason::upstream_reset:
      return 502;
    case reason::dns_timeout:
    case reason::upstream_timeout:
      return 504;
    case reason::shutdown:
    case reason::overloaded:
      return 503;
    default:
      return 400;
  }
}

const char* status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 407: return "Proxy Authentication Required";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

std::string refusal_body(reason r, const refusal_detail& d) {
  switch (r) {
    case reason::not_allowed:
      if (!d.agent.empty())
        return fmt::format("egressd: {} is not on the allowlist for agent {} (ask the operator to {} it)\n",
                           d.host, d.agent, d.grantable ? "grant" : "add");
      return fmt::format("egressd: {} is not on the allowlist (ask the operator to {} it)\n", d.host,
                         d.grantable ? "grant" : "add");
    case reason::auth_required:
      return "egressd: proxy credentials required (put the agent's name and token in the proxy URL: "
             "http://NAME:TOKEN@host:port)\n";
    case reason::auth_failed:
      return "egressd: proxy credentials not accepted (check the agent name and token)\n";
    case reason::auth_throttled:
      return fmt::format(
          "egressd: too many failed proxy authentications from this address (retry after {} s)\n",
          d.retry_after);
    case reason::denied_rule:
      return fmt::format("egressd: {} is denied by the rule 'deny {}'\n", d.host, d.rule);
    case reason::port:
      return fmt::format("egressd: port {} is not allowed for {} (ask the operator to add it to ports=)\n",
                         d.port, d.host);
    case reason::method:
      return fmt::format("egressd: method {} is not allowed for {} (ask the operator to add it to methods=)\n",
                         d.method, d.host);
    case reason::non_public_address:
      return fmt::format(
          "egressd: {} resolves to a non-public address {} (refused; an operator can allow it with allow_net)\n",
          d.host, d.address);
    case reason::ip_literal:
      return fmt::format(
          "egressd: connecting to the IP address {} is not allowed (use an allowlisted host name)\n", d.host);
    case reason::self:
      return fmt::format("egressd: {}:{} is egressd itself (refused)\n", d.host, d.port);
    case reason::anomaly_block:
      return "egressd: this client is blocked for a while after an anomaly alert (ask the operator)\n";
    case reason::rate_limited:
      return fmt::format("egressd: rate limit for {} exceeded (retry after {} s)\n", d.host, d.retry_after);
    case reason::conns_limited:
      return fmt::format("egressd: too many concurrent connections to {} (retry after {} s)\n", d.host,
                         d.retry_after);
    case reason::header_too_large:
      return "egressd: request header too large\n";
    case reason::uri_too_long:
      return "egressd: request URI too long\n";
    case reason::dns_failure:
      return fmt::format("egressd: could not resolve {}\n", d.host);
    case reason::dns_timeout:
      return fmt::format("egressd: DNS lookup for {} timed out\n", d.host);
    case reason::upstream_unreachable:
      return fmt::format("egressd: could not connect to {}:{}\n", d.host, d.port);
    case reason::upstream_timeout:
      return fmt::format("egressd: connecting to {}:{} timed out\n", d.host, d.port);
    case reason::upstream_reset:
      return fmt::format("egressd: {}:{} closed the connection without a valid response\n", d.host, d.port);
    case reason::shutdown:
      return "egressd: shutting down\n";
    case reason::overloaded:
      return "egressd: too many open connections (retry later)\n";
    default:
      if (!d.what.empty()) return fmt::format("egressd: bad request ({})\n", d.what);
      return "egressd: bad request\n";
  }
}

std::string refusal_response(reason r, const refusal_detail& d, bool keep_alive) {
  int status = status_for(r);
  std::string body = refusal_body(r, d);
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nX-Egressd-Reason: {}\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: {}\r\nConnection: {}\r\n",
      status, status_text(status), acl::to_string(r), body.size(), keep_alive ? "keep-alive" : "close");
  if (status == 429) out += fmt::format("Retry-After: {}\r\n", d.retry_after == 0 ? 1 : d.retry_after);
  if (status == 407) out += "Proxy-Authenticate: Basic realm=\"egressd\"\r\n";
  out += "\r\n";
  out += body;
  return out;
}

}  // namespace egressd::proxy
