#pragma once
// Serialization of the message heads egressd forwards. egressd never copies
// raw header bytes: it writes a fresh head from the parsed fields, leaving
// out hop-by-hop fields (RFC 9110 7.6.1), the fields the Connection header
// names, the Proxy-* ones and Expect (egressd answers 100-continue itself),
// and adds only what it owns (Host, Connection, Upgrade). Appends to a
// caller-owned string so a session reuses one buffer for every request.

#include <string>
#include <string_view>

#include "proxy/asio.hpp"

namespace egressd::proxy {

enum class conn_header : uint8_t {
  none,        // HTTP/1.1 keep-alive: nothing to say
  keep_alive,  // "Connection: keep-alive" (an HTTP/1.0 peer)
  close,       // "Connection: close"
  upgrade,     // "Connection: upgrade" + the Upgrade field given
};

// "METHOD target HTTP/1.1", Host first, then the end-to-end fields.
void write_request_head(const http::request_header<>& h, std::string_view target, std::string_view host,
                        conn_header conn, std::string_view upgrade, std::string& out);

// "HTTP/1.1 code reason", then the end-to-end fields. drop_framing: leave
// out Transfer-Encoding and Content-Length (a chunked body re-sent to an
// HTTP/1.0 client as a close-delimited one).
void write_response_head(const http::response_header<>& h, conn_header conn, bool drop_framing,
                         std::string& out);

// True when the comma-separated list contains token (case-insensitive).
bool token_list_contains(std::string_view list, std::string_view token);

}  // namespace egressd::proxy
