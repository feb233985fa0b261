#pragma once
// The first flight of a TLS handshake, as the tunnel watch sees it between
// the client's first ClientHello and the server's answer (see
// proxy/tls_check.cpp). Pure (no Asio), no allocation, safe on any bytes
// (fuzzed by tests/fuzz/inspect_first_flight_fuzz.cpp); thread-safe.
//
// Like parse_client_hello, every call re-parses from byte 0 and verdicts are
// monotonic: a verdict other than need_more (server side) or a handshake /
// not_tls finding (client side) never changes when more bytes arrive.

#include <cstddef>
#include <cstdint>

namespace egressd::proxy {

// What the server's first bytes are.
enum class server_first : uint8_t {
  need_more,            // a valid prefix of a handshake record; read more
  server_hello,         // a ServerHello that is not a HelloRetryRequest
  hello_retry_request,  // a ServerHello whose random is the HRR value (RFC 8446 §4.1.3)
  other,                // anything else (an alert, not TLS, another message):
                        // the watch has nothing to wait for
};
const char* to_string(server_first s);

// The 32 bytes a HelloRetryRequest carries as its ServerHello.random:
// SHA-256("HelloRetryRequest").
inline constexpr uint8_t hello_retry_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

// `data` holds the server's bytes from its first one. Decided from the first
// handshake message's type and its first 38 bytes (type, length, version,
// random), which may be split over several handshake records (at most 38,
// so the verdict comes within 228 wire bytes).
server_first parse_server_first(const uint8_t* data, size_t size);

// Client bytes held after a ClientHello, walked record by record.
struct record_scan {
  enum class kind : uint8_t {
    clean,      // only ChangeCipherSpec, alert and application_data records
                // (early data), the last one possibly incomplete
    handshake,  // a handshake record starts at `at` (its type byte is there)
    not_tls,    // the record at `at` is no TLS record (type or version)
  };
  kind what = kind::clean;
  // handshake / not_tls: the offending record's offset. clean: the end of
  // the last complete record (== size unless a record is still arriving).
  size_t at = 0;
};
record_scan scan_client_records(const uint8_t* data, size_t size);

}  // namespace egressd::proxy
