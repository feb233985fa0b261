// Server-first-flight and held-client-record inspection. See the header.
#include "proxy/inspect/first_flight.hpp"

#include <cstring>

namespace egressd::proxy {

const char* to_string(server_first s) {
  switch (s) {
    case server_first::need_more: return "need_more";
    case server_first::server_hello: return "server_hello";
    case server_first::hello_retry_request: return "hello_retry_request";
    case server_first::other: return "other";
  }
  return "unknown";
}

namespace {

constexpr uint8_t content_change_cipher_spec = 20;
constexpr uint8_t content_alert = 21;
constexpr uint8_t content_handshake = 22;
constexpr uint8_t content_application_data = 23;
constexpr uint8_t handshake_server_hello = 2;
constexpr size_t record_header_size = 5;
// RFC 8446 §5.2: a protected record may exceed 2^14 by up to 256 bytes
// (TLS 1.2 allowed 2048 for its ciphertext expansion).
constexpr size_t max_record_payload = 16 * 1024 + 2048;
constexpr size_t max_plain_payload = 16 * 1024;
// type(1) length(3) legacy_version(2) random(32)
constexpr size_t server_hello_prefix = 4 + 2 + 32;

}  // namespace

server_first parse_server_first(const uint8_t* data, size_t size) {
  if (data == nullptr) size = 0;
  uint8_t hs[server_hello_prefix];
  size_t have = 0;
  size_t pos = 0;
  while (have < server_hello_prefix) {
    // A record header, byte by byte, so that "other" is seen at once.
    if (size <= pos) return server_first::need_more;
    if (data[pos] != content_handshake) return server_first::other;
    if (size <= pos + 1) return server_first::need_more;
    if (data[pos + 1] != 3) return server_first::other;
    if (size < pos + record_header_size) return server_first::need_more;
    const size_t len = size_t{data[pos + 3]} << 8 | data[pos + 4];
    if (len == 0 || len > max_plain_payload) return server_first::other;
    pos += record_header_size;
    const size_t end = pos + len;
    while (pos < end && have < server_hello_prefix) {
      if (pos >= size) return server_first::need_more;
      hs[have++] = data[pos++];
      if (have == 1 && hs[0] != handshake_server_hello) return server_first::other;
    }
    pos = end;  // the rest of this record is the server's business
  }
  const size_t body = size_t{hs[1]} << 16 | size_t{hs[2]} << 8 | hs[3];
  if (body < server_hello_prefix - 4 || hs[4] != 3) return server_first::other;
  return std::memcmp(hs + 6, hello_retry_random, sizeof hello_retry_random) == 0
             ? server_first::hello_retry_request
             : server_first::server_hello;
}

record_scan scan_client_records(const uint8_t* data, size_t size) {
  if (data == nullptr) size = 0;
  size_t pos = 0;
  for (;;) {
    if (pos >= size) return {record_scan::kind::clean, pos};
    const uint8_t type = data[pos];
    if (type == content_handshake) return {record_scan::kind::handshake, pos};
    if (type != content_change_cipher_spec && type != content_alert && type != content_application_data)
      return {record_scan::kind::not_tls, pos};
    if (pos + 1 < size && data[pos + 1] != 3) return {record_scan::kind::not_tls, pos};
    if (size < pos + record_header_size) return {record_scan::kind::clean, pos};
    const size_t len = size_t{data[pos + 3]} << 8 | data[pos + 4];
    if (len > max_record_payload) return {record_scan::kind::not_tls, pos};
    if (size - pos - record_header_size < len) return {record_scan::kind::clean, pos};
    pos += record_header_size + len;
  }
}

}  // namespace egressd::proxy
