// Tables of host normalisation and pattern syntax cases.

#include "acl/pattern.hpp"

#include <gtest/gtest.h>

#include <string>

namespace egressd::acl {
namespace {

TEST(AclPattern, NormalizeHost) {
  struct {
    std::string in;
    const char* out;  // nullptr = invalid
  } cases[] = {
      {"api.example.com", "api.example.com"},
      {"API.Example.COM", "api.example.com"},
      {"api.example.com.", "api.example.com"},
      {"api.example.com..", nullptr},
      {".", nullptr},
      {"", nullptr},
      {".example.com", nullptr},
      {"a..b", nullptr},
      {"under_score.example", "under_score.example"},
      {"xn--bcher-kva.example", "xn--bcher-kva.example"},
      {"b\xc3\xbc" "cher.example", nullptr},
      {"*.example.com", nullptr},
      {"exa mple.com", nullptr},
      {"example.com:443", nullptr},
      {"user@example.com", nullptr},
      {"localhost", "localhost"},
      {"1.2.3.4", "1.2.3.4"},  // a valid name shape; IP literals are the caller's check
      {std::string("exa\0mple.com", 12), nullptr},
      {"Exa\tmple.com", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.in);
    auto n = normalize_host(c.in);
    if (c.out) {
      ASSERT_TRUE(n);
      EXPECT_EQ(*n, c.out);
    } else {
      EXPECT_FALSE(n) << *n;
    }
    host_buffer buf;
    auto v = normalize_host(c.in, buf);
    EXPECT_EQ(v.has_value(), n.has_value());
    if (v && n) {
      EXPECT_EQ(*v, *n);
    }
  }
}

TEST(AclPattern, NormalizeHostLengths) {
  const std::string l63(63, 'a'), l64(64, 'a');
  EXPECT_TRUE(normalize_host(l63 + ".com"));
  EXPECT_FALSE(normalize_host(l64 + ".com"));
  EXPECT_FALSE(normalize_host("com." + l64));
  // 4 labels of 63 + 3 dots = 255 (too long); trim to exactly 253 and 254.
  std::string n253 = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  ASSERT_EQ(n253.size(), 253u);
  EXPECT_TRUE(normalize_host(n253));
  EXPECT_TRUE(normalize_host(n253 + "."));  // the trailing dot does not count
  std::string n254 = n253.substr(0, 252) + "bb";
  ASSERT_EQ(n254.size(), 254u);
  EXPECT_FALSE(normalize_host(n254));
  EXPECT_FALSE(normalize_host(std::string(10000, 'a')));
}

TEST(AclPattern, ParseValid) {
  struct {
    const char* in;
    pattern_kind kind;
    const char* text;
  } cases[] = {
      {"api.example.com", pattern_kind::exact, "api.example.com"},
      {"API.Example.com.", pattern_kind::exact, "api.example.com"},
      {".example.com", pattern_kind::suffix, "example.com"},
      {".Example.COM.", pattern_kind::suffix, "example.com"},
      {"*.example.com", pattern_kind::wildcard, "example.com"},
      {"*.EXAMPLE.com.", pattern_kind::wildcard, "example.com"},
      {".com", pattern_kind::suffix, "com"},
      {"localhost", pattern_kind::exact, "localhost"},
      {"~^api[0-9]+\\.example\\.com$", pattern_kind::regex, "^api[0-9]+\\.example\\.com$"},
      {"~.*\\.Example\\.com", pattern_kind::regex, ".*\\.Example\\.com"},  // verbatim
      {"~(", pattern_kind::regex, "("},  // regex syntax is policy::build's job
      {"host.docker.internal", pattern_kind::exact, "host.docker.internal"},
      {"_acme-challenge.example.com", pattern_kind::exact, "_acme-challenge.example.com"},
  };
  for (const auto& c : cases) {
    std::string err;
    auto p = parse_pattern(c.in, &err);
    ASSERT_TRUE(p) << c.in << ": " << err;
    EXPECT_EQ(p->kind, c.kind) << c.in;
    EXPECT_EQ(p->text, c.text) << c.in;
  }
}

TEST(AclPattern, ParseInvalid) {
  struct {
    const char* in;
    const char* error_has;
  } cases[] = {
      {"", "empty"},
      {"~", "empty regular expression"},
      {"*", "'*' is only allowed as a leading '*.'"},
      {"*.", "no domain"},
      {".", "no domain"},
      {"..example.com", "empty label"},
      {"*..example.com", "empty label"},
      {"example.com..", "empty label"},
      {"a..b", "empty label"},
      {"api.*.example.com", "'*' is only allowed as a leading '*.'"},
      {"*example.com", "'*' is only allowed as a leading '*.'"},
      {"api*.example.com", "'*' is only allowed as a leading '*.'"},
      {"*.*.example.com", "'*' is only allowed as a leading '*.'"},
      {".*.example.com", "'*' is only allowed as a leading '*.'"},
      {"example.*", "'*' is only allowed as a leading '*.'"},
      {"b\xc3\xbc" "cher.example", "punycode"},
      {".b\xc3\xbc" "cher.example", "punycode"},
      {"~b\xc3\xbc" "cher", "punycode"},
      {"exa mple.com", "invalid character ' '"},
      {"example.com/path", "invalid character '/'"},
      {"example.com:443", "invalid character ':'"},
      {"1.2.3.4", "allow_net"},
      {"2130706433", "allow_net"},
      {"10.1", "allow_net"},
  };
  for (const auto& c : cases) {
    std::string err;
    auto p = parse_pattern(c.in, &err);
    EXPECT_FALSE(p) << c.in;
    EXPECT_NE(err.find(c.error_has), std::string::npos) << c.in << ": " << err;
  }
  std::string long_label = "a" + std::string(63, 'b') + ".com";
  std::string err;
  EXPECT_FALSE(parse_pattern(long_label, &err));
  EXPECT_NE(err.find("63"), std::string::npos) << err;
  EXPECT_FALSE(parse_pattern(std::string(254, 'a'), &err));
  EXPECT_FALSE(parse_pattern("bad pattern", nullptr));  // error pointer optional
}

}  // namespace
}  // namespace egressd::acl
