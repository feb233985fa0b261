// tools/squid_patterns: dstdomain values and dstdom_regex expressions become
// egressd patterns with the same meaning. The regex table is checked
// differentially: glibc's POSIX regexec (Squid's matcher: search semantics)
// against RE2 full-matching the converted pattern on the lower-case name.
#include <gtest/gtest.h>
#include <re2/re2.h>
#include <regex.h>

#include <string>
#include <vector>

#include "tools/squid_patterns.hpp"

namespace egressd::tools {
namespace {

TEST(tools_squid_patterns, dstdomain) {
  struct { const char* in; const char* pattern; bool ip; } cases[] = {
      {".github.com", ".github.com", false},
      {"api.anthropic.com", "api.anthropic.com", false},
      {"PyPI.org", "pypi.org", false},
      {"example.com.", "example.com", false},
      {".Example.COM", ".example.com", false},
      {"xn--bcher-kva.de", "xn--bcher-kva.de", false},
      {"10.1.2.3", "", true},
      {"[2001:db8::1]", "", true},
      {"*.github.com", "", false},
      {"bücher.de", "", false},
      {"a..b", "", false},
      {"", "", false},
  };
  for (const auto& c : cases) {
    auto r = convert_dstdomain(c.in);
    EXPECT_EQ(r.pattern, c.pattern) << c.in;
    EXPECT_EQ(r.ip.has_value(), c.ip) << c.in;
    if (r.pattern.empty() && !c.ip) {
      EXPECT_FALSE(r.why.empty()) << c.in;
    }
  }
}

TEST(tools_squid_patterns, regex_forms) {
  struct { const char* in; bool icase; const char* pattern; } cases[] = {
      {"^api\\.example\\.com$", false, "~api\\.example\\.com"},
      {"\\.example\\.com$", false, "~.*\\.example\\.com"},
      {"^pastebin\\.", true, "~(?i)pastebin\\..*"},
      {"example", false, "~.*example.*"},
      {"^a|b$", false, "~.*(?:^a|b$).*"},
      {"^(a|b)\\.com$", false, "~(a|b)\\.com"},
      {"\\$$", false, "~.*\\$"},
      {"foo\\$", false, "~.*foo\\$.*"},
  };
  for (const auto& c : cases) EXPECT_EQ(convert_dstdom_regex(c.in, c.icase).pattern, c.pattern) << c.in;
}

TEST(tools_squid_patterns, regex_not_convertible) {
  for (const char* re : {"\\<word\\>", "(", "foo\\", "", "a{2,1}", "\\d+\\.com", "x[\\d]", "(a)\\1", "a\\'"}) {
    auto r = convert_dstdom_regex(re, false);
    EXPECT_EQ(r.pattern, "") << re;
    EXPECT_FALSE(r.why.empty()) << re;
  }
  EXPECT_FALSE(convert_dstdom_regex("Example", false).note.empty());
  EXPECT_TRUE(convert_dstdom_regex("Example", true).note.empty());
  EXPECT_TRUE(convert_dstdom_regex("\\Sexample[[:UPPER:]]", false).note.empty());
}

// Squid (POSIX ERE, search) and egressd (RE2, full match of the converted
// pattern) agree on every name.
TEST(tools_squid_patterns, regex_same_matches_as_posix) {
  const char* regexes[] = {"^api\\.example\\.com$", "\\.example\\.com$", "^pastebin\\.", "example",
                           "^a|b$",  "^(www|api)\\.github\\.com$", "[0-9]+\\.cdn\\.net$", "^objects[0-9]*\\.",
                           "^$",     "^",  "com$", "^x.*y$", "(foo|bar)", "^[^.]+\\.internal$", "Example"};
  const char* names[] = {"api.example.com", "x.api.example.com", "example.com", "www.example.com.evil.net",
                         "pastebin.com",    "notpastebin.com",   "a",           "b",
                         "ab.org",          "www.github.com",    "api.github.com", "github.com",
                         "12.cdn.net",      "cdn.net",           "objects.githubusercontent.com",
                         "objects1.x",      "xay",               "x.y",         "foo.bar",
                         "host.internal",   "a.b.internal",      "example",     "comx"};
  for (const char* re : regexes) {
    for (bool icase : {false, true}) {
      auto conv = convert_dstdom_regex(re, icase);
      ASSERT_FALSE(conv.pattern.empty()) << re << " " << conv.why;
      RE2 egress(conv.pattern.substr(1));
      ASSERT_TRUE(egress.ok()) << conv.pattern;
      regex_t posix;
      ASSERT_EQ(regcomp(&posix, re, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0)), 0) << re;
      for (const char* n : names) {
        bool squid = regexec(&posix, n, 0, nullptr, 0) == 0;
        EXPECT_EQ(RE2::FullMatch(n, egress), squid) << re << (icase ? " -i" : "") << " on " << n;
      }
      regfree(&posix);
    }
  }
}

}  // namespace
}  // namespace egressd::tools
