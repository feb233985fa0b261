// libFuzzer target for parse_server_first and scan_client_records. Besides
// "no crash, no UB" it checks monotonic verdicts: a prefix yields need_more
// or the whole's verdict (server side); on the client side a handshake or
// not_tls finding on a prefix stands for the whole, at the same offset, and
// a clean prefix never ends past the whole's clean end.
#include "proxy/inspect/first_flight.hpp"

#include <cstdlib>

using egressd::proxy::parse_server_first;
using egressd::proxy::record_scan;
using egressd::proxy::scan_client_records;
using egressd::proxy::server_first;

namespace {
void check(bool cond) {
  if (!cond) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const server_first whole = parse_server_first(data, size);
  const record_scan all = scan_client_records(data, size);
  check(all.at <= size);
  const size_t step = size <= 512 ? 1 : size / 256;
  for (size_t n = 0; n < size; n += step) {
    const server_first p = parse_server_first(data, n);
    if (p != server_first::need_more) check(p == whole);
    const record_scan c = scan_client_records(data, n);
    check(c.at <= n);
    if (c.what != record_scan::kind::clean) {
      check(c.what == all.what && c.at == all.at);
    } else if (all.what == record_scan::kind::clean) {
      check(c.at <= all.at);
    }
  }
  if (whole == server_first::need_more) check(size < 6 * 38);
  return 0;
}
