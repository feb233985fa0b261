// tools/squid_importer: squid.conf -> egressd config. The translated text is
// loaded with egressd's own parser and its decisions are compared with what
// Squid decides for the same requests (tables), plus the comments, warnings
// and FILE:LINE errors an operator sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "tools/squid_importer.hpp"

namespace egressd::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

struct imported {
  import_result r;
  std::shared_ptr<const config::snapshot> snap;

  // A tunnel (CONNECT) when method is empty, as the proxy asks the policy.
  bool allows(const char* client, const char* host, uint16_t port, const char* method = "") const {
    auto c = acl::parse_ip_strict(client);
    EXPECT_TRUE(c) << client;
    return snap->policy->decide(host, port, method, *c).allowed;
  }
  bool net_allows(const char* ip, uint16_t port) const {
    return snap->policy->covered_by_allow_net(*acl::parse_ip_strict(ip), port);
  }
  std::string warnings() const {
    std::string s;
    for (const auto& w : r.warnings) s += w.str() + "\n";
    return s;
  }
};

imported load(import_result r) {
  imported im{std::move(r), nullptr};
  if (!im.r.errors.empty()) return im;
  config::load_options o;
  o.file_access = false;
  auto loaded = config::load_string(im.r.text, "out.conf", o);
  for (const auto& e : loaded.errors) ADD_FAILURE() << e.str() << "\n" << im.r.text;
  im.snap = loaded.snap;
  return im;
}

imported import_text(const std::string& text) {
  import_options o;
  o.file_access = false;
  return load(import_squid_string(text, "squid.conf", ".", o));
}

std::vector<std::string> errors_of(const std::string& text) {
  import_options o;
  o.file_access = false;
  std::vector<std::string> v;
  for (const auto& e : import_squid_string(text, "squid.conf", ".", o).errors) v.push_back(e.str());
  return v;
}

class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/egressd-squid-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A Squid egress container's allowlist: the stock squid.conf preamble
// (localnet, Safe_ports, SSL_ports, manager rules), the sites agents need,
// a dstdomain file, regexes, and `deny all`.
constexpr const char* egress_squid_conf = R"(# Squid egress proxy for the agent network
http_port 3128
visible_hostname egress

acl localnet src 10.0.0.0/8     # RFC 1918 possible internal network
acl localnet src 172.16.0.0/12  # RFC 1918 possible internal network
acl localnet src 192.168.0.0/16 # RFC 1918 possible internal network
acl localnet src fc00::/7       # RFC 4193 local private network range
acl localnet src fe80::/10      # RFC 4291 link-local (directly plugged) machines

acl SSL_ports port 443
acl Safe_ports port 80          # http
acl Safe_ports port 21          # ftp
acl Safe_ports port 443         # https
acl Safe_ports port 70          # gopher
acl Safe_ports port 210         # wais
acl Safe_ports port 1025-65535  # unregistered ports
acl Safe_ports port 280         # http-mgmt
acl Safe_ports port 488         # gss-http
acl Safe_ports port 591         # filemaker
acl Safe_ports port 777         # multiling http
acl CONNECT method CONNECT

acl allowed_sites dstdomain api.anthropic.com
acl allowed_sites dstdomain .github.com
acl allowed_sites dstdomain pypi.org
acl registries dstdomain "lists/registries.txt"
acl cdn dstdom_regex -i ^objects[0-9]*\.githubusercontent\.com$
acl blocked dstdom_regex \.onion$

http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
http_access deny to_localhost
http_access deny blocked
http_access allow localnet allowed_sites
http_access allow localnet registries
http_access allow localnet cdn
http_access deny all

dns_nameservers 10.0.0.2
access_log daemon:/var/log/squid/access.log squid
coredump_dir /var/spool/squid
refresh_pattern . 0 20% 4320
)";

TEST(tools_squid_import, egress_container_allowlist) {
  temp_dir dir;
  dir.write("lists/registries.txt", "# package registries\nfiles.pythonhosted.org\n\n.npmjs.org  # npm\n");
  std::string path = dir.write("squid.conf", egress_squid_conf);
  auto im = load(import_squid_file(path));
  ASSERT_THAT(im.r.errors, ::testing::IsEmpty());
  ASSERT_TRUE(im.snap) << im.r.text;
  const std::string& t = im.r.text;

  EXPECT_THAT(t, HasSubstr("\nlisten 0.0.0.0:3128\n"));
  EXPECT_THAT(t, HasSubstr("\nresolver 10.0.0.2\n"));
  EXPECT_THAT(t, HasSubstr("\naccess_log stdout\n"));
  EXPECT_THAT(t, HasSubstr("\ngroup localnet 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7 fe80::/10\n"));
  EXPECT_THAT(t, HasSubstr("\nallow api.anthropic.com ports=80,443 group=localnet\n"));
  EXPECT_THAT(t, HasSubstr("\nallow .github.com ports=80,443 group=localnet\n"));
  EXPECT_THAT(t, HasSubstr("\nallow files.pythonhosted.org ports=80,443 group=localnet\n"));
  EXPECT_THAT(t, HasSubstr("\nallow .npmjs.org ports=80,443 group=localnet\n"));
  EXPECT_THAT(t, HasSubstr("\nallow ~(?i)objects[0-9]*\\.githubusercontent\\.com ports=80,443 group=localnet\n"));
  EXPECT_THAT(t, HasSubstr("\ndeny ~.*\\.onion\n"));
  EXPECT_THAT(t, HasSubstr("# squid: coredump_dir /var/spool/squid (not translated: egressd does not cache)"));
  EXPECT_THAT(t, HasSubstr("# squid: http_access deny manager (not translated: egressd has no cache manager"));
  EXPECT_THAT(t, HasSubstr("# squid: visible_hostname egress (not translated:"));
  EXPECT_EQ(im.r.allow_lines, 6u);
  EXPECT_EQ(im.warnings(), "");

  struct { const char* client; const char* host; uint16_t port; const char* method; bool squid; } table[] = {
      {"10.1.2.3", "api.anthropic.com", 443, "", true},
      {"10.1.2.3", "API.Anthropic.com.", 443, "", true},
      {"fd00::5", "api.anthropic.com", 443, "", true},
      {"10.1.2.3", "api.anthropic.com", 80, "GET", true},
      {"10.1.2.3", "api.anthropic.com", 8443, "", false},   // CONNECT !SSL_ports
      {"10.1.2.3", "api.anthropic.com", 22, "", false},     // !Safe_ports
      {"8.8.8.8", "api.anthropic.com", 443, "", false},     // not localnet
      {"10.1.2.3", "github.com", 443, "", true},
      {"10.1.2.3", "api.github.com", 443, "", true},
      {"10.1.2.3", "github.com.evil.io", 443, "", false},
      {"10.1.2.3", "pypi.org", 443, "", true},
      {"10.1.2.3", "www.pypi.org", 443, "", false},
      {"10.1.2.3", "registry.npmjs.org", 443, "", true},
      {"10.1.2.3", "files.pythonhosted.org", 443, "", true},
      {"10.1.2.3", "objects.githubusercontent.com", 443, "", true},
      {"10.1.2.3", "objects42.githubusercontent.com", 443, "", true},
      {"10.1.2.3", "raw.githubusercontent.com", 443, "", false},
      {"10.1.2.3", "evil.example", 443, "", false},
      {"10.1.2.3", "mirror.onion", 443, "", false},
  };
  for (const auto& c : table)
    EXPECT_EQ(im.allows(c.client, c.host, c.port, c.method), c.squid)
        << c.client << " -> " << c.host << ":" << c.port << " " << c.method;
}

// Each row: a squid.conf (without http_port), what the output must contain
// and must not contain.
TEST(tools_squid_import, rule_shapes) {
  struct { const char* name; const char* conf; std::vector<const char*> has, has_not; } cases[] = {
      {"default ports without port ACLs",
       "acl a dstdomain .a.com\nhttp_access allow a\nhttp_access deny all\n",
       {"\nallow .a.com ports=80,443\n", "ports 1-65535 are not listed"}, {"plain HTTP to ports"}},
      {"SSL_ports only",
       "acl S port 443\nacl a dstdomain a.com\nhttp_access deny !S\nhttp_access allow a\n",
       {"\nallow a.com ports=443\n"}, {"ports=80"}},
      {"implicit default after a final deny: allow what remains",
       "acl bad dstdomain .bad.com\nhttp_access deny bad\n",
       {"\ndeny .bad.com\n", "(implicit) http_access allow all", "\nallow ~.* ports=80,443\n"}, {}},
      {"no http_access at all: deny everything",
       "acl a dstdomain a.com\n", {"squid denies every request"}, {"\nallow "}},
      {"deny !allowed carries the names into later rules",
       "acl ok dstdomain ok.com\nacl net src 10.0.0.0/8\nhttp_access deny !ok\nhttp_access allow net\n",
       {"\nallow ok.com ports=80,443 group=net\n", "only destination names in acl ok"}, {"~.*"}},
      {"deny !localnet carries the clients",
       "acl localnet src 10.0.0.0/8\nacl a dstdomain a.com\nhttp_access deny !localnet\nhttp_access allow a\n",
       {"\nallow a.com ports=80,443 group=localnet\n"}, {}},
      {"methods: GET/HEAD only, plain HTTP",
       "acl ro method GET HEAD\nacl a dstdomain a.com\nhttp_access allow ro a\nhttp_access deny all\n",
       {"\nallow a.com ports=80 methods=GET,HEAD\n"}, {}},
      {"CONNECT only",
       "acl CONNECT method CONNECT\nacl S port 443\nacl a dstdomain a.com\nhttp_access allow CONNECT S a\n",
       {"\nallow a.com ports=443 methods=CONNECT\n"}, {}},
      {"dst acl becomes allow_net",
       "acl db dst 10.5.0.0/16\nacl pg port 5432\nhttp_access allow db pg\nhttp_access deny all\n",
       {"\nallow_net 10.5.0.0/16 ports=5432\n", "squid's dst also matches names"}, {}},
      {"dst acl for one group only is left out",
       "acl db dst 10.5.0.0/16\nacl n src 10.0.0.0/8\nhttp_access allow n db\nhttp_access deny all\n",
       {"acl db left out: egressd's allow_net applies to every client"}, {"allow_net 10."}},
      {"IP literal in dstdomain",
       "acl a dstdomain 192.0.2.10 a.com\nhttp_access allow a\nhttp_access deny all\n",
       {"\nallow_net 192.0.2.10/32 ports=80,443\n", "\nallow a.com ports=80,443\n"}, {"allow 192.0.2.10"}},
      {"unsupported acl in an allow rule: left out",
       "acl t time MTWHF 08:00-18:00\nacl a dstdomain a.com\nhttp_access allow a t\nhttp_access deny all\n",
       {"# squid: http_access allow a t (not translated: acl t (time): egressd has no time-based rules)",
        "# squid: acl t time MTWHF 08:00-18:00 (not translated: egressd has no time-based rules)"},
       {"\nallow a.com"}},
      {"unsupported acl in a deny rule: the deny grows to everything",
       "acl ua browser curl\nacl a dstdomain a.com\nhttp_access deny ua\nhttp_access allow a\n",
       {"approximated as denying every request", "(not translated: it can never match: an earlier rule"},
       {"\nallow a.com"}},
      {"deny of names after an allow still becomes a deny line",
       "acl a dstdomain .a.com\nacl b dstdomain x.a.com\nhttp_access allow a\nhttp_access deny b\n",
       {"\ndeny x.a.com\n", "also override the allow lines above"}, {}},
      {"deny with names and other ACLs is widened to the names",
       "acl n src 10.0.0.0/8\nacl b dstdomain b.com\nhttp_access deny n b\nhttp_access allow all\n",
       {"\ndeny b.com\n", "narrowed: applied regardless of acl n"}, {}},
      {"allow localnet !blocked: everything but the blocked names",
       "acl n src 10.0.0.0/8\nacl b dstdomain .b.com\nhttp_access allow n !b\nhttp_access deny all\n",
       {"\nallow ~.* ports=80,443 group=n\n", "\ndeny .b.com\n"}, {}},
      {"two client ACLs: the narrower one is the group",
       "acl n src 10.0.0.0/8\nacl o src 10.1.0.0/16\nacl a dstdomain a.com\n"
       "http_access deny !n\nhttp_access allow o a\nhttp_access deny all\n",
       {"\nallow a.com ports=80,443 group=o\n"}, {"group=n"}},
      {"disjoint client ACLs cannot be combined",
       "acl n src 10.0.0.0/8\nacl o src 192.168.0.0/16\nacl a dstdomain a.com\n"
       "http_access deny !n\nhttp_access allow o a\nhttp_access deny all\n",
       {"(not translated: it requires clients in acl"}, {"\nallow a.com"}},
      {"excluding clients cannot be expressed",
       "acl bad src 10.0.0.66\nacl a dstdomain a.com\nhttp_access allow !bad a\nhttp_access deny all\n",
       {"egressd groups cannot exclude clients"}, {"\nallow a.com"}},
      {"regex not convertible is left out with a warning",
       "acl r dstdom_regex \\<evil\\> ok\\.com$\nhttp_access allow r\nhttp_access deny all\n",
       {"regex '\\<evil\\>'", "\nallow ~.*ok\\.com ports=80,443\n"}, {}},
      {"unused acl and unknown directive are kept as comments",
       "acl unused dstdomain u.com\nfoo_bar 1\nacl a dstdomain a.com\nhttp_access allow a\n",
       {"# squid: acl unused dstdomain u.com (not translated: no http_access rule uses it)",
        "# squid: foo_bar 1 (not translated: unknown to the translator"}, {}},
      {"to_localhost deny is covered by egressd",
       "acl a dstdomain a.com\nhttp_access deny to_localhost\nhttp_access allow a\n",
       {"egressd refuses these destinations by itself", "\nallow a.com"}, {}},
      {"server directives",
       "http_port 127.0.0.1:3128\nhttp_port [::1]:3129 name=x\nhosts_file none\nconnect_timeout 30 seconds\n"
       "read_timeout 15 minutes\nrequest_header_max_size 32 KB\naccess_log none\n"
       "acl a dstdomain a.com\nhttp_access allow a\n",
       {"\nlisten 127.0.0.1:3128\n", "\nlisten [::1]:3129\n", "options ignored: name=x", "\nhosts off\n",
        "\ntimeout connect=30s idle=15m\n", "\nlimit header_bytes=32K\n", "\naccess_log off\n"},
       {"listen 0.0.0.0"}},
      {"no http_port: squid's 3128",
       "acl a dstdomain a.com\nhttp_access allow a\n", {"\nlisten 0.0.0.0:3128\n"}, {}},
  };
  for (const auto& c : cases) {
    auto im = import_text(c.conf);
    ASSERT_THAT(im.r.errors, ::testing::IsEmpty()) << c.name;
    for (const char* h : c.has) EXPECT_THAT(im.r.text, HasSubstr(h)) << c.name << "\n" << im.r.text;
    for (const char* h : c.has_not) EXPECT_THAT(im.r.text, Not(HasSubstr(h))) << c.name << "\n" << im.r.text;
  }
}

TEST(tools_squid_import, address_forms) {
  // Squid 4's stock localnet starts with a range; masks and host bits too.
  auto im = import_text(
      "acl localnet src 0.0.0.1-0.255.255.255\nacl localnet src 10.0.0.0/255.0.0.0\n"
      "acl localnet src 192.168.1.7/24\nacl localnet src fd00::1-fd00::4\nacl localnet src 172.16.0.0/12\n"
      "acl a dstdomain a.com\nhttp_access allow localnet a\n");
  ASSERT_TRUE(im.snap) << im.r.text;
  EXPECT_THAT(im.r.text, HasSubstr(" 0.0.0.1/32 0.0.0.2/31 0.0.0.4/30 "));
  EXPECT_THAT(im.r.text, HasSubstr(" 0.128.0.0/9 10.0.0.0/8 192.168.1.0/24 fd00::1/128 fd00::2/127 fd00::4/128 "
                                   "172.16.0.0/12\n"));
  for (const char* c : {"0.0.0.1", "0.255.255.255", "0.17.3.4", "10.9.9.9", "192.168.1.200", "fd00::3", "172.20.0.1"})
    EXPECT_TRUE(im.allows(c, "a.com", 443)) << c;
  for (const char* c : {"0.0.0.0", "1.0.0.0", "192.168.2.1", "fd00::5", "11.0.0.1"})
    EXPECT_FALSE(im.allows(c, "a.com", 443)) << c;
  auto all = import_text("acl e src 0.0.0.0-255.255.255.255\nacl a dstdomain a.com\nhttp_access allow e a\n");
  EXPECT_THAT(all.r.text, HasSubstr("group e 0.0.0.0/0\n"));
  auto name = import_text("acl h src gw.example\nacl a dstdomain a.com\nhttp_access allow h a\n");
  EXPECT_THAT(name.r.text, HasSubstr("'gw.example' is a host name"));
  EXPECT_THAT(errors_of("acl r src 10.0.0.5-10.0.0.1\n"), ElementsAre(HasSubstr("invalid address '10.0.0.5-10.0.0.1'")));
}

TEST(tools_squid_import, implicit_rule_semantics) {
  // Squid: last line deny -> what no line matched is allowed.
  auto im = import_text("acl bad dstdomain .bad.com\nacl n src 10.0.0.0/8\nhttp_access deny bad\n");
  EXPECT_TRUE(im.allows("10.0.0.1", "good.com", 443));
  EXPECT_FALSE(im.allows("10.0.0.1", "x.bad.com", 443));
  // Last line allow -> the rest is denied.
  im = import_text("acl ok dstdomain ok.com\nhttp_access allow ok\n");
  EXPECT_TRUE(im.allows("10.0.0.1", "ok.com", 443));
  EXPECT_FALSE(im.allows("10.0.0.1", "good.com", 443));
}

TEST(tools_squid_import, every_destination_warns) {
  auto im = import_text("acl localnet src 10.0.0.0/8\nhttp_access allow localnet\nhttp_access deny all\n");
  EXPECT_THAT(im.r.text, HasSubstr("\nallow ~.* ports=80,443 group=localnet\n"));
  EXPECT_THAT(im.warnings(), HasSubstr("squid.conf:2: warning: 'http_access allow localnet' allows every destination name"));
  EXPECT_TRUE(im.allows("10.0.0.1", "anything.example", 443));
  EXPECT_FALSE(im.allows("11.0.0.1", "anything.example", 443));
}

TEST(tools_squid_import, nothing_allowed) {
  auto im = import_text("http_access deny all\n");
  EXPECT_TRUE(im.r.errors.empty());
  EXPECT_EQ(im.r.allow_lines, 0u);
}

TEST(tools_squid_import, errors_with_file_and_line) {
  struct { const char* conf; const char* error; } cases[] = {
      {"http_access allow nosuch\n", "squid.conf:1: http_access names an undefined acl 'nosuch'"},
      {"acl a dstdomain a.com\nhttp_access maybe a\n", "squid.conf:2: http_access needs allow or deny"},
      {"http_access allow\n", "squid.conf:1: http_access allow needs at least one ACL"},
      {"acl p port 0\n", "squid.conf:1: invalid port '0' in acl p"},
      {"acl p port 80-\n", "squid.conf:1: invalid port '80-' in acl p"},
      {"acl n src 10.0.0.0/33\n", "squid.conf:1: invalid address '10.0.0.0/33' in acl n"},
      {"acl a dstdomain a.com\nacl a src 10.0.0.0/8\n", "squid.conf:2: acl a was defined with type dstdomain"},
      {"acl a\n", "squid.conf:1: acl needs a name and a type"},
      {"acl a dstdomain\n", "squid.conf:1: acl a dstdomain needs at least one value"},
      {"acl a dstdomain \"list.txt\"\n", "squid.conf:1: acl value files are not allowed here"},
      {"http_port 99999\n", "squid.conf:1: invalid http_port '99999'"},
      {"dns_nameservers dns.google\n", "squid.conf:1: dns_nameservers takes IP addresses"},
      {"connect_timeout soon\n", "squid.conf:1: invalid time"},
      {"if ${process_number} = 1\nendif\n", "squid.conf:1: squid conditionals (if/else/endif) are not supported"},
      {"acl a dstdomain \"unterminated\n", "squid.conf:1: unterminated quote"},
      {"acl m method G@T\n", "squid.conf:1: invalid method 'G@T' in acl m"},
  };
  for (const auto& c : cases) {
    auto errs = errors_of(c.conf);
    ASSERT_FALSE(errs.empty()) << c.conf;
    EXPECT_THAT(errs[0], HasSubstr(c.error)) << c.conf;
  }
}

TEST(tools_squid_import, files_includes_and_continuations) {
  temp_dir dir;
  dir.write("conf.d/10-sites.conf", "acl sites dstdomain \\\n  a.com \\\n  b.com\n");
  dir.write("conf.d/20-rules.conf", "http_access allow sites\nhttp_access deny all\n");
  dir.write("hosts", "10.9.9.9 internal.example\n");
  std::string path = dir.write("squid.conf", "include conf.d/*.conf\nhosts_file " + dir.path() + "/hosts\n");
  auto r = import_squid_file(path);
  ASSERT_THAT(r.errors, ::testing::IsEmpty());
  EXPECT_THAT(r.text, HasSubstr("\nallow a.com ports=80,443\nallow b.com ports=80,443\n"));
  EXPECT_THAT(r.text, HasSubstr("\nhosts " + dir.path() + "/hosts\n"));

  auto missing = import_squid_file(dir.path() + "/nope.conf");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_THAT(missing.errors[0].str(), HasSubstr("cannot read " + dir.path() + "/nope.conf: No such file"));

  std::string bad = dir.write("bad.conf", "acl s dstdomain \"missing.txt\"\n");
  auto r2 = import_squid_file(bad);
  ASSERT_EQ(r2.errors.size(), 1u);
  EXPECT_EQ(r2.errors[0].str(), bad + ":1: cannot read " + dir.path() + "/missing.txt: No such file or directory");

  std::string cyc = dir.write("cycle.conf", "include cycle.conf\n");
  EXPECT_THAT(import_squid_file(cyc).errors.at(0).str(), HasSubstr("include cycle"));
}

TEST(tools_squid_import, refused_lines_become_comments) {
  // egressd refuses a hosts file it cannot read: the line is commented out,
  // the rest still loads.
  temp_dir dir;
  std::string path = dir.write("squid.conf",
                               "hosts_file /nonexistent/hosts\nacl a dstdomain a.com\nhttp_access allow a\n");
  auto r = import_squid_file(path);
  ASSERT_THAT(r.errors, ::testing::IsEmpty());
  EXPECT_THAT(r.text, HasSubstr("# squid: hosts_file /nonexistent/hosts (not translated: egressd refuses"));
  EXPECT_THAT(r.text, Not(HasSubstr("\nhosts /nonexistent/hosts\n")));
  ASSERT_FALSE(r.warnings.empty());
  auto loaded = config::load_string(r.text, "out.conf");
  EXPECT_TRUE(loaded.snap);
}

}  // namespace
}  // namespace egressd::tools
