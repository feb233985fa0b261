// "request-head parse + validation": check_request_head on a typical 300-byte
// proxy request head, Boost.Beast 1.74's request_parser on the same bytes,
// and both in sequence (what a forward-proxy session pays per request).
#include <utility>  // before Boost (GCC 12)

#include "proxy/inspect/http_framing.hpp"

#include <benchmark/benchmark.h>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <string>

namespace {

namespace http = boost::beast::http;
using egressd::proxy::check_request_head;
using egressd::proxy::framing_error;

const std::string typical_head =
    "POST http://api.example.com/v1/messages?beta=true HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: python-requests/2.31.0\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: application/json\r\n"
    "Connection: keep-alive\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 1234\r\n"
    "X-Trace: 4b1d9c0f\r\n"
    "\r\n";

bool beast_parse(const std::string& head) {
  http::request_parser<http::empty_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(false);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(head.data(), head.size()), ec);
  return !ec && parser.is_header_done();
}

void bm_check_request_head(benchmark::State& state) {
  for (auto _ : state) {
    const framing_error e = check_request_head(typical_head);
    benchmark::DoNotOptimize(e);
    if (e != framing_error::none) state.SkipWithError("rejected");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * typical_head.size()));
}

void bm_beast_parse(benchmark::State& state) {
  for (auto _ : state) {
    const bool ok = beast_parse(typical_head);
    benchmark::DoNotOptimize(ok);
    if (!ok) state.SkipWithError("beast rejected");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * typical_head.size()));
}

void bm_parse_and_validate(benchmark::State& state) {
  for (auto _ : state) {
    const bool ok = check_request_head(typical_head) == framing_error::none &&
                    beast_parse(typical_head);
    benchmark::DoNotOptimize(ok);
    if (!ok) state.SkipWithError("rejected");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * typical_head.size()));
  state.SetLabel(std::to_string(typical_head.size()) + "-byte head");
}

}  // namespace

BENCHMARK(bm_check_request_head);
BENCHMARK(bm_beast_parse);
BENCHMARK(bm_parse_and_validate)->Name("request-head parse + validation");
