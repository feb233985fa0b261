#pragma once
// Request-head validation that Beast 1.74's parser does not do (SPEC: "Malformed
// or ambiguous HTTP framing ... is rejected with 400"). Pure, no allocation,
// operates on the raw head bytes (request line + fields + final CRLF CRLF)
// before Beast parses them. Fuzzed.

#include <cstdint>
#include <string_view>

namespace egressd::proxy {

enum class framing_error : uint8_t {
  none,
  bare_cr,             // CR not followed by LF anywhere in the head
  bare_lf,             // LF line ending without CR (lenient parsers disagree)
  obs_fold,            // a field line starting with SP/HTAB (obsolete folding)
  invalid_field,       // field name empty / with spaces / not a token, or no ':'
  cl_and_te,           // both Content-Length and Transfer-Encoding
  duplicate_cl,        // more than one Content-Length (even if equal), or a list
  invalid_cl,          // Content-Length not 1*DIGIT or overflowing uint64
  te_not_chunked_last, // Transfer-Encoding whose last coding is not chunked
  te_in_http10,        // Transfer-Encoding in an HTTP/1.0 request
  invalid_request_line,
  nul_byte,            // NUL or other control characters in the head
};
const char* to_string(framing_error e);

// head: from the first byte of the request line up to and including the
// blank line that ends the fields.
framing_error check_request_head(std::string_view head);

}  // namespace egressd::proxy
