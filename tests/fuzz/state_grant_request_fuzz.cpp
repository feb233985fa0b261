// Fuzzes the POST /v1/grants body validator and the state-file form.
// Invariants: an accepted request has a valid pattern, ports in 1..65535
// (sorted, unique, never empty), at most one scope, a ttl in (0, 720h], a
// bounded one-line note; a refused one has a one-line error. An accepted
// grant survives the state-file round trip unchanged and compiles into a
// view that matches without crashing.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "acl/pattern.hpp"
#include "state/grant.hpp"
#include "state/grant_view.hpp"

using namespace egressd;

#define FUZZ_CHECK(cond)         \
  do {                           \
    if (!(cond)) std::abort();   \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto now = state::clock::time_point{} + std::chrono::hours(24 * 20000);
  std::string err;
  auto g = state::parse_grant_request(body, now, &err);
  if (!g) {
    FUZZ_CHECK(!err.empty() && err.find('\n') == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(acl::parse_pattern(g->pattern, nullptr).has_value());
  FUZZ_CHECK(!g->ports.empty() && g->ports.size() <= state::max_ports);
  for (size_t i = 0; i < g->ports.size(); ++i) {
    FUZZ_CHECK(g->ports[i] >= 1);
    if (i) FUZZ_CHECK(g->ports[i - 1] < g->ports[i]);
  }
  FUZZ_CHECK(g->agent.empty() || g->group.empty());
  FUZZ_CHECK(g->agent.empty() || state::valid_scope_name(g->agent));
  FUZZ_CHECK(g->group.empty() || state::valid_scope_name(g->group));
  FUZZ_CHECK(g->expires > g->created && g->expires - g->created <= state::max_ttl);
  FUZZ_CHECK(g->note.size() <= state::max_note_bytes && g->note.find('\n') == std::string::npos);

  g->id = "0123456789ab";
  const auto text = state::to_file_json(*g).dump();
  auto back = state::grant_from_file_json(nlohmann::json::parse(text), &err);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(back->pattern == g->pattern && back->ports == g->ports && back->agent == g->agent &&
             back->group == g->group && back->note == g->note && back->expires == g->expires &&
             back->created == g->created);

  auto view = state::grant_view::build({*g});
  const acl::client_id who{acl::ip_address::v4(0x0a000001), g->agent, nullptr};
  for (std::string_view name : {std::string_view("example.com"), std::string_view("a.b.example.org")})
    (void)view->match(name, g->ports.front(), who, {}, now);
  const auto p = acl::parse_pattern(g->pattern, nullptr);
  if (p && p->kind == acl::pattern_kind::exact && g->group.empty())  // the group is unknown here
    FUZZ_CHECK(view->match(p->text, g->ports.front(), who, {}, now) != nullptr);
  FUZZ_CHECK(view->match("example.com", g->ports.front(), who, {}, g->expires) == nullptr);
  return 0;
}
