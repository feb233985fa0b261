// The line grammar and the server directives: listen, admin, dns_listen,
// forward, upstream_proxy, threads, resolver, hosts, access_log, timeout,
// limit, tls_ports, require_sni, mode; errors with their line numbers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config_test_util.hpp"

namespace egressd::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::errors;
using testing::ok;
using testing::one_error;
using testing::parse;

TEST(ConfigParser, CommentsBlankLinesWhitespace) {
  auto s = ok("# comment\n\n   \t\n  threads 4   # trailing comment\r\n#\n\t#x\nallow a.com\t#c");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->threads, 4u);
  EXPECT_EQ(s->policy->rules().size(), 1u);
  // A BOM at the start of the file is skipped.
  s = ok("\xEF\xBB\xBFthreads 2");
  EXPECT_EQ(s->threads, 2u);
  // Tabs separate words; CRLF endings are fine.
  s = ok("threads\t3\r\nrequire_sni\toff\r\n");
  EXPECT_EQ(s->threads, 3u);
  EXPECT_FALSE(s->require_sni);
}

TEST(ConfigParser, Defaults) {
  auto s = ok("");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->threads, 0u);
  EXPECT_TRUE(s->resolvers.empty());
  EXPECT_EQ(s->hosts_file, "/etc/hosts");
  EXPECT_EQ(s->access_log, "stdout");
  EXPECT_EQ(s->timeout.connect.count(), 10'000);
  EXPECT_EQ(s->timeout.idle.count(), 300'000);
  EXPECT_EQ(s->timeout.header.count(), 30'000);
  EXPECT_EQ(s->timeout.drain.count(), 30'000);
  EXPECT_EQ(s->timeout.dns.count(), 5'000);
  EXPECT_EQ(s->limit.max_conns, 10'000u);
  EXPECT_EQ(s->limit.header_bytes, 65536u);
  EXPECT_EQ(s->limit.max_clients, 4096u);
  EXPECT_EQ(s->tls_ports, std::vector<uint16_t>{443});
  EXPECT_TRUE(s->is_tls_port(443));
  EXPECT_FALSE(s->is_tls_port(80));
  EXPECT_TRUE(s->require_sni);
  EXPECT_FALSE(s->admin);
  EXPECT_FALSE(s->upstream_proxy);
  EXPECT_FALSE(s->report_mode);
  ASSERT_TRUE(s->policy);
  EXPECT_TRUE(s->policy->rules().empty());
  EXPECT_EQ(s->files, std::vector<std::string>{"t.conf"});
}

TEST(ConfigParser, UnknownDirectiveSuggests) {
  EXPECT_EQ(one_error("alow example.com"), "t.conf:1: unknown directive 'alow' (did you mean allow?)");
  EXPECT_EQ(one_error("\nlisten_on 1.2.3.4:1"),
            "t.conf:2: unknown directive 'listen_on' (did you mean listen?)");
  EXPECT_THAT(one_error("frobnicate yes"), HasSubstr("t.conf:1: unknown directive 'frobnicate' ("));
  EXPECT_THAT(one_error("Allow x.com"), HasSubstr("(did you mean allow?)"));
}

TEST(ConfigParser, HashInsideAWordIsNotAComment) {
  // A regex keeps its '#'; elsewhere a glued '#' makes the word invalid
  // rather than silently cutting it short.
  auto s = ok("allow ~^a#b\\.example\\.com$");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->policy->rules().front().pattern, "~^a#b\\.example\\.com$");
  EXPECT_THAT(one_error("threads 4#four"), HasSubstr("t.conf:1: invalid threads '4#four'"));
  EXPECT_THAT(one_error("allow x.com#comment"), HasSubstr("t.conf:1: invalid pattern 'x.com#comment'"));
}

TEST(ConfigParser, ControlCharacter) {
  EXPECT_EQ(one_error("threads 2\nthreads\x01 3"),
            "t.conf:2: control character 0x01 in the line (is this a text file?)");
}

TEST(ConfigParser, CollectsEveryErrorInLineOrder) {
  auto r = parse(
      "threads zero\n"                 // 1
      "allow ok.example.com\n"         // 2
      "allow bad..name\n"              // 3
      "bogus\n"                        // 4
      "allow x.com port=443 foo=1\n"   // 5
      "timeout connect=1 idle=2\n");   // 6
  EXPECT_FALSE(r.snap);
  auto e = errors(r);
  ASSERT_EQ(e.size(), 7u) << ::testing::PrintToString(e);
  EXPECT_THAT(e[0], HasSubstr("t.conf:1: invalid threads 'zero'"));
  EXPECT_THAT(e[1], HasSubstr("t.conf:3: invalid pattern 'bad..name'"));
  EXPECT_THAT(e[2], HasSubstr("t.conf:4: unknown directive 'bogus'"));
  EXPECT_EQ(e[3], "t.conf:5: unknown option 'port=' for allow (did you mean ports=?)");
  EXPECT_THAT(e[4], HasSubstr("t.conf:5: unknown option 'foo=' for allow (options: ports= methods="));
  EXPECT_THAT(e[5], HasSubstr("t.conf:6: invalid duration '1' for timeout connect="));
  EXPECT_THAT(e[6], HasSubstr("t.conf:6: invalid duration '2' for timeout idle="));
}

TEST(ConfigParser, NothingToServe) {
  load_options o;
  o.file_access = false;
  auto r = load_string("allow x.com\n", "n.conf", o);
  EXPECT_THAT(errors(r), ElementsAre("n.conf: nothing to serve: add a listen line (e.g. listen 127.0.0.1:3128)"));
}

TEST(ConfigParser, Listen) {
  auto s = ok("listen 0.0.0.0:3128\nlisten [::1]:8080 mode=proxy\nlisten 10.0.0.1:443 mode=sni port=8443\n"
              "listen 10.0.0.1:80 mode=http\nlisten 127.0.0.1:0\nlisten 127.0.0.1:0");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->listens.size(), 7u);  // + the helper's
  EXPECT_EQ(s->listens[0].addr.to_string(), "0.0.0.0:3128");
  EXPECT_EQ(s->listens[0].mode, listen_mode::proxy);
  EXPECT_EQ(s->listens[0].line, 1);
  EXPECT_EQ(s->listens[0].file, "t.conf");
  EXPECT_EQ(s->listens[1].addr.host, "::1");
  EXPECT_EQ(s->listens[2].mode, listen_mode::sni);
  EXPECT_EQ(s->listens[2].upstream_port, 8443);
  EXPECT_EQ(s->listens[3].mode, listen_mode::http);
  EXPECT_EQ(s->listens[3].upstream_port, 0);
  EXPECT_STREQ(to_string(listen_mode::sni), "sni");
}

TEST(ConfigParser, ListenErrors) {
  EXPECT_EQ(one_error("listen localhost:3128"),
            "t.conf:1: invalid address 'localhost:3128' for listen (write IP:PORT, e.g. 127.0.0.1:3128 "
            "or [::1]:3128)");
  EXPECT_THAT(one_error("listen 3128"), HasSubstr("t.conf:1: invalid address '3128'"));
  EXPECT_THAT(one_error("listen 1.2.3.4:65536"), HasSubstr("invalid address"));
  EXPECT_THAT(one_error("listen"), HasSubstr("t.conf:1: listen needs an argument (usage: listen ADDR:PORT"));
  EXPECT_THAT(one_error("listen 1.2.3.4:1 1.2.3.4:2"), HasSubstr("unexpected '1.2.3.4:2' after listen"));
  EXPECT_EQ(one_error("listen 1.2.3.4:1 mode=tproxy"),
            "t.conf:1: invalid mode= 'tproxy' for listen (use proxy, sni or http)");
  EXPECT_EQ(one_error("listen 1.2.3.4:1 port=80"),
            "t.conf:1: port= applies only to transparent listeners (mode=sni or mode=http)");
  EXPECT_THAT(one_error("listen 1.2.3.4:1 mode=sni port=0"), HasSubstr("invalid port= '0'"));
  EXPECT_EQ(one_error("listen 1.2.3.4:1 mode=sni mode=http"), "t.conf:1: mode= given twice on one line");
  EXPECT_EQ(one_error("listen 1.2.3.4:1 mode="), "t.conf:1: mode= needs a value");
}

TEST(ConfigParser, ListenOverlaps) {
  EXPECT_EQ(one_error("listen 127.0.0.1:3128\n\nlisten 127.0.0.1:3128"),
            "t.conf:3: listen 127.0.0.1:3128 overlaps listen 127.0.0.1:3128 at t.conf:1 (use another "
            "port or address)");
  EXPECT_THAT(one_error("listen 0.0.0.0:3128\nlisten 10.1.1.1:3128"),
              HasSubstr("t.conf:2: listen 10.1.1.1:3128 overlaps listen 0.0.0.0:3128 at t.conf:1"));
  EXPECT_THAT(one_error("listen 10.1.1.1:3128\nlisten [::]:3128"), HasSubstr("t.conf:2:"));
  EXPECT_THAT(one_error("listen [::1]:3128\nadmin [::1]:3128"), HasSubstr("t.conf:2: admin [::1]:3128 overlaps"));
  EXPECT_THAT(one_error("admin 127.0.0.1:9090\nforward 127.0.0.1:9090 db:5432"),
              HasSubstr("t.conf:2: forward 127.0.0.1:9090 overlaps admin"));
  // Different ports, v4 wildcard vs v6 address, TCP vs UDP: no overlap.
  ok("listen 0.0.0.0:3128\nlisten 0.0.0.0:3129\nlisten [::1]:3128\ndns_listen 0.0.0.0:3128 answer=10.0.0.1");
}

TEST(ConfigParser, Admin) {
  auto s = ok("admin 127.0.0.1:9090");
  ASSERT_TRUE(s && s->admin);
  EXPECT_EQ(s->admin->to_string(), "127.0.0.1:9090");
  EXPECT_EQ(one_error("admin 127.0.0.1:9090\nadmin 127.0.0.1:9091"),
            "t.conf:2: admin given twice (first at t.conf:1)");
  EXPECT_THAT(one_error("admin :9090"), HasSubstr("invalid address ':9090' for admin"));
}

TEST(ConfigParser, DnsListen) {
  auto s = ok("dns_listen 10.0.0.2:53\ndns_listen 0.0.0.0:5353 answer=10.0.0.3");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->dns_listens.size(), 2u);
  EXPECT_EQ(s->dns_listens[0].answer.to_string(), "10.0.0.2");
  EXPECT_EQ(s->dns_listens[1].answer.to_string(), "10.0.0.3");
  EXPECT_EQ(s->dns_listens[1].line, 2);
  EXPECT_EQ(one_error("dns_listen 0.0.0.0:53"),
            "t.conf:1: dns_listen on 0.0.0.0:53 needs answer=IPv4 (the address agents should connect to)");
  EXPECT_THAT(one_error("dns_listen [::1]:53"), HasSubstr("needs answer=IPv4"));
  EXPECT_THAT(one_error("dns_listen 10.0.0.2:53 answer=fd00::1"), HasSubstr("invalid answer= 'fd00::1'"));
  EXPECT_THAT(one_error("dns_listen 10.0.0.2:53\ndns_listen 0.0.0.0:53 answer=1.2.3.4"),
              HasSubstr("t.conf:2: dns_listen 0.0.0.0:53 overlaps dns_listen 10.0.0.2:53 at t.conf:1"));
  EXPECT_THAT(one_error("dns_listen 10.0.0.2:53 ttl=5"), HasSubstr("unknown option 'ttl=' for dns_listen"));
}

TEST(ConfigParser, Forward) {
  auto s = ok("forward 0.0.0.0:5432 host.docker.internal:5432\nforward 127.0.0.1:6379 [fd00::7]:6379");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->forwards.size(), 2u);
  EXPECT_EQ(s->forwards[0].listen.to_string(), "0.0.0.0:5432");
  EXPECT_EQ(s->forwards[0].target.to_string(), "host.docker.internal:5432");
  EXPECT_EQ(s->forwards[1].target.to_string(), "[fd00::7]:6379");
  EXPECT_THAT(one_error("forward 0.0.0.0:5432"), HasSubstr("forward needs more arguments"));
  EXPECT_THAT(one_error("forward 0.0.0.0:5432 db"), HasSubstr("t.conf:1: invalid forward target 'db'"));
  EXPECT_THAT(one_error("forward 0.0.0.0:5432 db:0"), HasSubstr("invalid forward target"));
  // A forward alone is something to serve.
  load_options o;
  o.allow_unsupported = true;
  o.file_access = false;
  EXPECT_TRUE(load_string("forward 0.0.0.0:5432 db:5432", "f.conf", o).snap);
}

TEST(ConfigParser, UpstreamProxy) {
  auto s = ok("upstream_proxy http://Squid.Internal:3128/");
  ASSERT_TRUE(s && s->upstream_proxy);
  EXPECT_EQ(s->upstream_proxy->to_string(), "squid.internal:3128");
  EXPECT_THAT(one_error("upstream_proxy https://p:3128"), HasSubstr("must start with http://"));
  EXPECT_THAT(one_error("upstream_proxy http://u:pw@p:3128"), HasSubstr("credentials"));
  EXPECT_THAT(one_error("upstream_proxy http://p"), HasSubstr("invalid upstream_proxy 'http://p'"));
  EXPECT_EQ(one_error("upstream_proxy http://a:1\nupstream_proxy http://b:1"),
            "t.conf:2: upstream_proxy given twice (first at t.conf:1)");
}

TEST(ConfigParser, Threads) {
  EXPECT_EQ(ok("threads auto")->threads, 0u);
  EXPECT_EQ(ok("threads 16")->threads, 16u);
  EXPECT_EQ(ok("threads 1024")->threads, 1024u);
  for (const char* bad : {"threads 0", "threads 1025", "threads -1", "threads many",
                          "threads 99999999999999999999"})
    EXPECT_THAT(one_error(bad), HasSubstr("t.conf:1: invalid threads")) << bad;
  EXPECT_EQ(one_error("threads 2\nthreads auto"), "t.conf:2: threads given twice (first at t.conf:1)");
  EXPECT_THAT(one_error("threads"), HasSubstr("threads needs an argument"));
}

TEST(ConfigParser, Resolver) {
  auto s = ok("resolver 10.0.0.2 10.0.0.3:5353\nresolver [fd00::53]:53 fd00::54 10.0.0.2");
  ASSERT_TRUE(s);
  std::vector<std::string> got;
  for (const auto& r : s->resolvers) got.push_back(r.to_string());
  EXPECT_THAT(got, ElementsAre("10.0.0.2:53", "10.0.0.3:5353", "[fd00::53]:53", "[fd00::54]:53"));
  EXPECT_THAT(one_error("resolver dns.google"), HasSubstr("t.conf:1: invalid resolver 'dns.google'"));
  EXPECT_THAT(one_error("resolver 1.1.1.1:0"), HasSubstr("invalid resolver '1.1.1.1:0'"));
  EXPECT_THAT(one_error("resolver"), HasSubstr("resolver needs an argument"));
}

TEST(ConfigParser, HostsOffAndAccessLog) {
  auto s = ok("hosts off\naccess_log off");
  EXPECT_TRUE(s->hosts_file.empty());
  EXPECT_TRUE(s->hosts.empty());
  EXPECT_EQ(s->access_log, "off");
  EXPECT_EQ(ok("access_log stderr")->access_log, "stderr");
  EXPECT_EQ(ok("access_log /var/log/egressd.log")->access_log, "/var/log/egressd.log");
  EXPECT_EQ(one_error("hosts off\nhosts off"), "t.conf:2: hosts given twice (first at t.conf:1)");
  EXPECT_EQ(one_error("access_log off\naccess_log stdout"),
            "t.conf:2: access_log given twice (first at t.conf:1)");
  EXPECT_THAT(one_error("hosts /etc/hosts"), HasSubstr("file access is disabled"));
}

TEST(ConfigParser, Timeout) {
  auto s = ok("timeout connect=5s idle=10m\ntimeout header=500ms drain=0s dns=2s");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->timeout.connect.count(), 5000);
  EXPECT_EQ(s->timeout.idle.count(), 600'000);
  EXPECT_EQ(s->timeout.header.count(), 500);
  EXPECT_EQ(s->timeout.drain.count(), 0);
  EXPECT_EQ(s->timeout.dns.count(), 2000);
  EXPECT_EQ(one_error("timeout connect=5s\ntimeout connect=6s"),
            "t.conf:2: timeout connect= given twice (first at t.conf:1)");
  EXPECT_EQ(one_error("timeout idle=0s"), "t.conf:1: timeout idle=0s is out of range (1ms to 24h)");
  EXPECT_EQ(one_error("timeout drain=25h"), "t.conf:1: timeout drain=25h is out of range (0 to 24h)");
  EXPECT_THAT(one_error("timeout connect=10"), HasSubstr("invalid duration '10' for timeout connect="));
  EXPECT_EQ(one_error("timeout conect=1s"),
            "t.conf:1: unknown option 'conect=' for timeout (did you mean connect=?)");
  EXPECT_THAT(one_error("timeout"), HasSubstr("timeout needs at least one KEY=DURATION"));
  EXPECT_THAT(one_error("timeout 10s"), HasSubstr("unexpected '10s' after timeout"));
}

TEST(ConfigParser, Limit) {
  auto s = ok("limit max_conns=50000 header_bytes=16K\nlimit max_clients=10");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->limit.max_conns, 50'000u);
  EXPECT_EQ(s->limit.header_bytes, 16384u);
  EXPECT_EQ(s->limit.max_clients, 10u);
  EXPECT_EQ(one_error("limit header_bytes=2M"), "t.conf:1: header_bytes=2M is out of range (1K to 1M)");
  EXPECT_THAT(one_error("limit max_conns=0"), HasSubstr("invalid max_conns= '0' (a number 1..10000000)"));
  EXPECT_THAT(one_error("limit header_bytes=64KB"), HasSubstr("invalid size '64KB' for header_bytes="));
  EXPECT_EQ(one_error("limit max_clients=5\nlimit max_clients=6"),
            "t.conf:2: limit max_clients= given twice (first at t.conf:1)");
  EXPECT_THAT(one_error("limit max_con=5"), HasSubstr("(did you mean max_conns=?)"));
  // Overflow is a malformed value, never a wrapped-around one.
  EXPECT_THAT(one_error("limit max_conns=18446744073709551616"), HasSubstr("invalid max_conns="));
  EXPECT_THAT(one_error("limit header_bytes=17179869184G"), HasSubstr("invalid size '17179869184G'"));
  EXPECT_THAT(one_error("timeout idle=9999999999999999h"), HasSubstr("invalid duration '9999999999999999h'"));
}

TEST(ConfigParser, TlsPortsRequireSni) {
  auto s = ok("tls_ports 443,8443 9443\nrequire_sni off");
  EXPECT_EQ(s->tls_ports, (std::vector<uint16_t>{443, 8443, 9443}));
  EXPECT_FALSE(s->require_sni);
  EXPECT_TRUE(ok("require_sni on")->require_sni);
  EXPECT_THAT(one_error("tls_ports 443,0"), HasSubstr("invalid port '0' in tls_ports"));
  EXPECT_EQ(one_error("require_sni yes"), "t.conf:1: require_sni takes on or off, not 'yes'");
  EXPECT_EQ(one_error("tls_ports 443\ntls_ports 8443"), "t.conf:2: tls_ports given twice (first at t.conf:1)");
}

TEST(ConfigParser, Ech) {
  EXPECT_FALSE(ok("threads 1")->ech_allow);  // default deny
  EXPECT_FALSE(ok("ech deny")->ech_allow);
  EXPECT_TRUE(ok("ech allow")->ech_allow);
  EXPECT_EQ(one_error("ech on"), "t.conf:1: ech takes deny or allow, not 'on'");
  EXPECT_THAT(one_error("ech"), HasSubstr("t.conf:1: "));
  EXPECT_THAT(one_error("ech allow deny"), HasSubstr("t.conf:1: "));
  EXPECT_EQ(one_error("ech allow\nech deny"), "t.conf:2: ech given twice (first at t.conf:1)");
}

TEST(ConfigParser, Mode) {
  EXPECT_FALSE(ok("mode enforce")->report_mode);
  EXPECT_TRUE(ok("mode report")->report_mode);
  EXPECT_EQ(one_error("mode audit"), "t.conf:1: invalid mode 'audit' (use enforce or report)");
  EXPECT_EQ(one_error("mode report\nmode enforce"), "t.conf:2: mode given twice (first at t.conf:1)");
}

TEST(ConfigParser, DiagnosticStr) {
  EXPECT_EQ((diagnostic{"a.conf", 3, "bad"}).str(), "a.conf:3: bad");
  EXPECT_EQ((diagnostic{"a.conf", 0, "bad"}).str(), "a.conf: bad");
}

}  // namespace
}  // namespace egressd::config
