#include "proxy/inspect/chunked.hpp"

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

namespace {

using egressd::proxy::chunked_scanner;

struct scanned {
  std::string out;
  chunked_scanner::status st = chunked_scanner::status::more;
  size_t used = 0;  // where the body ended (or all of the input)
};

// Feeds `in` in pieces of `piece` bytes; collects what passes.
scanned scan(std::string_view in, chunked_scanner::mode m, size_t piece) {
  chunked_scanner sc(m);
  scanned r;
  while (r.used < in.size() && r.st == chunked_scanner::status::more) {
    std::string_view part = in.substr(r.used, piece);
    while (!part.empty() && r.st == chunked_scanner::status::more) {
      const auto run = sc.next(part);
      r.st = run.st;
      if (run.st == chunked_scanner::status::bad) return r;
      if (run.pass) r.out.append(part.substr(0, run.n));
      part.remove_prefix(run.n);
      r.used += run.n;
    }
  }
  return r;
}

}  // namespace

TEST(ChunkedScanner, RelaysFramingAsSentWithoutExtensionsOrTrailers) {
  const std::string body = "0005;name=value\r\nhello\r\n6\r\n world\r\n000;x\r\nX-Sum: 1\r\nY: 2\r\n\r\nNEXT";
  for (size_t piece : {1, 2, 3, 7, 64}) {
    auto f = scan(body, chunked_scanner::mode::framed, piece);
    EXPECT_EQ(f.st, chunked_scanner::status::done) << piece;
    EXPECT_EQ(f.out, "0005\r\nhello\r\n6\r\n world\r\n000\r\n\r\n") << piece;
    EXPECT_EQ(f.used, body.size() - 4) << "the pipelined bytes are not the body's";
    auto d = scan(body, chunked_scanner::mode::decoded, piece);
    EXPECT_EQ(d.st, chunked_scanner::status::done);
    EXPECT_EQ(d.out, "hello world") << piece;
  }
}

TEST(ChunkedScanner, RunsAreMaximal) {
  // Sizes, data and CRLFs all pass: one run; an extension splits it.
  chunked_scanner sc(chunked_scanner::mode::framed);
  const std::string_view plain = "3\r\nabc\r\n0\r\n\r\n";
  auto r = sc.next(plain);
  EXPECT_EQ(r.n, plain.size());
  EXPECT_TRUE(r.pass);
  EXPECT_EQ(r.st, chunked_scanner::status::done);
  chunked_scanner ext(chunked_scanner::mode::framed);
  r = ext.next("3;e\r\nabc");
  EXPECT_EQ(r.n, 1u);
  EXPECT_TRUE(r.pass);
  r = ext.next(";e\r\nabc");
  EXPECT_EQ(r.n, 2u);
  EXPECT_FALSE(r.pass);
}

TEST(ChunkedScanner, DataCanBeMovedUnscanned) {
  chunked_scanner sc(chunked_scanner::mode::framed);
  auto r = sc.next("10000\r\nab");
  EXPECT_EQ(r.st, chunked_scanner::status::more);
  EXPECT_EQ(sc.chunk_size(), 0x10000u);
  EXPECT_EQ(sc.data_left(), 0x10000u - 2);
  EXPECT_EQ(sc.data_scanned(), 2u);
  sc.skip_data(sc.data_left());  // spliced
  EXPECT_EQ(sc.data_left(), 0u);
  EXPECT_EQ(sc.next("X").st, chunked_scanner::status::bad) << "no CRLF after the data";
  chunked_scanner ok(chunked_scanner::mode::framed);
  ok.next("4\r\n");
  ok.skip_data(4);
  EXPECT_EQ(ok.next("\r\n0\r\n\r\n").st, chunked_scanner::status::done);
}

TEST(ChunkedScanner, Limits) {
  EXPECT_TRUE(chunked_prefix_valid("5;" + std::string(chunked_scanner::max_size_line - 3, 'x')));
  EXPECT_FALSE(chunked_prefix_valid("5;" + std::string(chunked_scanner::max_size_line, 'x')));
  EXPECT_TRUE(chunked_prefix_valid("0\r\nX: " + std::string(chunked_scanner::max_trailers - 10, 'v')));
  EXPECT_FALSE(chunked_prefix_valid("0\r\nX: " + std::string(chunked_scanner::max_trailers, 'v')));
}
