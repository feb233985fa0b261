// Fuzzes the IP-literal parsers and the address classifier, checking
// invariants: a literal always looks like one, to_string round-trips through
// the strict parser, strict is a subset of literal, CIDR text round-trips.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "acl/address_class.hpp"
#include "acl/ip_address.hpp"

using namespace egressd::acl;

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) std::abort(); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);

  const auto lit = parse_ip_literal(s);
  const bool looks = looks_like_ip_literal(s);
  if (lit) {
    FUZZ_CHECK(looks);
    const std::string text = lit->to_string();
    const auto strict = parse_ip_strict(text);
    FUZZ_CHECK(strict && *strict == *lit);
    const auto again = parse_ip_literal(text);
    FUZZ_CHECK(again && *again == *lit);
    if (lit->is_v4()) {
      for (size_t i = 4; i < 16; ++i) FUZZ_CHECK(lit->bytes[i] == 0);
      FUZZ_CHECK(ip_address::v4(lit->v4_host_order()) == *lit);
    }
    const address_class c = classify(*lit);
    FUZZ_CHECK(classify(lit->unmapped()) == c);
    FUZZ_CHECK(to_string(c) != nullptr);
    FUZZ_CHECK(lit->unmapped().unmapped() == lit->unmapped());
  }

  const auto strict = parse_ip_strict(s);
  if (strict) FUZZ_CHECK(lit && *lit == *strict);

  if (const auto n = parse_cidr(s)) {
    FUZZ_CHECK(n->prefix <= (n->network.is_v4() ? 32 : 128));
    FUZZ_CHECK(n->contains(n->network));
    const auto back = parse_cidr(n->to_string());
    FUZZ_CHECK(back && back->network == n->network && back->prefix == n->prefix);
    if (lit) (void)n->contains(*lit);
  }
  return 0;
}
