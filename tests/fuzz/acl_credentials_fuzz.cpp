// libFuzzer target: a Proxy-Authorization value from a client. Must never
// crash; an agent is found only for the exact credentials of agent "a"
// (token "t0k:en"); strict base64 decoding is canonical (what decodes
// re-encodes to the same text); authenticate() counts every failure.
#include <openssl/evp.h>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "acl/agents.hpp"
#include "acl/auth_throttle.hpp"
#include "acl/credentials.hpp"

namespace {

using namespace egressd::acl;

const agent_table& table() {
  static agent_table* t = [] {
    static const char* const defs[2][2] = {{"a", "t0k:en"}, {"b.b", "other"}};
    std::vector<agent> v;
    for (const auto& d : defs) {
      agent a;
      a.name.assign(d[0]);
      sha256(d[1], &a.digest);
      v.push_back(std::move(a));
    }
    return new agent_table(std::move(v));
  }();
  return *t;
}

// Standard base64 by OpenSSL (the oracle the strict decoder is held to).
std::string encode(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view v(reinterpret_cast<const char*>(data), size);
  std::string plain;
  if (decode_base64(v, &plain) && encode(plain) != v) std::abort();

  const agent* who = check_credentials(table(), v);
  if (who) {
    // Only these credentials name an agent (modulo scheme case and blanks).
    const bool bearer = v.find("t0k:en") != std::string_view::npos || v.find("other") != std::string_view::npos;
    const bool basic = v.find(encode("a:t0k:en")) != std::string_view::npos ||
                       v.find(encode("b.b:other")) != std::string_view::npos;
    if (!bearer && !basic) std::abort();
  }
  auth_throttle th(4);
  const auto now = auth_throttle::clock::now();
  const auth_outcome o = authenticate(auth_mode::required, table(), th, ip_address::v4(1), {1, v}, now);
  if ((o.who == nullptr) != (o.why == reason::auth_failed)) std::abort();
  if (o.who != who) std::abort();
  if (!o.who && th.tracked() != 1) std::abort();
  return 0;
}
