#include "proxy/http_head.hpp"

#include <array>
#include <charconv>

namespace egressd::proxy {
namespace {

std::string_view trim(std::string_view t) {
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  return t;
}

// Calls f with each trimmed element of a comma-separated list until f
// returns true; returns whether it did.
template <class F>
bool for_each_token(std::string_view list, F&& f) {
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    if (f(trim(list.substr(i, j - i)))) return true;
    i = j + 1;
  }
  return false;
}

bool hop_by_hop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::proxy_authorization:
    case http::field::proxy_authenticate:
    case http::field::proxy_authentication_info:
    case http::field::te:
    case http::field::trailer:
    case http::field::upgrade:
    case http::field::expect:
    case http::field::host:
      return true;
    default:
      return false;
  }
}

// Connection options, not field names: they name nothing to drop.
bool connection_option(std::string_view tok) {
  return tok.empty() || beast::iequals(tok, "keep-alive") || beast::iequals(tok, "close") ||
         beast::iequals(tok, "upgrade");
}

// Fields named by the Connection header(s) are hop-by-hop too (RFC 9110
// 7.6.1), except the framing ones the message itself needs.
template <class Fields>
bool named_by_connection(const Fields& f, std::string_view name) {
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it) {
    const bool named = for_each_token(
        it->value(), [&](std::string_view tok) { return !connection_option(tok) && beast::iequals(tok, name); });
    if (named) return true;
  }
  return false;
}

template <class Fields>
bool connection_names_fields(const Fields& f) {
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it) {
    if (for_each_token(it->value(), [](std::string_view tok) { return !connection_option(tok); })) return true;
  }
  return false;
}

template <class Fields>
void write_fields(const Fields& f, bool drop_framing, std::string& out) {
  // Usually Connection names no field (keep-alive, close): one look, then none per field.
  const bool check_named = connection_names_fields(f);
  for (const auto& fld : f) {
    const auto name = fld.name();
    if (hop_by_hop(name)) continue;
    const bool framing = name == http::field::transfer_encoding || name == http::field::content_length;
    if (drop_framing && framing) continue;
    const std::string_view name_str = fld.name_string();
    if (check_named && !framing && named_by_connection(f, name_str)) continue;
    out.append(name_str);
    out.append(": ");
    out.append(fld.value());
    out.append("\r\n");
  }
}

void write_conn(conn_header conn, std::string_view upgrade, std::string& out) {
  switch (conn) {
    case conn_header::none: break;
    case conn_header::keep_alive: out.append("Connection: keep-alive\r\n"); break;
    case conn_header::close: out.append("Connection: close\r\n"); break;
    case conn_header::upgrade:
      out.append("Connection: upgrade\r\nUpgrade: ");
      out.append(upgrade);
      out.append("\r\n");
      break;
  }
}

}  // namespace

bool token_list_contains(std::string_view list, std::string_view token) {
  return for_each_token(list, [&](std::string_view t) { return beast::iequals(t, token); });
}

void write_request_head(const http::request_header<>& h, std::string_view target, std::string_view host,
                        conn_header conn, std::string_view upgrade, std::string& out) {
  out.append(h.method_string());
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(host);
  out.append("\r\n");
  write_fields(h, false, out);
  write_conn(conn, upgrade, out);
  out.append("\r\n");
}

void write_response_head(const http::response_header<>& h, conn_header conn, bool drop_framing,
                         std::string& out) {
  std::array<char, 8> code{};
  auto [end, ec] = std::to_chars(code.data(), code.data() + code.size(), h.result_int());
  (void)ec;
  out.append("HTTP/1.1 ");
  out.append(code.data(), end);
  out.push_back(' ');
  std::string_view reason = h.reason();
  out.append(reason.empty() ? std::string_view(http::obsolete_reason(h.result())) : reason);
  out.append("\r\n");
  write_fields(h, drop_framing, out);
  write_conn(conn, h[http::field::upgrade], out);
  out.append("\r\n");
}

}  // namespace egressd::proxy
