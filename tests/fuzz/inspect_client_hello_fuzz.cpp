// libFuzzer target for parse_client_hello. Besides "no crash, no UB" it checks:
//  - an ok SNI is 1..255 bytes of [A-Za-z0-9._-] taken, in order, from the
//    input (a subsequence: fragmented records may split it), and non-ok
//    results carry no SNI;
//  - ech is reported only with ok or bad_sni, with ech_type one of the ECH
//    family (0xfe08..0xfe0d, 0xff02..0xff0d, 0xffce);
//  - a complete verdict's wire_size bytes alone give the same verdict;
//  - monotonic verdicts: any prefix yields need_more or the whole's verdict
//    and SNI; a smaller cap never turns a verdict into a different ok;
//  - fragmentation invariance: if data[0] is odd, data[1..] is taken as a
//    handshake message and wrapped into records in two ways (one record, and
//    fragments of sizes drawn from the data); both must agree.
#include "proxy/inspect/client_hello.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

using egressd::proxy::hello_result;
using egressd::proxy::hello_status;
using egressd::proxy::parse_client_hello;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

bool same(const hello_result& a, const hello_result& b) {
  return a.status == b.status && a.has_sni == b.has_sni && a.sni() == b.sni() && a.ech == b.ech &&
         a.ech_type == b.ech_type;
}

bool ech_family(uint16_t t) {
  return (t >= 0xfe08 && t <= 0xfe0d) || (t >= 0xff02 && t <= 0xff0d) || t == 0xffce;
}

bool sni_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '-' || c == '_';
}

void check_result(const uint8_t* data, size_t size, const hello_result& r) {
  const bool complete = r.status == hello_status::ok || r.status == hello_status::bad_sni;
  check(r.ech == (r.ech_type != 0));
  if (r.ech) check(complete && ech_family(r.ech_type));
  // The hello's own bytes give the same verdict: what follows is not its.
  if (complete) {
    check(r.wire_size > 0 && r.wire_size <= size);
    const hello_result own = parse_client_hello(data, r.wire_size, static_cast<size_t>(-1));
    check(own.status == r.status && own.sni() == r.sni() && own.wire_size == r.wire_size);
  }
  if (r.status != hello_status::ok || !r.has_sni) {
    check(!r.has_sni && r.sni().empty());
    return;
  }
  const std::string_view sni = r.sni();
  check(!sni.empty() && sni.size() <= egressd::proxy::max_sni_length);
  size_t j = 0;
  for (size_t i = 0; i < size && j < sni.size(); ++i)
    if (data[i] == static_cast<uint8_t>(sni[j])) ++j;
  check(j == sni.size());
  for (char c : sni) check(sni_char(c));
}

void check_prefixes(const uint8_t* data, size_t size, const hello_result& whole) {
  const size_t step = size <= 512 ? 1 : size / 256;
  for (size_t n = 0; n < size; n += step) {
    const hello_result p = parse_client_hello(data, n);
    if (p.status != hello_status::need_more) check(same(p, whole));
  }
  if (whole.status == hello_status::need_more) check(size < egressd::proxy::max_client_hello);
}

void append_record(std::vector<uint8_t>& out, const uint8_t* p, size_t n) {
  const uint8_t header[5] = {22, 3, 1, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  out.insert(out.end(), header, header + 5);
  out.insert(out.end(), p, p + n);
}

void check_fragmentation(const uint8_t* data, size_t size) {
  const uint8_t seed = data[0];
  const uint8_t* hs = data + 1;
  size_t n = size - 1;
  // Exactly one handshake message (when its length is known), so that the
  // last record ends with it in both framings.
  if (n >= 4) n = std::min(n, 4 + (size_t{hs[1]} << 16 | size_t{hs[2]} << 8 | hs[3]));
  if (n == 0 || n > 16 * 1024) return;
  std::vector<uint8_t> one;
  append_record(one, hs, n);
  std::vector<uint8_t> many;
  size_t k = 0;
  for (size_t pos = 0; pos < n; ++k) {
    const size_t want = 1 + (hs[k % n] ^ seed) % 97;
    const size_t len = std::min(want, n - pos);
    append_record(many, hs + pos, len);
    pos += len;
  }
  constexpr size_t no_cap = static_cast<size_t>(-1);
  const hello_result a = parse_client_hello(one.data(), one.size(), no_cap);
  const hello_result b = parse_client_hello(many.data(), many.size(), no_cap);
  check(same(a, b));
  check_result(many.data(), many.size(), b);
  check_prefixes(many.data(), many.size(), parse_client_hello(many.data(), many.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const hello_result whole = parse_client_hello(data, size);
  check_result(data, size, whole);
  check_prefixes(data, size, whole);

  const size_t small_cap = size == 0 ? 0 : size_t{data[size - 1]} * 8;
  const hello_result capped = parse_client_hello(data, size, small_cap);
  check_result(data, size, capped);
  if (capped.status == hello_status::ok) check(same(capped, whole));

  if (size >= 2 && (data[0] & 1) != 0) check_fragmentation(data, size);
  return 0;
}
