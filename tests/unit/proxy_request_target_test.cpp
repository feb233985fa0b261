#include "proxy/request_target.hpp"

#include <gtest/gtest.h>

#include "proxy/responses.hpp"

using namespace egressd::proxy;

TEST(RequestTarget, AbsoluteForm) {
  struct row {
    const char* uri;
    bool ok;
    const char* host;
    uint16_t port;
    const char* path;
  } rows[] = {
      {"http://example.com/a?b=1", true, "example.com", 80, "/a?b=1"},
      {"HTTP://Example.com:8080", true, "Example.com", 8080, "/"},
      {"http://example.com?x", true, "example.com", 80, "?x"},
      {"http://[::1]:81/p", true, "::1", 81, "/p"},
      {"http://127.1/", true, "127.1", 80, "/"},
      {"http://allowed.test@evil.test/", false, "", 0, ""},
      {"http://allowed.test:80@evil.test/", false, "", 0, ""},
      {"https://example.com/", false, "", 0, ""},
      {"ftp://example.com/", false, "", 0, ""},
      {"/relative", false, "", 0, ""},
      {"http:///path", false, "", 0, ""},
      {"http://example.com:0/", false, "", 0, ""},
      {"http://example.com:65536/", false, "", 0, ""},
      {"http://example.com:/", false, "", 0, ""},
      {"http://example.com:80x/", false, "", 0, ""},
      {"http://::1/", false, "", 0, ""},
      {"http://example.com/#frag", false, "", 0, ""},
      {"http://exa%6dple.com/", false, "", 0, ""},
      {"http://example.com\\@evil.test/", false, "", 0, ""},
  };
  for (const auto& r : rows) {
    target t;
    bool ok = parse_absolute_form(r.uri, &t);
    EXPECT_EQ(ok, r.ok) << r.uri;
    if (ok && r.ok) {
      EXPECT_EQ(t.host, r.host) << r.uri;
      EXPECT_EQ(t.port, r.port) << r.uri;
      EXPECT_EQ(t.path, r.path) << r.uri;
    }
  }
}

TEST(RequestTarget, AuthorityForm) {
  target t;
  ASSERT_TRUE(parse_authority_form("api.example.com:443", &t));
  EXPECT_EQ(t.host, "api.example.com");
  EXPECT_EQ(t.port, 443);
  ASSERT_TRUE(parse_authority_form("[2001:db8::1]:443", &t));
  EXPECT_EQ(t.host, "2001:db8::1");
  EXPECT_TRUE(t.bracketed);
  EXPECT_FALSE(parse_authority_form("api.example.com", &t));  // port is mandatory
  EXPECT_FALSE(parse_authority_form("api.example.com:", &t));
  EXPECT_FALSE(parse_authority_form(":443", &t));
  EXPECT_FALSE(parse_authority_form("a@b:443", &t));
  EXPECT_FALSE(parse_authority_form("a b:443", &t));
  EXPECT_FALSE(parse_authority_form("2001:db8::1:443", &t));
}

TEST(RequestTarget, PathWithoutQuery) {
  EXPECT_EQ(path_without_query("/a/b?secret=1"), "/a/b");
  EXPECT_EQ(path_without_query("/a"), "/a");
  EXPECT_EQ(path_without_query("?x"), "");
}

TEST(Responses, StatusForEveryReason) {
  using egressd::acl::reason;
  EXPECT_EQ(status_for(reason::not_allowed), 403);
  EXPECT_EQ(status_for(reason::denied_rule), 403);
  EXPECT_EQ(status_for(reason::port), 403);
  EXPECT_EQ(status_for(reason::method), 403);
  EXPECT_EQ(status_for(reason::non_public_address), 403);
  EXPECT_EQ(status_for(reason::ip_literal), 403);
  EXPECT_EQ(status_for(reason::self), 403);
  EXPECT_EQ(status_for(reason::anomaly_block), 403);
  EXPECT_EQ(status_for(reason::rate_limited), 429);
  EXPECT_EQ(status_for(reason::conns_limited), 429);
  EXPECT_EQ(status_for(reason::bad_request), 400);
  EXPECT_EQ(status_for(reason::header_too_large), 431);
  EXPECT_EQ(status_for(reason::uri_too_long), 414);
  EXPECT_EQ(status_for(reason::dns_failure), 502);
  EXPECT_EQ(status_for(reason::upstream_unreachable), 502);
  EXPECT_EQ(status_for(reason::upstream_reset), 502);
  EXPECT_EQ(status_for(reason::dns_timeout), 504);
  EXPECT_EQ(status_for(reason::upstream_timeout), 504);
}

TEST(Responses, RefusalIsOneActionableLine) {
  refusal_detail d;
  d.host = "evil.example";
  std::string r = refusal_response(egressd::acl::reason::not_allowed, d, true);
  EXPECT_EQ(r.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u);
  EXPECT_NE(r.find("\r\nX-Egressd-Reason: not_allowed\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: keep-alive\r\n"), std::string::npos);
  auto body = r.substr(r.find("\r\n\r\n") + 4);
  EXPECT_EQ(body, "egressd: evil.example is not on the allowlist (ask the operator to add it)\n");
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);

  d.retry_after = 7;
  r = refusal_response(egressd::acl::reason::rate_limited, d, false);
  EXPECT_NE(r.find("\r\nRetry-After: 7\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos);
}

TEST(RequestTarget, HostHeader) {
  target t;
  ASSERT_TRUE(parse_host_header("www.example.com", 80, &t));
  EXPECT_EQ(t.host, "www.example.com");
  EXPECT_EQ(t.port, 80);
  ASSERT_TRUE(parse_host_header("www.example.com:8080", 80, &t));
  EXPECT_EQ(t.port, 8080);
  ASSERT_TRUE(parse_host_header("[::1]", 80, &t));
  EXPECT_EQ(t.host, "::1");
  EXPECT_FALSE(parse_host_header("www.example.com", 0, &t));  // port required
  EXPECT_FALSE(parse_host_header("a@b", 80, &t));
  EXPECT_FALSE(parse_host_header("", 80, &t));
}
