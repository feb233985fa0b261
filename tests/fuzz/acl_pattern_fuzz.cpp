// Fuzzes host normalisation, pattern parsing and policy::decide on a small
// fixed policy. Invariants: normalisation is idempotent, parsed patterns
// round-trip, decisions ignore case and one trailing dot, deny always wins.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "acl/pattern.hpp"
#include "acl/policy.hpp"

using namespace egressd::acl;

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) std::abort(); \
  } while (0)

namespace {

rule make_rule(rule::action_t a, const char* pattern, std::vector<uint16_t> ports,
               std::vector<std::string> methods = {}, std::string group = {}) {
  rule r;
  r.action = a;
  r.pattern = pattern;
  r.ports = std::move(ports);
  r.methods = std::move(methods);
  r.group = std::move(group);
  return r;
}

const policy& small_policy() {
  static const std::unique_ptr<policy> p = [] {
    using act = rule::action_t;
    std::vector<rule> rules = {
        make_rule(act::allow, "api.example.com", {443}, {"GET"}),
        make_rule(act::allow, ".example.com", {80, 443}),
        make_rule(act::allow, "*.wild.test", {443}),
        make_rule(act::allow, "~[a-z]+[0-9]+\\.regex\\.test", {443}),
        make_rule(act::allow, ".grp.test", {443}, {}, "ci"),
        make_rule(act::deny, ".denied.example.com", {}),
        make_rule(act::deny, "~.*evil.*", {}),
    };
    std::vector<client_group> groups = {{"ci", {*parse_cidr("10.0.0.0/8")}}};
    return policy::build(std::move(rules), {}, std::move(groups), nullptr);
  }();
  return *p;
}

bool same(const decision& a, const decision& b) {
  return a.allowed == b.allowed && a.why == b.why && a.rule_index == b.rule_index &&
         a.matched == b.matched;
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return u;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);

  std::string err;
  if (const auto p = parse_pattern(s, &err)) {
    if (p->kind != pattern_kind::regex) {
      const auto n = normalize_host(p->text);
      FUZZ_CHECK(n && *n == p->text);
      const std::string prefix = p->kind == pattern_kind::exact    ? ""
                                 : p->kind == pattern_kind::suffix ? "."
                                                                   : "*.";
      const auto again = parse_pattern(prefix + p->text, nullptr);
      FUZZ_CHECK(again && again->kind == p->kind && again->text == p->text);
    }
  } else {
    FUZZ_CHECK(!err.empty());
  }

  const auto n = normalize_host(s);
  host_buffer buf;
  const auto v = normalize_host(s, buf);
  FUZZ_CHECK(n.has_value() == v.has_value());
  if (n) {
    FUZZ_CHECK(*n == *v);
    FUZZ_CHECK(!n->empty() && n->size() <= 253);
    const auto twice = normalize_host(*n);
    FUZZ_CHECK(twice && *twice == *n);
  }

  const policy& pol = small_policy();
  const ip_address client = ip_address::v4(0x0a000001);
  for (uint16_t port : {uint16_t{80}, uint16_t{443}}) {
    for (std::string_view method : {std::string_view{}, std::string_view{"GET"}}) {
      const decision d = pol.decide(s, port, method, client);
      FUZZ_CHECK(d.allowed == (d.why == reason::none));
      if (d.rule_index >= 0) {
        FUZZ_CHECK(static_cast<size_t>(d.rule_index) < pol.rules().size());
        FUZZ_CHECK(d.matched == &pol.rules()[static_cast<size_t>(d.rule_index)]);
        FUZZ_CHECK((d.matched->action == rule::action_t::allow) == d.allowed);
      } else {
        FUZZ_CHECK(!d.allowed && d.matched == nullptr);
      }
      if (n && n->find("evil") != std::string::npos) FUZZ_CHECK(d.why == reason::denied_rule);
      FUZZ_CHECK(same(d, pol.decide(upper(s), port, method, client)));
      if (n && s.back() != '.') {
        FUZZ_CHECK(same(d, pol.decide(std::string(s) + ".", port, method, client)));
      }
    }
  }
  return 0;
}
