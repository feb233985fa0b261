// libFuzzer target for chunked_scanner. Besides "no crash, no UB" it checks
// that the result does not depend on how the input is split (the first byte
// picks the piece size), that what it forwards in framed mode is itself a
// complete chunked body that it accepts again unchanged, and, differentially,
// that Beast 1.74's parser reads that forwarded body as exactly the data the
// decoded mode gives: what egressd relays can only mean one thing.
#include <utility>  // before Boost (GCC 12)

#include "proxy/inspect/chunked.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

using egressd::proxy::chunked_scanner;
namespace http = boost::beast::http;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

struct scanned {
  std::string out;
  chunked_scanner::status st = chunked_scanner::status::more;
  size_t used = 0;
};

scanned scan(std::string_view in, chunked_scanner::mode m, size_t piece) {
  chunked_scanner sc(m);
  scanned r;
  while (r.used < in.size() && r.st == chunked_scanner::status::more) {
    std::string_view part = in.substr(r.used, piece);
    while (!part.empty() && r.st == chunked_scanner::status::more) {
      const auto run = sc.next(part);
      check(run.n <= part.size());
      r.st = run.st;
      if (run.st == chunked_scanner::status::bad) return r;
      check(run.n > 0);  // a non-empty input always makes progress
      if (run.pass) r.out.append(part.substr(0, run.n));
      part.remove_prefix(run.n);
      r.used += run.n;
    }
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = 1 + data[0] % 17;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  const auto whole = scan(in, chunked_scanner::mode::framed, in.size() + 1);
  const auto split = scan(in, chunked_scanner::mode::framed, piece);
  check(whole.st == split.st);
  if (whole.st == chunked_scanner::status::bad) return 0;
  check(whole.out == split.out && whole.used == split.used);
  const auto decoded = scan(in, chunked_scanner::mode::decoded, piece);
  check(decoded.st == whole.st && decoded.used == whole.used);
  check(egressd::proxy::chunked_prefix_valid(in));
  if (whole.st != chunked_scanner::status::done) return 0;

  // The forwarded body is a chunked body of its own, forwarded as it is.
  const auto again = scan(whole.out, chunked_scanner::mode::framed, piece);
  check(again.st == chunked_scanner::status::done && again.used == whole.out.size() && again.out == whole.out);

  // And Beast reads it as the decoded data, to its last byte.
  http::response_parser<http::string_body> p;
  p.body_limit(std::numeric_limits<std::uint64_t>::max());
  p.eager(true);
  const std::string msg = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + whole.out;
  boost::beast::error_code ec;
  size_t used = 0;
  while (!p.is_done() && !ec) {
    const size_t n = p.put(boost::asio::buffer(msg.data() + used, msg.size() - used), ec);
    used += n;
    if (n == 0 && !ec) break;
  }
  check(!ec && p.is_done() && used == msg.size());
  check(p.get().body() == decoded.out);
  return 0;
}
