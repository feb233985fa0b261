// tools/allowlist_learner and learn_command: access-log lines -> a
// reviewable allowlist (JSON), grouped by host, deterministic.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "tools/allowlist_learner.hpp"
#include "tools/commands.hpp"

namespace egressd::tools {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string line(const char* ts, const char* client, const char* kind, const char* method, const char* host,
                 int port, const char* decision, const char* reason = "", const char* group = "") {
  json j = {{"ts", ts},         {"client", client}, {"group", group},   {"kind", kind},   {"method", method},
            {"host", host},     {"port", port},     {"sni", ""},        {"path", "/"},    {"decision", decision},
            {"reason", reason}, {"rule", ""},       {"status", 200},    {"bytes_up", 1},  {"bytes_down", 2},
            {"duration_ms", 3}, {"upstream", ""}};
  return j.dump();
}

json learn(const std::vector<std::string>& lines) {
  allowlist_learner l;
  for (const auto& x : lines) l.add_line(x);
  return json::parse(l.result().dump());
}

TEST(tools_learn, groups_by_host_and_collects_ports_methods_decisions) {
  auto out = learn({
      line("2026-01-01T10:00:02.000Z", "10.0.0.5:4000", "connect", "CONNECT", "api.openai.com", 443, "report",
           "not_allowed"),
      line("2026-01-01T10:00:01.000Z", "10.0.0.6:4001", "connect", "CONNECT", "API.OpenAI.com.", 443, "allow"),
      line("2026-01-01T10:00:03.000Z", "10.0.0.5:4002", "http", "GET", "deb.debian.org", 80, "deny", "not_allowed"),
      line("2026-01-01T10:00:04.000Z", "10.0.0.5:4003", "http", "HEAD", "deb.debian.org", 80, "allow", "", "ci"),
      line("2026-01-01T10:00:05.000Z", "10.0.0.5:4004", "sni", "", "github.com", 443, "allow"),
      line("2026-01-01T10:00:06.000Z", "10.0.0.5:4005", "connect", "CONNECT", "github.com", 8443, "report", "port"),
  });
  ASSERT_EQ(out["rules"].size(), 3u);
  // Sorted by labels from the right: com.github, com.openai.api, org.debian.deb.
  EXPECT_EQ(out["rules"][0]["pattern"], "github.com");
  EXPECT_EQ(out["rules"][1]["pattern"], "api.openai.com");
  EXPECT_EQ(out["rules"][2]["pattern"], "deb.debian.org");
  const json& openai = out["rules"][1];
  EXPECT_EQ(openai["ports"], json::array({443}));
  EXPECT_EQ(openai["methods"], json::array({"CONNECT"}));
  EXPECT_EQ(openai["requests"], 2);
  EXPECT_EQ(openai["allowed"], 1);
  EXPECT_EQ(openai["reported"], 1);
  EXPECT_EQ(openai["denied"], 0);
  EXPECT_EQ(openai["reasons"], json({{"not_allowed", 1}}));
  EXPECT_EQ(openai["clients"], 2);
  EXPECT_EQ(openai["first_seen"], "2026-01-01T10:00:01.000Z");
  EXPECT_EQ(openai["last_seen"], "2026-01-01T10:00:02.000Z");
  EXPECT_EQ(out["rules"][2]["groups"], json::array({"ci"}));
  EXPECT_EQ(out["rules"][0]["ports"], json::array({443, 8443}));
  EXPECT_EQ(out["requests"], 6);
  EXPECT_EQ(out["first_seen"], "2026-01-01T10:00:01.000Z");
  EXPECT_EQ(out["last_seen"], "2026-01-01T10:00:06.000Z");

  std::vector<std::string> config = out["config"];
  ASSERT_EQ(config.size(), 4u);
  EXPECT_THAT(config[0], HasSubstr("# egressd learn: 3 names, 0 addresses from 6 requests"));
  EXPECT_EQ(config[1], "allow github.com ports=443,8443");
  EXPECT_EQ(config[2], "allow api.openai.com ports=443");
  EXPECT_EQ(config[3], "allow deb.debian.org ports=80 methods=GET,HEAD");
}

TEST(tools_learn, skips_alerts_malformed_and_forwards) {
  auto out = learn({
      R"({"alert":"domain_diversity","client":"10.0.0.5","value":11,"threshold":10,"host":"x.com"})",
      "not json",
      "[1,2]",
      "",
      "   ",
      R"({"kind":"connect","host":"","decision":"allow"})",
      R"({"kind":"connect","host":"a.com","decision":"maybe"})",
      R"({"kind":"forward","host":"host.docker.internal","port":5432,"decision":"allow"})",
      line("2026-01-01T10:00:00.000Z", "10.0.0.5:1", "connect", "CONNECT", "a.com", 443, "allow"),
  });
  EXPECT_EQ(out["alert_lines"], 1);
  EXPECT_EQ(out["skipped_lines"], 4);
  EXPECT_EQ(out["forward_lines"], 1);
  EXPECT_EQ(out["lines"], 7);
  EXPECT_EQ(out["requests"], 1);
  ASSERT_EQ(out["rules"].size(), 1u);
}

TEST(tools_learn, ip_literals_are_networks_never_patterns) {
  auto out = learn({
      line("2026-01-01T10:00:00.000Z", "10.0.0.5:1", "connect", "CONNECT", "10.1.2.3", 5432, "report", "ip_literal"),
      line("2026-01-01T10:00:01.000Z", "10.0.0.5:1", "http", "GET", "0x7f.1", 80, "deny", "ip_literal"),
      line("2026-01-01T10:00:02.000Z", "10.0.0.5:1", "connect", "CONNECT", "[2001:db8::1]", 443, "deny", "ip_literal"),
      line("2026-01-01T10:00:03.000Z", "10.0.0.5:1", "http", "GET", "bad host!", 80, "deny", "bad_request"),
      line("2026-01-01T10:00:04.000Z", "10.0.0.5:1", "http", "GET", "*.evil.com", 80, "deny", "bad_request"),
  });
  EXPECT_EQ(out["rules"].size(), 0u);
  ASSERT_EQ(out["networks"].size(), 3u);
  EXPECT_EQ(out["networks"][0]["address"], "10.1.2.3");
  EXPECT_EQ(out["networks"][1]["address"], "127.0.0.1");
  EXPECT_EQ(out["networks"][2]["address"], "2001:db8::1");
  ASSERT_EQ(out["invalid_hosts"].size(), 2u);
  std::vector<std::string> config = out["config"];
  EXPECT_THAT(config, ElementsAre(HasSubstr("# egressd learn"),
                                  HasSubstr("# allow_net 10.1.2.3/32 ports=5432   # IP literal"),
                                  HasSubstr("# allow_net 127.0.0.1/32 ports=80"),
                                  HasSubstr("# allow_net 2001:db8::1/128 ports=443")));
}

TEST(tools_learn, notes_for_deny_rules_and_private_addresses) {
  auto out = learn({
      line("2026-01-01T10:00:00.000Z", "10.0.0.5:1", "connect", "CONNECT", "blocked.com", 443, "deny", "denied_rule"),
      line("2026-01-01T10:00:00.000Z", "10.0.0.5:1", "connect", "CONNECT", "intra.corp", 443, "deny",
           "non_public_address"),
  });
  std::vector<std::string> config = out["config"];
  EXPECT_THAT(config, ElementsAre(HasSubstr("# egressd learn"),
                                  "# allow blocked.com ports=443   # every request hit a deny rule of the current config",
                                  "allow intra.corp ports=443",
                                  HasSubstr("# intra.corp resolved to a non-public address")));
}

// The config lines always load in egressd (with a listen line), whatever
// hosts the log names.
TEST(tools_learn, config_lines_load) {
  auto out = learn({
      line("t", "c", "connect", "CONNECT", "a-b.example_x.com", 443, "allow"),
      line("t", "c", "http", "PURGE", "x.y", 8080, "report", "not_allowed"),
      line("t", "c", "http", "GET", "1.2.3.4", 80, "deny", "ip_literal"),
      line("t", "c", "http", "GET", "ex ample", 80, "deny", "bad_request"),
      line("t", "c", "http", "GET", "ümlaut.de", 80, "deny", "bad_request"),
  });
  std::string text = "listen 127.0.0.1:1\n";
  for (const auto& l : out["config"]) text += l.get<std::string>() + "\n";
  config::load_options o;
  o.file_access = false;
  auto r = config::load_string(text, "learned.conf", o);
  for (const auto& e : r.errors) ADD_FAILURE() << e.str() << "\n" << text;
}

TEST(tools_learn, command_reads_files_and_reports_missing_ones) {
  char tmpl[] = "/tmp/egressd-learn-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string log = dir + "/access.log";
  std::ofstream(log) << line("2026-01-01T10:00:00.000Z", "10.0.0.5:1", "connect", "CONNECT", "a.com", 443, "allow")
                     << "\n{broken\n";
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  EXPECT_EQ(learn_command({log}, out, err), 0);
  auto read = [](std::FILE* f) {
    std::rewind(f);
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    return s;
  };
  json j = json::parse(read(out));
  EXPECT_EQ(j["rules"][0]["pattern"], "a.com");
  EXPECT_EQ(j["skipped_lines"], 1);
  EXPECT_EQ(j["files"], json::array({log}));

  std::FILE* out2 = std::tmpfile();
  std::FILE* err2 = std::tmpfile();
  EXPECT_EQ(learn_command({log, dir + "/missing.log"}, out2, err2), 1);
  EXPECT_EQ(read(err2), "egressd: cannot read " + dir + "/missing.log: No such file or directory\n");
  EXPECT_EQ(read(out2), "");
  std::FILE* err3 = std::tmpfile();
  EXPECT_EQ(learn_command({dir}, out2, err3), 1);
  EXPECT_EQ(read(err3), "egressd: cannot read " + dir + ": Is a directory\n");
  for (auto* f : {out, err, out2, err2, err3}) std::fclose(f);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace egressd::tools
