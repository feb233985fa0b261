// Files: include (relative, glob, missing, cycle), hosts files, errors that
// name the included file, and the shipped conf/egressd.conf.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "config_test_util.hpp"

namespace egressd::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::errors;

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "egressd-config-XXXXXX").string();
    ASSERT_TRUE(::mkdtemp(tmpl.data()));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const std::string& text) {
    fs::path p = fs::path(dir_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path(const std::string& rel) const { return (fs::path(dir_) / rel).string(); }

  load_result load(const std::string& rel) {
    load_options o;
    o.allow_unsupported = true;
    return load_file(path(rel), o);
  }

  std::string dir_;
};

TEST_F(ConfigFiles, RelativeIncludeAndGlobInOrder) {
  write("main.conf", "listen 127.0.0.1:3128\ninclude conf.d/*.conf\ninclude extra/one.conf\nallow last.com\n");
  write("conf.d/b.conf", "allow b.com\n");
  write("conf.d/a.conf", "allow a.com\ninclude ../nested.conf\n");
  write("conf.d/ignored.txt", "this is not a config\n");
  fs::create_directories(path("conf.d/sub.conf"));  // a directory matching the glob: skipped
  write("nested.conf", "allow nested.com\n");
  write("extra/one.conf", "allow one.com\n");
  auto r = load("main.conf");
  ASSERT_THAT(errors(r), IsEmpty());
  std::vector<std::string> patterns;
  for (const auto& rule : r.snap->policy->rules()) patterns.push_back(rule.pattern);
  EXPECT_THAT(patterns, ElementsAre("a.com", "nested.com", "b.com", "one.com", "last.com"));
  EXPECT_EQ(r.snap->files.size(), 5u);
  EXPECT_EQ(r.snap->files[0], path("main.conf"));
  EXPECT_EQ(r.snap->files[1], path("conf.d/a.conf"));
  EXPECT_EQ(r.snap->policy->rules()[1].file, path("conf.d/../nested.conf"));
  EXPECT_EQ(r.snap->policy->rules()[1].line, 1);
}

TEST_F(ConfigFiles, GlobMatchingNothingIsFine) {
  write("main.conf", "listen 127.0.0.1:3128\ninclude conf.d/*.conf\ninclude nowhere/*\n");
  EXPECT_THAT(errors(load("main.conf")), IsEmpty());
}

TEST_F(ConfigFiles, MissingPlainIncludeIsAnError) {
  write("main.conf", "listen 127.0.0.1:3128\n\ninclude missing.conf\n");
  EXPECT_THAT(errors(load("main.conf")),
              ElementsAre(path("main.conf") + ":3: cannot read included file '" + path("missing.conf") +
                          "': No such file or directory"));
}

TEST_F(ConfigFiles, MissingMainFile) {
  EXPECT_THAT(errors(load("absent.conf")),
              ElementsAre(path("absent.conf") + ": cannot read the configuration: No such file or directory"));
  EXPECT_THAT(errors(load("")), ElementsAre(HasSubstr("cannot read the configuration")));
}

TEST_F(ConfigFiles, IncludeCycle) {
  write("main.conf", "listen 127.0.0.1:3128\ninclude a.conf\n");
  write("a.conf", "allow a.com\ninclude b.conf\n");
  write("b.conf", "allow b.com\n\ninclude ./a.conf\n");
  EXPECT_THAT(errors(load("main.conf")),
              ElementsAre(path("b.conf") + ":3: include cycle: '" + path("./a.conf") +
                          "' is already being read (remove one of the includes)"));
  write("self.conf", "listen 127.0.0.1:3128\ninclude self.conf\n");
  EXPECT_THAT(errors(load("self.conf")), ElementsAre(HasSubstr("self.conf:2: include cycle")));
}

TEST_F(ConfigFiles, ErrorsInIncludedFilesNameThatFile) {
  write("main.conf", "listen 127.0.0.1:3128\ninclude conf.d/*.conf\nthreads 2\nbogus\n");
  write("conf.d/p1.conf", "allow ok.com\nallow x.com port=443\n");
  write("conf.d/p2.conf", "\n\nthreads 4\nallow ~(bad\n");
  auto r = load("main.conf");
  EXPECT_FALSE(r.snap);
  EXPECT_THAT(errors(r),
              ElementsAre(path("conf.d/p1.conf") + ":2: unknown option 'port=' for allow (did you mean ports=?)",
                          HasSubstr(path("conf.d/p2.conf") + ":4: invalid regular expression"),
                          path("main.conf") + ":3: threads given twice (first at " + path("conf.d/p2.conf") +
                              ":3)",
                          HasSubstr(path("main.conf") + ":4: unknown directive 'bogus'")));
}

TEST_F(ConfigFiles, IncludeUsage) {
  write("main.conf", "listen 127.0.0.1:3128\ninclude\ninclude a.conf recursive=yes\n");
  write("a.conf", "\n");
  EXPECT_THAT(errors(load("main.conf")),
              ElementsAre(HasSubstr("main.conf:2: include needs an argument"),
                          HasSubstr("main.conf:3: unknown option 'recursive=' for include")));
  load_options o;
  o.file_access = false;
  EXPECT_THAT(errors(load_string("include x.conf\nlisten 127.0.0.1:1", "s.conf", o)),
              ElementsAre("s.conf:1: include is not allowed here (file access is disabled)"));
}

TEST_F(ConfigFiles, HostsFile) {
  write("hosts",
        "# comment\n127.0.0.1 localhost Localhost.\n::1 localhost ip6-localhost\n\n"
        "10.0.0.7\tdb.internal db   # trailing\n172.17.0.1 host.docker.internal#glued comment\n");
  write("main.conf", "listen 127.0.0.1:3128\nhosts hosts\n");
  auto r = load("main.conf");
  ASSERT_THAT(errors(r), IsEmpty());
  const auto& h = r.snap->hosts;
  EXPECT_EQ(r.snap->hosts_file, path("hosts"));
  ASSERT_EQ(h.count("localhost"), 1u);
  EXPECT_EQ(h.at("localhost").size(), 2u);
  EXPECT_EQ(h.at("localhost")[0].to_string(), "127.0.0.1");
  EXPECT_EQ(h.at("localhost")[1].to_string(), "::1");
  EXPECT_EQ(h.at("db").front().to_string(), "10.0.0.7");
  EXPECT_EQ(h.at("db.internal").front().to_string(), "10.0.0.7");
  EXPECT_EQ(h.at("host.docker.internal").front().to_string(), "172.17.0.1");
  EXPECT_EQ(h.at("ip6-localhost").front().to_string(), "::1");
  EXPECT_EQ(h.size(), 5u);
}

TEST_F(ConfigFiles, HostsFileErrors) {
  write("hosts", "10.0.0.1 ok\nnot-an-ip name\n10.0.0.2\n10.0.0.3 bad..name\n");
  write("main.conf", "listen 127.0.0.1:3128\nhosts hosts\n");
  EXPECT_THAT(errors(load("main.conf")),
              ElementsAre(HasSubstr(path("hosts") + ":2: invalid address 'not-an-ip'"),
                          path("hosts") + ":3: address 10.0.0.2 has no name",
                          path("hosts") + ":4: invalid name 'bad..name'"));
  write("other.conf", "listen 127.0.0.1:3128\nhosts missing-hosts\n");
  EXPECT_THAT(errors(load("other.conf")),
              ElementsAre(HasSubstr("other.conf:2: cannot read hosts file '" + path("missing-hosts") + "'")));
}

TEST_F(ConfigFiles, RelativeAccessLogFollowsTheFile) {
  write("main.conf", "listen 127.0.0.1:3128\naccess_log logs/access.log\n");
  auto r = load("main.conf");
  ASSERT_TRUE(r.snap);
  EXPECT_EQ(r.snap->access_log, path("logs/access.log"));
}

TEST_F(ConfigFiles, DefaultEtcHostsIsReadWhenPresent) {
  write("main.conf", "listen 127.0.0.1:3128\n");
  auto r = load("main.conf");
  ASSERT_TRUE(r.snap);
  EXPECT_EQ(r.snap->hosts_file, "/etc/hosts");
  if (fs::exists("/etc/hosts")) {
    EXPECT_FALSE(r.snap->hosts.empty());
  }
}

// The shipped default deployment must load, without the test hook.
TEST(ConfigDefaultDeployment, ShippedConfLoads) {
  const std::string conf = fs::path(EGRESSD_TEST_DATA).parent_path().parent_path() / "conf" / "egressd.conf";
  auto r = load_file(conf);
  ASSERT_THAT(errors(r), IsEmpty());
  ASSERT_TRUE(r.snap);
  ASSERT_EQ(r.snap->listens.size(), 1u);
  EXPECT_EQ(r.snap->listens[0].addr.to_string(), "127.0.0.1:3128");
  EXPECT_EQ(r.snap->listens[0].mode, listen_mode::proxy);
  std::vector<std::string> hosts;
  for (const auto& rule : r.snap->policy->rules()) {
    EXPECT_EQ(rule.action, acl::rule::action_t::allow);
    EXPECT_EQ(rule.ports, std::vector<uint16_t>{443}) << rule.pattern;
    hosts.push_back(rule.pattern);
  }
  EXPECT_THAT(hosts, ::testing::UnorderedElementsAre(
                         "api.anthropic.com", "api.openai.com", "sentry.io", "statsig.com", "github.com",
                         "api.github.com", "codeload.github.com", "pypi.org", "files.pythonhosted.org",
                         "crates.io", "index.crates.io", "static.crates.io", "proxy.golang.org",
                         "sum.golang.org", "pkg.go.dev", "repo.maven.apache.org", "plugins.gradle.org",
                         "registry.npmjs.org", "nodejs.org"));
  acl::ip_address client = acl::ip_address::v4(0x7f000001);
  EXPECT_TRUE(r.snap->policy->decide("API.Anthropic.com.", 443, "", client).allowed);
  EXPECT_FALSE(r.snap->policy->decide("api.anthropic.com", 80, "GET", client).allowed);
  EXPECT_FALSE(r.snap->policy->decide("evil.example", 443, "", client).allowed);
  ASSERT_TRUE(r.snap->admin);  // SPEC: admin on 127.0.0.1:9090
  EXPECT_EQ(r.snap->admin->to_string(), "127.0.0.1:9090");
}

}  // namespace
}  // namespace egressd::config
