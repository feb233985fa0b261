#pragma once
// Validation of the chunked body bytes that arrived together with a request
// head, so a malformed chunk size is refused (400) before egressd contacts
// the upstream at all. Pure; no allocation. Later bytes are validated by the
// streaming parser as they arrive (an upstream then sees at most an
// unfinished message, and the connection is closed).

#include <string_view>

namespace egressd::proxy {

// True when `bytes` is a valid prefix of a chunked body (RFC 9112 7.1):
// 1*HEXDIG (any number of leading zeros; the value must fit 64 bits)
// [; ext] CRLF data CRLF ..., last-chunk, trailer fields, CRLF. Trailer
// fields are only checked for shape (no folding, a non-empty name): egressd
// re-chunks bodies and drops trailers, so none is forwarded. Bytes after the end of the body (a pipelined
// request) are not examined.
bool chunked_prefix_valid(std::string_view bytes);

}  // namespace egressd::proxy
