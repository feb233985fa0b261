// The /v1/ API without sockets: access rules (token, loopback), routing,
// methods, status codes and the one-line JSON errors.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proxy/admin_api.hpp"

using namespace egressd;
using namespace std::chrono_literals;

namespace {

const state::clock::time_point now = state::clock::time_point{} + std::chrono::hours(24 * 20000);

struct fixture {
  state::grant_store store;
  state::denial_feed feed{1};
  proxy::admin_api api{store, feed};
  fixture() {
    std::string err;
    store.load(now, &err);
  }
  proxy::api_response call(std::string_view method, std::string_view target, std::string_view body = {},
                           std::string_view auth = {}) {
    return api.handle(proxy::api_request{method, target, auth, body}, now);
  }
};

void expect_error_line(const proxy::api_response& r) {
  ASSERT_FALSE(r.body.empty());
  EXPECT_EQ(r.body.find('\n'), r.body.size() - 1) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_TRUE(j.at("error").is_string());
}

TEST(AdminApi, WithoutTokenOnlyOnLoopback) {
  fixture f;
  f.api.set_access("", false);
  auto r = f.call("GET", "/v1/grants");
  EXPECT_EQ(r.status, 403);
  expect_error_line(r);
  f.api.set_access("", true);
  EXPECT_EQ(f.call("GET", "/v1/grants").status, 200);
}

TEST(AdminApi, BearerToken) {
  fixture f;
  f.api.set_access("s3cret", false);
  auto r = f.call("GET", "/v1/grants");
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.www_authenticate);
  expect_error_line(r);
  EXPECT_EQ(f.call("GET", "/v1/grants", {}, "Bearer wrong").status, 401);
  EXPECT_EQ(f.call("GET", "/v1/grants", {}, "Bearer s3cret2").status, 401);
  EXPECT_EQ(f.call("GET", "/v1/grants", {}, "Basic czNjcmV0").status, 401);
  EXPECT_EQ(f.call("GET", "/v1/grants", {}, "Bearer s3cret").status, 200);
  EXPECT_EQ(f.call("GET", "/v1/grants", {}, "bearer s3cret").status, 200);
  // The token wins over loopback too.
  f.api.set_access("s3cret", true);
  EXPECT_EQ(f.call("GET", "/v1/grants").status, 401);
}

TEST(AdminApi, GrantLifecycle) {
  fixture f;
  f.api.set_access("", true);
  auto r = f.call("POST", "/v1/grants", R"({"pattern": "files.example.org", "ports": [443], "ttl": "2s"})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto g = nlohmann::json::parse(r.body);
  const std::string id = g.at("id");
  EXPECT_EQ(g.at("pattern"), "files.example.org");
  EXPECT_EQ(g.at("ports"), nlohmann::json::array({443}));
  EXPECT_TRUE(g.at("agent").is_null());
  EXPECT_TRUE(g.at("group").is_null());
  EXPECT_EQ(g.at("persisted"), false);
  EXPECT_EQ(g.at("note"), "");
  EXPECT_EQ(state::parse_time(g.at("expires").get<std::string>()), *state::parse_time(g.at("created").get<std::string>()) + 2s);

  auto list = nlohmann::json::parse(f.call("GET", "/v1/grants").body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].at("id"), id);
  EXPECT_EQ(f.call("GET", "/v1/grants/" + id).status, 200);
  EXPECT_EQ(f.store.view()->grants().size(), 1u);

  EXPECT_EQ(f.call("DELETE", "/v1/grants/" + id).status, 204);
  EXPECT_TRUE(f.store.view()->empty());
  auto gone = f.call("DELETE", "/v1/grants/" + id);
  EXPECT_EQ(gone.status, 404);
  expect_error_line(gone);
  EXPECT_EQ(f.call("DELETE", "/v1/grants/nonsense").status, 404);
}

TEST(AdminApi, BadRequestsAndRoutes) {
  fixture f;
  f.api.set_access("", true);
  for (const char* body : {"", "not json", "{\"pattern\": 1}", "{\"pattern\": \"a.test\", \"x\": 1}"}) {
    auto r = f.call("POST", "/v1/grants", body);
    EXPECT_EQ(r.status, 400) << body;
    expect_error_line(r);
  }
  auto r = f.call("PUT", "/v1/grants", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET, POST");
  EXPECT_EQ(f.call("POST", "/v1/grants/abc").status, 405);
  EXPECT_EQ(f.call("POST", "/v1/denials").status, 405);
  EXPECT_EQ(f.call("GET", "/v1/nothing").status, 404);
  EXPECT_TRUE(f.api.is_api("/v1/grants?x=1"));
  EXPECT_FALSE(f.api.is_api("/metrics"));
  EXPECT_FALSE(f.api.is_api("/v10/grants"));
}

TEST(AdminApi, Denials) {
  fixture f;
  f.api.set_access("", true);
  f.feed.record(0, "", "10.0.0.1", "a.test", 443, acl::reason::not_allowed, now - 10s);
  f.feed.record(0, "build-7", "10.0.0.2", "b.test", 80, acl::reason::port, now - 1s);
  auto all = nlohmann::json::parse(f.call("GET", "/v1/denials").body);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].at("agent"), "build-7");
  EXPECT_EQ(all[0].at("reason"), "port");
  EXPECT_EQ(all[1].at("client"), "10.0.0.1");
  EXPECT_EQ(all[1].at("count"), 1);
  const std::string since = state::format_time(now - 5s);
  auto recent = nlohmann::json::parse(f.call("GET", "/v1/denials?since=" + since).body);
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].at("host"), "b.test");
  // Percent-encoded and with an offset.
  auto enc = f.call("GET", "/v1/denials?since=2000-01-01T00%3A00%3A00%2B01:00");
  EXPECT_EQ(enc.status, 200) << enc.body;
  EXPECT_EQ(nlohmann::json::parse(enc.body).size(), 2u);
  for (const char* bad : {"/v1/denials?since=yesterday", "/v1/denials?since=", "/v1/denials?until=x",
                          "/v1/denials?since=%zz"}) {
    auto r = f.call("GET", bad);
    EXPECT_EQ(r.status, 400) << bad;
    expect_error_line(r);
  }
}

TEST(AdminToken, FileRules) {
  const auto dir = std::filesystem::temp_directory_path() / ("egressd-token-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "token").string();
  std::string token, err;
  std::ofstream(path) << "abc123\n";
  ASSERT_TRUE(proxy::read_admin_token(path, &token, &err)) << err;
  EXPECT_EQ(token, "abc123");
  std::ofstream(path) << "abc123\r\n";
  ASSERT_TRUE(proxy::read_admin_token(path, &token, &err));
  EXPECT_EQ(token, "abc123");
  std::ofstream(path) << "\n";
  EXPECT_FALSE(proxy::read_admin_token(path, &token, &err));
  EXPECT_NE(err.find("empty"), std::string::npos);
  EXPECT_EQ(err.rfind(path + ": ", 0), 0u);
  EXPECT_FALSE(proxy::read_admin_token((dir / "missing").string(), &token, &err));
  EXPECT_NE(err.find("cannot read"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
