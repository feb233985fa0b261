#pragma once
// Request-head validation that Beast 1.74's parser does not do (SPEC: "Malformed
// or ambiguous HTTP framing ... is rejected with 400"). Pure, no allocation, no
// state; thread-safe. Operates on the raw head bytes (request line + fields +
// final CRLF CRLF) before Beast parses them. Fuzzed.
//
// Deliberately stricter than RFC 9112 where two parsers could disagree: no
// leading empty lines, transfer codings that are bare tokens (no empty
// elements, no parameters), one Host line. What the RFC makes unambiguous is
// accepted: OWS before and after any field value, Content-Length included
// (`Content-Length:   5  `), and leading zeros in it. The first problem found (scanning bytes, then lines, in order; the
// CL/TE combination checks last) is returned.

#include <cstdint>
#include <string_view>

namespace egressd::proxy {

enum class framing_error : uint8_t {
  none,
  bare_cr,             // CR not followed by LF anywhere in the head
  bare_lf,             // LF line ending without CR (lenient parsers disagree)
  obs_fold,            // a field line starting with SP/HTAB (obsolete folding)
  invalid_field,       // field name empty / with spaces / not a token, or no ':';
                       // also Content_Length / Transfer_Encoding look-alikes
                       // (CGI-style servers map '_' to '-')
  cl_and_te,           // both Content-Length and Transfer-Encoding
  duplicate_cl,        // more than one Content-Length (even if equal), or a list
  invalid_cl,          // Content-Length not 1*DIGIT (between OWS) or
                       // overflowing uint64
  te_not_chunked_last, // Transfer-Encoding (all its lines, in order) whose last
                       // coding is not chunked, chunked twice, or an element
                       // that is not a bare token (empty, parameters, quotes)
  te_in_http10,        // Transfer-Encoding in an HTTP/1.0 request
  invalid_request_line,// not `token SP 1*VCHAR SP HTTP/1.DIGIT`, single spaces
  nul_byte,            // NUL or other control characters (CTL except HTAB, DEL)
  duplicate_host,      // more than one Host line: routing would be ambiguous
  incomplete_head,     // head does not end with its first empty line (CRLF CRLF)
};
const char* to_string(framing_error e);

// head: from the first byte of the request line up to and including the
// blank line that ends the fields; nothing after it (else incomplete_head).
framing_error check_request_head(std::string_view head);

}  // namespace egressd::proxy
