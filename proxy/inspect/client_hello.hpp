#pragma once
// TLS ClientHello inspection: enough to find the SNI, never more. Pure (no
// Asio), no allocation, no state between calls, safe on any bytes (fuzzed).
// Thread-safe (a pure function). Handles a ClientHello split across several
// TLS handshake records and delivered in arbitrary pieces.
//
// Verdicts are monotonic: a verdict other than need_more depends only on the
// bytes it was reached with, so a longer buffer gives the same verdict (and
// the same SNI). The whole ClientHello is validated before ok is returned.
//
// The SNI is copied into the result (at most 255 bytes), never a view into
// the caller's buffer: a fragmented ClientHello may split the name across two
// records, and a copy also outlives the read buffer once it is relayed.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace egressd::proxy {

enum class hello_status : uint8_t {
  need_more,   // a valid prefix; read more bytes (up to the cap)
  ok,          // complete ClientHello parsed; has_sni false when no SNI ext
  not_tls,     // first record is not a TLS handshake record (e.g. plain HTTP,
               // SSLv2 hello), or its first message is not a ClientHello
  malformed,   // TLS framing but inconsistent lengths, bad field values, ...
  too_large,   // ClientHello (with its record headers) exceeds the cap
  bad_sni,     // a sound ClientHello whose server_name extension is malformed
               // or ambiguous (see parse_client_hello); has_sni is false
};
const char* to_string(hello_status s);

inline constexpr size_t max_client_hello = 16 * 1024 + 5 * 4;  // bytes on the wire
inline constexpr size_t max_sni_length = 255;                  // DNS name limit
inline constexpr size_t max_dns_name = 253;   // without a trailing dot
inline constexpr size_t max_dns_label = 63;

struct hello_result {
  hello_status status = hello_status::need_more;
  // True when status is ok and the ClientHello carries a server_name
  // extension; its single host_name entry is then sni() (never empty).
  bool has_sni = false;
  uint8_t sni_size = 0;
  std::array<char, max_sni_length> sni_bytes{};  // [0, sni_size) valid; use sni()
  // Status ok or bad_sni: the ClientHello carries an extension of the ECH
  // family (encrypted_client_hello 0xfe0d, its drafts 0xfe08..0xfe0c and
  // 0xff02..0xff0d, ESNI 0xffce); ech_type is the first one seen.
  bool ech = false;
  uint16_t ech_type = 0;
  // Status ok or bad_sni: the wire bytes the ClientHello took (its records'
  // headers included); what follows in `data` is the client's next record.
  uint32_t wire_size = 0;

  std::string_view sni() const noexcept { return {sni_bytes.data(), sni_size}; }
};

// `data` holds every byte received so far from the client (from the first
// byte of the connection); bytes after the ClientHello (early data, ...) are
// ignored. Call again with the longer buffer on need_more. `cap` bounds the
// wire bytes (record headers included) a ClientHello may occupy.
//
// Strictness (anything else is malformed): record versions 0x0300..0x0304,
// record lengths 1..2^14, continuation records of content type 22, lengths
// that nest exactly, no bytes after the ClientHello in its last record.
// The server_name extension, when present, must be the only one and hold
// exactly one host_name entry that a DNS lookup could take: labels of 1..63
// bytes from [A-Za-z0-9_-] joined by dots, at most 253 bytes (plus one
// trailing dot). Anything else there (two names, two extensions, another
// name type, an empty, NUL-carrying or non-ASCII name, list lengths that do
// not fit the extension) is bad_sni, decided only once the whole ClientHello
// has been read and found sound otherwise (so it never hides a malformed
// or too_large verdict, and stays monotonic).
hello_result parse_client_hello(const uint8_t* data, size_t size,
                                size_t cap = max_client_hello);

}  // namespace egressd::proxy
