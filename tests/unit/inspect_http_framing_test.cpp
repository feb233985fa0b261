// check_request_head: request-smuggling classics and malformed heads are
// rejected with the right reason; heads real clients send pass.
#include "proxy/inspect/http_framing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace {

using egressd::proxy::check_request_head;
using egressd::proxy::framing_error;
using namespace std::string_literals;

struct head_case {
  const char* name;
  std::string head;
  framing_error expect;
};

// A GET head with the given extra field lines (each ending in CRLF).
std::string get_with(const std::string& fields, const std::string& version = "HTTP/1.1") {
  return "GET http://example.com/ " + version + "\r\nHost: example.com\r\n" + fields + "\r\n";
}
std::string post_with(const std::string& fields, const std::string& version = "HTTP/1.1") {
  return "POST http://example.com/upload " + version + "\r\nHost: example.com\r\n" + fields +
         "\r\n";
}

const head_case valid_heads[] = {
    {"curl_absolute_form",
     "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
     "Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n",
     framing_error::none},
    {"curl_connect",
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/7.88.1\r\n"
     "Proxy-Connection: Keep-Alive\r\n\r\n",
     framing_error::none},
    {"python_urllib",
     "GET http://example.com/path?q=1&r=%20 HTTP/1.1\r\nAccept-Encoding: identity\r\n"
     "Host: example.com\r\nUser-Agent: Python-urllib/3.11\r\nConnection: close\r\n\r\n",
     framing_error::none},
    {"python_requests_post",
     "POST http://api.example.com/v1/messages HTTP/1.1\r\nHost: api.example.com\r\n"
     "User-Agent: python-requests/2.31.0\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\n"
     "Connection: keep-alive\r\nContent-Length: 13\r\nContent-Type: application/json\r\n\r\n",
     framing_error::none},
    {"origin_form", "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n", framing_error::none},
    {"asterisk_form", "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n", framing_error::none},
    {"no_fields", "GET / HTTP/1.0\r\n\r\n", framing_error::none},
    {"chunked", post_with("Transfer-Encoding: chunked\r\n"), framing_error::none},
    {"chunked_upper_case", post_with("TRANSFER-ENCODING: CHUNKED\r\n"), framing_error::none},
    {"chunked_ows", post_with("Transfer-Encoding:\t chunked \t\r\n"), framing_error::none},
    {"gzip_then_chunked", post_with("Transfer-Encoding: gzip, chunked\r\n"), framing_error::none},
    {"te_over_two_lines",
     post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), framing_error::none},
    {"cl_zero", post_with("Content-Length: 0\r\n"), framing_error::none},
    {"cl_no_space", post_with("Content-Length:5\r\n"), framing_error::none},
    {"cl_tab", post_with("Content-Length:\t5\r\n"), framing_error::none},
    {"cl_leading_zeros", post_with("Content-Length: 0005\r\n"), framing_error::none},
    // RFC 9112 5: OWS on both sides of a field value, Content-Length too.
    {"cl_trailing_space", post_with("Content-Length: 5 \r\n"), framing_error::none},
    {"cl_ows_both_sides", post_with("Content-Length:   5  \r\n"), framing_error::none},
    {"cl_tabs", post_with("Content-Length:\t5\t\r\n"), framing_error::none},
    {"cl_no_ows", post_with("Content-Length:5\r\n"), framing_error::none},
    {"cl_many_leading_zeros", post_with("Content-Length: 000000000000000000000000005\r\n"), framing_error::none},
    {"te_ows_both_sides", post_with("Transfer-Encoding:   chunked \t\r\n"), framing_error::none},
    {"cl_lower_case", post_with("content-length: 5\r\n"), framing_error::none},
    {"cl_uint64_max", post_with("Content-Length: 18446744073709551615\r\n"), framing_error::none},
    {"cl_in_http10", post_with("Content-Length: 5\r\n", "HTTP/1.0"), framing_error::none},
    {"http_1_9_is_1_x", get_with("", "HTTP/1.9"), framing_error::none},
    {"empty_value", get_with("X-Empty:\r\n"), framing_error::none},
    {"obs_text_and_tab_in_value", get_with("X-Name: caf\xc3\xa9\tok\r\n"), framing_error::none},
    {"token_punctuation_name", get_with("X!#$%&'*+-.^_`|~9: v\r\n"), framing_error::none},
    {"value_with_colons", get_with("Referer: http://a.example:8080/x\r\n"), framing_error::none},
    {"te_header_not_transfer_encoding", get_with("TE: trailers\r\n"), framing_error::none},
    {"websocket_upgrade",
     "GET ws://example.com/chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     framing_error::none},
};

const head_case attacks[] = {
    // Content-Length with Transfer-Encoding, in both orders.
    {"cl_te", post_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
     framing_error::cl_and_te},
    {"te_cl", post_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
     framing_error::cl_and_te},
    {"cl_te_identity", post_with("Content-Length: 5\r\nTransfer-Encoding: identity\r\n"),
     framing_error::cl_and_te},
    // Transfer-Encoding that does not end in chunked.
    {"te_chunked_identity", post_with("Transfer-Encoding: chunked, identity\r\n"),
     framing_error::te_not_chunked_last},
    {"te_identity", post_with("Transfer-Encoding: identity\r\n"),
     framing_error::te_not_chunked_last},
    {"te_xchunked", post_with("Transfer-Encoding: xchunked\r\n"),
     framing_error::te_not_chunked_last},
    {"te_chunkedx", post_with("Transfer-Encoding: chunkedx\r\n"),
     framing_error::te_not_chunked_last},
    {"te_quoted", post_with("Transfer-Encoding: \"chunked\"\r\n"),
     framing_error::te_not_chunked_last},
    {"te_param", post_with("Transfer-Encoding: chunked;q=1\r\n"),
     framing_error::te_not_chunked_last},
    {"te_chunked_twice", post_with("Transfer-Encoding: chunked, chunked\r\n"),
     framing_error::te_not_chunked_last},
    {"te_lines_chunked_then_gzip",
     post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
     framing_error::te_not_chunked_last},
    {"te_empty", post_with("Transfer-Encoding:\r\n"), framing_error::te_not_chunked_last},
    // Found by the differential fuzzer: Beast 1.74 does not read these as chunked.
    {"te_non_token_before_chunked", post_with("Transfer-Encoding:\xe2,chunked\r\n"),
     framing_error::te_not_chunked_last},
    {"te_param_before_chunked", post_with("Transfer-Encoding: gzip;q=1, chunked\r\n"),
     framing_error::te_not_chunked_last},
    {"te_space_in_coding", post_with("Transfer-Encoding: gz ip, chunked\r\n"),
     framing_error::te_not_chunked_last},
    {"te_empty_element", post_with("Transfer-Encoding: ,chunked\r\n"),
     framing_error::te_not_chunked_last},
    {"te_trailing_comma", post_with("Transfer-Encoding: chunked,\r\n"),
     framing_error::te_not_chunked_last},
    {"te_vertical_tab", post_with("Transfer-Encoding: \vchunked\r\n"), framing_error::nul_byte},
    {"te_space_before_colon", post_with("Transfer-Encoding : chunked\r\n"),
     framing_error::invalid_field},
    {"te_tab_before_colon", post_with("Transfer-Encoding\t: chunked\r\n"),
     framing_error::invalid_field},
    {"te_underscore", post_with("Transfer_Encoding: chunked\r\n"), framing_error::invalid_field},
    {"te_in_http10", post_with("Transfer-Encoding: chunked\r\n", "HTTP/1.0"),
     framing_error::te_in_http10},
    // Content-Length duplicates and spellings.
    {"cl_duplicate_equal", post_with("Content-Length: 5\r\nContent-Length: 5\r\n"),
     framing_error::duplicate_cl},
    {"cl_duplicate_differ", post_with("Content-Length: 5\r\ncontent-length: 6\r\n"),
     framing_error::duplicate_cl},
    {"cl_list_equal", post_with("Content-Length: 5, 5\r\n"), framing_error::duplicate_cl},
    {"cl_list_differ", post_with("Content-Length: 5,6\r\n"), framing_error::duplicate_cl},
    {"cl_plus", post_with("Content-Length: +5\r\n"), framing_error::invalid_cl},
    {"cl_minus", post_with("Content-Length: -5\r\n"), framing_error::invalid_cl},
    {"cl_only_ows", post_with("Content-Length:  \t \r\n"), framing_error::invalid_cl},
    {"cl_inner_space", post_with("Content-Length: 5 5\r\n"), framing_error::invalid_cl},
    {"cl_hex", post_with("Content-Length: 0x5\r\n"), framing_error::invalid_cl},
    {"cl_decimal_point", post_with("Content-Length: 5.0\r\n"), framing_error::invalid_cl},
    {"cl_empty", post_with("Content-Length:\r\n"), framing_error::invalid_cl},
    {"cl_overflow", post_with("Content-Length: 18446744073709551616\r\n"),
     framing_error::invalid_cl},
    {"cl_huge", post_with("Content-Length: 99999999999999999999999999999\r\n"),
     framing_error::invalid_cl},
    {"cl_underscore", post_with("Content_Length: 5\r\n"), framing_error::invalid_field},
    {"cl_space_before_colon", post_with("Content-Length : 5\r\n"), framing_error::invalid_field},
    // Line folding, line endings, control bytes.
    {"obs_fold_space", get_with("X-Foo: a\r\n b\r\n"), framing_error::obs_fold},
    {"obs_fold_tab", get_with("X-Foo: a\r\n\tb\r\n"), framing_error::obs_fold},
    {"obs_fold_te", post_with("X-Foo: a\r\n Transfer-Encoding: chunked\r\n"),
     framing_error::obs_fold},
    {"space_before_first_field", "GET / HTTP/1.1\r\n Host: example.com\r\n\r\n",
     framing_error::obs_fold},
    {"bare_cr_in_value", get_with("X-Foo: a\rb\r\n"), framing_error::bare_cr},
    {"bare_cr_line_end", get_with("X-Foo: a\r\r\n"), framing_error::bare_cr},
    {"bare_cr_at_end", "GET / HTTP/1.1\r\nHost: a\r\n\r", framing_error::bare_cr},
    {"bare_lf_field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", framing_error::bare_lf},
    {"bare_lf_request_line", "GET / HTTP/1.1\nHost: a\r\n\r\n", framing_error::bare_lf},
    {"bare_lf_end", "GET / HTTP/1.1\r\nHost: a\r\n\n", framing_error::bare_lf},
    {"lf_cr", "GET / HTTP/1.1\n\rHost: a\r\n\r\n", framing_error::bare_lf},
    {"nul_in_value", get_with("X-Foo: a\0b\r\n"s), framing_error::nul_byte},
    {"nul_in_target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s, framing_error::nul_byte},
    {"nul_in_name", get_with("X-F\0o: a\r\n"s), framing_error::nul_byte},
    {"ctl_in_value", get_with("X-Foo: a\x01 b\r\n"), framing_error::nul_byte},
    {"del_in_value", get_with("X-Foo: a\x7f\r\n"), framing_error::nul_byte},
    {"escape_in_target", "GET /\x1b[31m HTTP/1.1\r\nHost: a\r\n\r\n", framing_error::nul_byte},
    // Field names.
    {"no_colon", get_with("X-Foo a\r\n"), framing_error::invalid_field},
    {"empty_name", get_with(": a\r\n"), framing_error::invalid_field},
    {"space_in_name", get_with("X Foo: a\r\n"), framing_error::invalid_field},
    {"non_token_name", get_with("X(Foo): a\r\n"), framing_error::invalid_field},
    {"non_ascii_name", get_with("H\xc3\xb3st: a\r\n"), framing_error::invalid_field},
    {"duplicate_host", get_with("host: evil.example\r\n"), framing_error::duplicate_host},
    // Request line.
    {"double_space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"leading_space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"tab_separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"space_in_target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
     framing_error::invalid_request_line},
    {"non_ascii_target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
     framing_error::invalid_request_line},
    {"no_version", "GET /\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"http09", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"http2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"lower_case_version", "GET / http/1.1\r\nHost: a\r\n\r\n",
     framing_error::invalid_request_line},
    {"long_version", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"non_token_method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", framing_error::invalid_request_line},
    {"empty_method", " / HTTP/1.1\r\n\r\n", framing_error::invalid_request_line},
    {"leading_empty_line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
     framing_error::invalid_request_line},
    // The head itself.
    {"empty", "", framing_error::incomplete_head},
    {"no_blank_line", "GET / HTTP/1.1\r\nHost: a\r\n", framing_error::incomplete_head},
    {"request_line_only", "GET / HTTP/1.1\r\n", framing_error::incomplete_head},
    {"no_crlf", "GET / HTTP/1.1", framing_error::incomplete_head},
    {"bytes_after_head", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
     framing_error::incomplete_head},
};

class framing_table : public ::testing::TestWithParam<head_case> {};

TEST_P(framing_table, verdict) {
  const head_case& c = GetParam();
  EXPECT_EQ(check_request_head(c.head), c.expect)
      << testing::PrintToString(c.head) << " -> " << to_string(check_request_head(c.head));
}

auto case_name = [](const auto& info) { return std::string(info.param.name); };
INSTANTIATE_TEST_SUITE_P(valid, framing_table, ::testing::ValuesIn(valid_heads), case_name);
INSTANTIATE_TEST_SUITE_P(attacks, framing_table, ::testing::ValuesIn(attacks), case_name);

// No proper prefix of a valid head is accepted: the blank line must be last.
TEST(http_framing, proper_prefixes_of_valid_heads_are_rejected) {
  for (const head_case& c : valid_heads)
    for (size_t n = 0; n < c.head.size(); ++n)
      ASSERT_NE(check_request_head(std::string_view(c.head).substr(0, n)), framing_error::none)
          << c.name << " prefix " << n;
}

// Turning any CRLF of a valid head into a bare LF or a bare CR is caught.
TEST(http_framing, every_line_ending_is_checked) {
  for (const head_case& c : valid_heads) {
    for (size_t i = c.head.find("\r\n"); i != std::string::npos; i = c.head.find("\r\n", i + 1)) {
      std::string lf = c.head;
      lf.erase(i, 1);
      EXPECT_EQ(check_request_head(lf), framing_error::bare_lf) << c.name << " at " << i;
      std::string cr = c.head;
      cr[i + 1] = 'x';
      EXPECT_NE(check_request_head(cr), framing_error::none) << c.name << " at " << i;
    }
  }
}

// Every control byte, anywhere in a field value, is rejected; HTAB is OWS.
TEST(http_framing, control_bytes_in_values) {
  for (int b = 0; b < 0x20; ++b) {
    if (b == '\t') continue;
    const std::string head = get_with("X-Foo: a"s + static_cast<char>(b) + "b\r\n");
    EXPECT_NE(check_request_head(head), framing_error::none) << b;
  }
}

// With EGRESSD_WRITE_CORPUS=DIR, writes every table head to DIR (the seed
// corpus of tests/fuzz/inspect_http_framing_fuzz.cpp).
TEST(http_framing, write_seed_corpus) {
  const char* dir = std::getenv("EGRESSD_WRITE_CORPUS");
  if (dir == nullptr) GTEST_SKIP() << "EGRESSD_WRITE_CORPUS not set";
  auto write = [&](const head_case& c) {
    std::ofstream(std::string(dir) + "/" + c.name, std::ios::binary) << c.head;
  };
  for (const head_case& c : valid_heads) write(c);
  for (const head_case& c : attacks) write(c);
}

TEST(http_framing, every_error_has_a_name) {
  for (int e = 0; e <= static_cast<int>(framing_error::incomplete_head); ++e)
    EXPECT_STRNE(to_string(static_cast<framing_error>(e)), "unknown") << e;
}

}  // namespace
