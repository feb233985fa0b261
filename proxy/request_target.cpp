#include "proxy/request_target.hpp"

#include <charconv>

namespace egressd::proxy {
namespace {

bool parse_port(std::string_view s, uint16_t* out) {
  if (s.empty() || s.size() > 5) return false;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

// host[:port] or [v6][:port]; default_port used when the port is absent
// (0 = port mandatory).
bool parse_host_port(std::string_view a, uint16_t default_port, target* out) {
  if (a.empty()) return false;
  for (char c : a) {
    // Nothing that could make two parsers disagree on the host.
    if (c == '@' || c == '/' || c == '\\' || c == '?' || c == '#' || c == '%' ||
        static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return false;
  }
  std::string_view host, port;
  if (a.front() == '[') {
    auto close = a.find(']');
    if (close == std::string_view::npos) return false;
    host = a.substr(1, close - 1);
    auto rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    out->bracketed = true;
  } else {
    auto colon = a.rfind(':');
    if (colon != std::string_view::npos) {
      if (a.find(':') != colon) return false;  // bare IPv6 must be bracketed
      host = a.substr(0, colon);
      port = a.substr(colon + 1);
      if (port.empty()) return false;
    } else {
      host = a;
    }
    out->bracketed = false;
  }
  if (host.empty()) return false;
  if (port.empty()) {
    if (default_port == 0) return false;
    out->port = default_port;
  } else if (!parse_port(port, &out->port)) {
    return false;
  }
  out->host = host;
  return true;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

bool parse_absolute_form(std::string_view uri, target* out) {
  constexpr std::string_view scheme = "http://";
  if (!iequals_prefix(uri, scheme)) return false;
  auto rest = uri.substr(scheme.size());
  auto end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, end);
  if (!parse_host_port(authority, 80, out)) return false;
  std::string_view path = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (!path.empty() && path.front() == '#') return false;
  if (path.find('#') != std::string_view::npos) return false;
  for (char c : path)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) == 0x7f) return false;
  out->path = path.empty() ? std::string_view("/") : path;
  return true;
}

bool parse_authority_form(std::string_view authority, target* out) {
  out->path = {};
  return parse_host_port(authority, 0, out);
}

bool parse_host_header(std::string_view value, uint16_t default_port, target* out) {
  out->path = {};
  return parse_host_port(value, default_port, out);
}

std::string_view path_without_query(std::string_view path) {
  auto q = path.find('?');
  return q == std::string_view::npos ? path : path.substr(0, q);
}

}  // namespace egressd::proxy
