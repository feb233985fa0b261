// egressd grants with a fake admin endpoint: the requests it builds, what it
// prints, and its exit status.

#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tools/grants_command.hpp"

using namespace egressd::tools;

namespace {

struct sent {
  std::string method, target, body, token;
};

struct run_result {
  int rc;
  std::string out, err;
  sent req;
};

run_result run(const grants_options& o, admin_answer answer) {
  run_result r;
  char* out_buf = nullptr;
  char* err_buf = nullptr;
  size_t out_len = 0, err_len = 0;
  std::FILE* out = open_memstream(&out_buf, &out_len);
  std::FILE* err = open_memstream(&err_buf, &err_len);
  r.rc = grants_command(
      o,
      [&](const std::string& m, const std::string& t, const std::string& b, const std::string& tok) {
        r.req = {m, t, b, tok};
        return answer;
      },
      out, err);
  std::fclose(out);
  std::fclose(err);
  r.out.assign(out_buf, out_len);
  r.err.assign(err_buf, err_len);
  std::free(out_buf);
  std::free(err_buf);
  return r;
}

const char* grant_json =
    R"({"id":"0123456789ab","pattern":"files.test","ports":[443,8443],"agent":"build-7","group":null,)"
    R"("expires":"2026-12-03T13:00:00.000Z","note":"n","created":"2026-12-03T12:00:00.000Z","persisted":false})";

TEST(GrantsCommand, AddBuildsTheBody) {
  grants_options o;
  o.action = grants_options::action_t::add;
  o.pattern = "files.test";
  o.ports = "443,8443";
  o.agent = "build-7";
  o.ttl = "30m";
  o.note = "ticket \"42\"";
  o.token = "tok";
  auto r = run(o, {201, grant_json, {}});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.req.method, "POST");
  EXPECT_EQ(r.req.target, "/v1/grants");
  EXPECT_EQ(r.req.token, "tok");
  auto j = nlohmann::json::parse(r.req.body);
  EXPECT_EQ(j, nlohmann::json::parse(
                   R"({"pattern":"files.test","ports":[443,8443],"agent":"build-7","ttl":"30m","note":"ticket \"42\""})"));
  EXPECT_NE(r.out.find("granted 0123456789ab: files.test on ports 443,8443 for agent build-7"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("in memory only"), std::string::npos);
}

TEST(GrantsCommand, BadPortsAreAUsageError) {
  grants_options o;
  o.action = grants_options::action_t::add;
  o.pattern = "files.test";
  for (const char* p : {"x", "0", "65536", "443,", ",443", "44 3"}) {
    o.ports = p;
    auto r = run(o, {201, grant_json, {}});
    EXPECT_EQ(r.rc, 2) << p;
    EXPECT_TRUE(r.req.method.empty()) << p;  // nothing sent
  }
}

TEST(GrantsCommand, ListAndRevoke) {
  grants_options o;
  auto r = run(o, {200, std::string("[") + grant_json + "]", {}});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.req.method, "GET");
  EXPECT_NE(r.out.find("0123456789ab"), std::string::npos);
  EXPECT_NE(r.out.find("agent build-7"), std::string::npos);
  r = run(o, {200, "[]", {}});
  EXPECT_EQ(r.out, "no grants in force\n");
  o.json = true;
  r = run(o, {200, "[]\n", {}});
  EXPECT_EQ(r.out, "[]\n");
  o.json = false;
  o.action = grants_options::action_t::revoke;
  o.id = "0123456789ab";
  r = run(o, {204, "", {}});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.req.method, "DELETE");
  EXPECT_EQ(r.req.target, "/v1/grants/0123456789ab");
  EXPECT_EQ(r.out, "revoked 0123456789ab\n");
}

TEST(GrantsCommand, FailuresPrintOneLine) {
  grants_options o;
  auto r = run(o, {401, "{\"error\":\"wrong token\"}\n", {}});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "egressd: wrong token (HTTP 401)\n");
  r = run(o, {0, "", "Connection refused"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "egressd: cannot reach the admin endpoint at 127.0.0.1:9090: Connection refused\n");
  r = run(o, {502, "bad gateway\n", {}});
  EXPECT_EQ(r.err, "egressd: bad gateway (HTTP 502)\n");
}

}  // namespace
