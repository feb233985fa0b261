#include "proxy/inspect/chunked_prefix.hpp"

#include <gtest/gtest.h>

#include <string>

using egressd::proxy::chunked_prefix_valid;

TEST(ChunkedPrefix, ValidBodiesAndEveryPrefix) {
  const std::string valid[] = {
      "b\r\nhello world\r\n0\r\n\r\n",
      "5;name=value\r\nhello\r\n0\r\n\r\n",
      "A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
      "0\r\n\r\nGET http://next.example/ HTTP/1.1\r\n",  // pipelined bytes not judged
      "ffffffffffffffff\r\nabc",
      // RFC 9112 7.1: leading zeros, any number of them, sizes and last chunk.
      "0005\r\nhello\r\n0000\r\n\r\n",
      "0000000000000000000000005\r\nhello\r\n0\r\n\r\n",
      "00000000ffffffffffffffff\r\nabc",
      // Trailer fields (egressd drops them when it re-chunks).
      "5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:\tv \r\n\r\n",
  };
  for (const auto& v : valid) {
    for (size_t n = 0; n <= v.size(); ++n) EXPECT_TRUE(chunked_prefix_valid(v.substr(0, n))) << v << " @" << n;
  }
}

TEST(ChunkedPrefix, Attacks) {
  const char* bad[] = {
      "zz\r\n",                         // not hex
      "-1\r\n",                         // negative
      "0x5\r\nhello\r\n",               // 0x prefix
      " 5\r\nhello\r\n",                // leading space
      "5 \r\nhello\r\n",                // trailing space
      "5\nhello\n",                     // bare LF
      "5\r\nhelloX\r\n",                // data longer than its size
      "5\r\nhello\r\r",                 // bad CRLF after data
      "10000000000000000\r\n",          // 17 hex digits: overflow
      "00010000000000000000\r\n",       // overflow after leading zeros
      "5;\x01\r\n",                     // control char in extension
      "0\r\n bad-fold\r\n\r\n",         // obs-fold in trailers
      "0\r\n: empty-name\r\n\r\n",      // empty trailer name
      "0\r\n\r\r",                      // bad final CRLF
      "\r\n",                           // empty size
  };
  for (const char* b : bad) EXPECT_FALSE(chunked_prefix_valid(b)) << b;
}
