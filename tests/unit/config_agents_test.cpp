// The agent directives: agent, agents FILE, auth, allow agent=, groups of
// agents, and the errors of each (never echoing a token).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "acl/agents.hpp"
#include "config/config.hpp"
#include "config_test_util.hpp"

namespace egressd::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::errors;
using testing::ok;
using testing::one_error;
using testing::parse;

std::string hash_of(std::string_view token) {
  acl::token_digest d{};
  EXPECT_TRUE(acl::sha256(token, &d));
  return acl::format_token_hash(d);
}

const std::string H1 = hash_of("tok-1");
const std::string H2 = hash_of("tok-2");

TEST(ConfigAgents, AgentLine) {
  auto s = ok("agent build-7 token=" + H1 + " group=ci,builders\nagent rev token=" + H2);
  ASSERT_TRUE(s->agents);
  ASSERT_EQ(s->agents->agents().size(), 2u);
  const auto& a = s->agents->agents()[0];
  EXPECT_EQ(a.name, "build-7");
  EXPECT_THAT(a.groups, ElementsAre("ci", "builders"));
  EXPECT_EQ(a.file, "t.conf");
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(s->agents->find(*acl::parse_token_hash(H1)), &a);
  // Default auth: required once an agent exists.
  EXPECT_EQ(s->auth, acl::auth_mode::required);
  // Groups named only on agent lines exist, without networks.
  ASSERT_EQ(s->groups.size(), 2u);
  EXPECT_EQ(s->groups[0].name, "ci");
  EXPECT_TRUE(s->groups[0].nets.empty());
  EXPECT_THAT(a.group_index, ElementsAre(0, 1));
}

TEST(ConfigAgents, HexIsCaseInsensitive) {
  std::string upper = H1;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = char(std::toupper(static_cast<unsigned char>(upper[i])));
  auto s = ok("agent a token=" + upper);
  EXPECT_NE(s->agents->find(*acl::parse_token_hash(H1)), nullptr);
}

TEST(ConfigAgents, AuthModes) {
  EXPECT_EQ(ok("allow x.com")->auth, acl::auth_mode::off);
  EXPECT_TRUE(ok("allow x.com")->agents->empty());
  EXPECT_EQ(ok("auth off\nagent a token=" + H1)->auth, acl::auth_mode::off);
  EXPECT_EQ(ok("auth optional\nagent a token=" + H1)->auth, acl::auth_mode::optional);
  EXPECT_EQ(ok("agent a token=" + H1 + "\nauth required")->auth, acl::auth_mode::required);
  EXPECT_EQ(ok("auth off")->auth, acl::auth_mode::off);
  EXPECT_EQ(one_error("auth required"),
            "t.conf:1: auth required needs at least one agent (add: agent NAME token=sha256:HEX, or agents "
            "FILE; or write auth off)");
  EXPECT_THAT(one_error("auth optional"), HasSubstr("auth optional needs at least one agent"));
  EXPECT_THAT(one_error("auth maybe"), HasSubstr("invalid auth 'maybe'"));
  EXPECT_THAT(one_error("auth off\nauth off"), HasSubstr("t.conf:2: auth given twice (first at t.conf:1)"));
}

TEST(ConfigAgents, Errors) {
  EXPECT_EQ(one_error("agent a token=" + H1 + "\nagent a token=" + H2),
            "t.conf:2: agent a is defined twice (first at t.conf:1)");
  EXPECT_EQ(one_error("agent a token=" + H1 + "\nagent b token=" + H1),
            "t.conf:2: agent b has the same token hash as agent a at t.conf:1 (every agent needs its own token)");
  EXPECT_THAT(one_error("agent a/b token=" + H1), HasSubstr("t.conf:1: invalid agent name 'a/b'"));
  EXPECT_THAT(one_error("agent " + std::string(65, 'x') + " token=" + H1), HasSubstr("invalid agent name (65 characters"));
  // A name too long to be one may be a pasted token: never repeated.
  EXPECT_THAT(one_error("agent " + std::string(65, 'x') + " token=" + H1), Not(HasSubstr(std::string(65, 'x'))));
  EXPECT_THAT(one_error("agent a"), HasSubstr("agent a needs token=sha256:HEX"));
  EXPECT_THAT(one_error("agent a token=" + H1.substr(0, H1.size() - 1)),
              HasSubstr("must be sha256: followed by 64 hex digits"));
  EXPECT_THAT(one_error("agent a token=" + H1 + " group=a/b"), HasSubstr("invalid group 'a/b'"));
  EXPECT_THAT(one_error("agent a token=" + H1 + " colour=red"), HasSubstr("unknown option"));
  EXPECT_THAT(one_error("agent token=" + H1), HasSubstr("agent needs"));
  // allow agent=: names must exist.
  EXPECT_EQ(one_error("agent a token=" + H1 + "\nallow x.com agent=b"),
            "t.conf:2: agent 'b' is not defined (add a line: agent b token=sha256:HEX, or list it in an agents FILE)");
  EXPECT_THAT(one_error("agent a token=" + H1 + "\nallow x.com agent=a,b/c"), HasSubstr("invalid agent 'b/c'"));
  EXPECT_THAT(one_error("agent a token=" + H1 + "\nallow x.com agent="), HasSubstr("t.conf:2"));
  // A group neither defined nor on an agent line is still an error.
  EXPECT_THAT(one_error("agent a token=" + H1 + " group=ci\nallow x.com group=cd"),
              HasSubstr("group 'cd' is not defined"));
}

TEST(ConfigAgents, ErrorsNeverEchoTheToken) {
  // An operator who pasted the raw token instead of its hash.
  for (const std::string& text : {std::string("agent a token=hunter2-raw-token"),
                                  std::string("agent a token=sha256:hunter2-raw-token"),
                                  std::string("agent a token=hunter2=raw")}) {
    auto r = parse(text);
    ASSERT_FALSE(r.snap) << text;
    for (const auto& e : errors(r)) EXPECT_THAT(e, Not(HasSubstr("hunter2"))) << e;
  }
}

TEST(ConfigAgents, AllowAgentAndGroupOfAgents) {
  auto s = ok("agent a token=" + H1 + " group=ci\nagent b token=" + H2 +
              "\ngroup ci 10.9.0.0/16\nallow model.test agent=a,b\nallow pypi.test group=ci");
  ASSERT_EQ(s->policy->rules().size(), 2u);
  EXPECT_THAT(s->policy->rules()[0].agents, ElementsAre("a", "b"));
  // The group keeps its networks and also counts agent a as a member.
  ASSERT_EQ(s->groups.size(), 1u);
  EXPECT_EQ(s->groups[0].nets.size(), 1u);
  const acl::agent* a = s->agents->find_name("a");
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(a->group_index, ElementsAre(0));
  acl::client_id who;
  who.addr = *acl::parse_ip_strict("192.0.2.1");
  who.agent = a->name;
  who.agent_groups = &a->groups;
  who.agent_group_index = a->group_index;
  EXPECT_TRUE(s->policy->decide("pypi.test", 443, "", who).allowed);
  EXPECT_TRUE(s->policy->decide("model.test", 443, "", who).allowed);
  EXPECT_FALSE(s->policy->decide("pypi.test", 443, "", *acl::parse_ip_strict("192.0.2.1")).allowed);
  EXPECT_TRUE(s->policy->decide("pypi.test", 443, "", *acl::parse_ip_strict("10.9.1.1")).allowed);
  EXPECT_FALSE(s->policy->decide("model.test", 443, "", *acl::parse_ip_strict("10.9.1.1")).allowed);
}

class ConfigAgentsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "egressd-agents-XXXXXX").string();
    ASSERT_TRUE(::mkdtemp(tmpl.data()));
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel) << text;
    return (dir_ / rel).string();
  }
  load_result load(const std::string& main_text) { return load_file(write("egressd.conf", main_text)); }
  fs::path dir_;
};

TEST_F(ConfigAgentsFile, LinesCommentsAndRelativePath) {
  const std::string agents = write("conf.d/agents.txt", "# name hash groups\n\nbuild-7 " + H1 +
                                                            " group=ci  # the CI runner\nrev " + H2 + "\n");
  auto r = load("listen 127.0.0.1:0\nhosts off\nagents conf.d/agents.txt\nallow x.test agent=rev\n");
  ASSERT_THAT(errors(r), ::testing::IsEmpty());
  ASSERT_EQ(r.snap->agents->agents().size(), 2u);
  EXPECT_EQ(r.snap->agents->agents()[0].name, "build-7");
  EXPECT_EQ(r.snap->agents->agents()[0].file, agents);
  EXPECT_EQ(r.snap->agents->agents()[0].line, 3);
  EXPECT_THAT(r.snap->agents->agents()[0].groups, ElementsAre("ci"));
  EXPECT_EQ(r.snap->auth, acl::auth_mode::required);
  // The reload watchers see the agents file.
  EXPECT_THAT(r.snap->files, ::testing::Contains(agents));
}

TEST_F(ConfigAgentsFile, ErrorsNameTheAgentsFileAndLine) {
  const std::string agents = write("agents.txt", "a " + H1 + "\nb not-a-hash\nc " + H2 + " extra\nd " + H2 +
                                                     " colour=x\na " + hash_of("tok-3") + "\n");
  auto r = load("listen 127.0.0.1:0\nhosts off\nagents agents.txt\n");
  EXPECT_FALSE(r.snap);
  auto e = errors(r);
  ASSERT_EQ(e.size(), 4u) << ::testing::PrintToString(e);
  EXPECT_THAT(e[0], HasSubstr(agents + ":2: the token hash must be sha256:"));
  EXPECT_THAT(e[0], Not(HasSubstr("not-a-hash")));
  EXPECT_EQ(e[1], agents + ":3: expected NAME sha256:HEX [group=G,...]");
  EXPECT_THAT(e[2], HasSubstr(agents + ":4: unexpected KEY=VALUE word"));
  EXPECT_EQ(e[3], agents + ":5: agent a is defined twice (first at " + agents + ":1)");
}

TEST_F(ConfigAgentsFile, MissingFile) {
  auto r = load("listen 127.0.0.1:0\nhosts off\nagents nope.txt\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].str(), HasSubstr("egressd.conf:3: cannot read agents file"));
}

TEST_F(ConfigAgentsFile, DuplicateAcrossLineAndFile) {
  const std::string agents = write("agents.txt", "b " + H1 + "\n");
  auto r = load("listen 127.0.0.1:0\nhosts off\nagent a token=" + H1 + "\nagents agents.txt\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].str(), HasSubstr(agents + ":1: agent b has the same token hash as agent a"));
}

}  // namespace
}  // namespace egressd::config
