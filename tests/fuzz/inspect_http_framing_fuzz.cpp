// libFuzzer target for check_request_head. Besides "no crash, no UB" it checks
// that an accepted head has the shape the checker promises (CRLF lines only,
// no control bytes, no folding, the blank line last, no proper prefix
// accepted), and, differentially, that Beast 1.74's request parser (which
// egressd uses after the check) agrees on the body framing of every head
// both accept: chunked exactly when a Transfer-Encoding line is present, and
// the same Content-Length otherwise.
#include <utility>  // before Boost (GCC 12)

#include "proxy/inspect/http_framing.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstdlib>
#include <optional>
#include <string_view>

using egressd::proxy::check_request_head;
using egressd::proxy::framing_error;
namespace http = boost::beast::http;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower_b[i]) return false;
  return true;
}

struct framing_fields {
  bool te = false;
  std::optional<uint64_t> cl;
};

// Independent, naive reading of an accepted head's framing fields.
framing_fields read_fields(std::string_view head) {
  framing_fields f;
  size_t pos = head.find("\r\n") + 2;
  for (;;) {
    const size_t end = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, end - pos);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (iequals(name, "transfer-encoding")) f.te = true;
    if (iequals(name, "content-length")) {
      uint64_t n = 0;
      for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');
      f.cl = n;
    }
    pos = end + 2;
  }
  return f;
}

void check_accepted(std::string_view head) {
  check(head.size() >= 4 && head.substr(head.size() - 4) == "\r\n\r\n");
  check(head.find("\r\n\r\n") == head.size() - 4);
  for (size_t i = 0; i < head.size(); ++i) {
    const auto c = static_cast<unsigned char>(head[i]);
    check(c != 0 && c != 0x7f && (c >= 0x20 || c == '\t' || c == '\r' || c == '\n'));
    if (c == '\r') check(head[i + 1] == '\n');
    if (c == '\n') check(i > 0 && head[i - 1] == '\r');
  }
  check(head.find("\r\n ") == std::string_view::npos);
  check(head.find("\r\n\t") == std::string_view::npos);
  for (size_t n = head.size() > 64 ? head.size() - 64 : 0; n < head.size(); ++n)
    check(check_request_head(head.substr(0, n)) != framing_error::none);

  const framing_fields ours = read_fields(head);
  check(!(ours.te && ours.cl));

  http::request_parser<http::empty_body> parser;
  parser.header_limit(1 << 20);
  parser.body_limit(UINT64_MAX);
  parser.eager(false);
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(head.data(), head.size()), ec);
  if (ec || !parser.is_header_done()) return;  // Beast stricter here: a 400 anyway
  check(used == head.size());
  check(parser.chunked() == ours.te);
  if (!ours.te) {
    const boost::optional<uint64_t> beast_cl = parser.content_length();
    check(beast_cl.has_value() == ours.cl.has_value());
    if (ours.cl) check(*beast_cl == *ours.cl);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  const framing_error e = check_request_head(head);
  check(std::string_view(to_string(e)) != "unknown");
  if (e == framing_error::none) check_accepted(head);
  return 0;
}
