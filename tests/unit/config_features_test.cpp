// The table of features parsed but not implemented yet: every use of one
// is an error naming it, unless the test hook allows it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config/features.hpp"
#include "config_test_util.hpp"

namespace egressd::config {
namespace {

using ::testing::HasSubstr;
using testing::errors;
using testing::parse;

struct use_case {
  feature f;
  const char* text;  // one line using the feature (plus what it needs)
};

const use_case cases[] = {
    {feature::rule_rate, "allow x.com rate=1/s"},
    {feature::rule_burst, "allow x.com burst=3"},  // also "needs rate=": checked separately
    {feature::rule_per_client, "allow x.com per=client"},
    {feature::rule_conns, "allow x.com conns=3"},
    {feature::rule_bandwidth, "allow x.com bandwidth=1M/s"},
    {feature::client_groups, "group g 10.0.0.0/8"},
    {feature::admin, "admin 127.0.0.1:9090"},
    {feature::anomaly, "anomaly window=30s"},
    {feature::report_mode, "mode report"},
    {feature::forward, "forward 127.0.0.1:5432 db:5432"},
    {feature::upstream_proxy, "upstream_proxy http://parent:3128"},
    {feature::dns_listen, "dns_listen 127.0.0.1:53"},
    {feature::listen_sni, "listen 127.0.0.1:443 mode=sni"},
    {feature::listen_http, "listen 127.0.0.1:80 mode=http"},
    {feature::state_file, "state grants.json"},
    {feature::state_redis, "state redis://127.0.0.1:6379"},
    {feature::admin_allow, "admin 127.0.0.1:9090 allow=127.0.0.1/32"},
    {feature::admin_token, "admin 127.0.0.1:9090 token_file=token"},
};

TEST(ConfigFeatures, EveryFeatureHasACase) {
  EXPECT_EQ(std::size(cases), std::size(all_features));
  for (size_t i = 0; i < std::size(cases); ++i) EXPECT_EQ(cases[i].f, all_features[i]);
}

TEST(ConfigFeatures, UnsupportedUseIsAnErrorAtItsLine) {
  for (const auto& c : cases) {
    const std::string text = std::string("# line 1\n") + c.text;  // the use is on line 2
    const std::string want =
        std::string("t.conf:2: ") + describe(c.f) + " is not supported yet by this build";
    auto strict = parse(text, /*allow_unsupported=*/false);
    auto e = errors(strict);
    if (supported(c.f)) {
      EXPECT_THAT(e, ::testing::Not(::testing::Contains(want))) << c.text;
    } else {
      EXPECT_FALSE(strict.snap) << c.text;
      EXPECT_THAT(e, ::testing::Contains(want)) << c.text;
    }
  }
}

TEST(ConfigFeatures, TestHookParsesThem) {
  for (const auto& c : cases) {
    if (c.f == feature::rule_burst || c.f == feature::rule_per_client) continue;  // need rate=
    auto r = parse(c.text, /*allow_unsupported=*/true);
    EXPECT_THAT(errors(r), ::testing::IsEmpty()) << c.text;
  }
}

TEST(ConfigFeatures, SupportedOnesNeedNoHook) {
  auto r = parse("listen 127.0.0.1:8080 mode=proxy\nmode enforce\nallow x.com ports=443 methods=GET",
                 /*allow_unsupported=*/false);
  EXPECT_THAT(errors(r), ::testing::IsEmpty());
}

TEST(ConfigFeatures, EachUseIsReported) {
  auto r = parse("allow a.com rate=1/s conns=2\nallow b.com rate=2/s", false);
  auto e = errors(r);
  if (!supported(feature::rule_rate) && !supported(feature::rule_conns)) {
    EXPECT_THAT(e, ::testing::ElementsAre(HasSubstr("t.conf:1: allow option rate="),
                                          HasSubstr("t.conf:1: allow option conns="),
                                          HasSubstr("t.conf:2: allow option rate=")));
  }
}

TEST(ConfigFeatures, Describe) {
  EXPECT_STREQ(describe(feature::listen_sni), "listen mode=sni");
  EXPECT_STREQ(describe(feature::rule_rate), "allow option rate=");
}

}  // namespace
}  // namespace egressd::config
