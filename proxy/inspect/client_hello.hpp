#pragma once
// TLS ClientHello inspection: enough to find the SNI, never more. Pure (no
// Asio), no allocation, safe on any bytes (fuzzed). Handles a ClientHello
// split across several TLS records and delivered in arbitrary pieces.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace egressd::proxy {

enum class hello_status : uint8_t {
  need_more,   // a valid prefix; read more bytes (up to max_client_hello)
  ok,          // complete ClientHello parsed; sni may be empty (no SNI ext)
  not_tls,     // first bytes are not a TLS handshake record / ClientHello
  malformed,   // TLS framing but inconsistent lengths, bad SNI encoding, ...
  too_large,   // ClientHello exceeds the cap
};
const char* to_string(hello_status s);

inline constexpr size_t max_client_hello = 16 * 1024 + 5 * 4;  // bytes on the wire

struct hello_result {
  hello_status status = hello_status::need_more;
  // host_name from server_name (type 0), pointing into the input buffer;
  // empty when the ClientHello has no SNI extension.
  std::string_view sni;
  bool has_sni = false;
};

// `data` holds every byte received so far from the client (from the first
// byte of the connection). Call again with the longer buffer on need_more.
hello_result parse_client_hello(const uint8_t* data, size_t size,
                                size_t cap = max_client_hello);

}  // namespace egressd::proxy
