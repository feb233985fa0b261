#pragma once
// The admin endpoint's `/v1/` API (SPEC "Grants at run time"): routing,
// bearer-token access, and the grant and denial resources. Transport-free
// (admin.cpp reads the request and writes the answer), so it is tested
// without sockets. Thread contract: every call on one thread, the admin
// endpoint's; it drives the grant_store, which lives on that thread too.
//
// Every answer is JSON; an error is one line {"error": "what is wrong"}.

#include <chrono>
#include <functional>
#include <vector>
#include <optional>
#include <string>
#include <string_view>

#include "state/denial_feed.hpp"
#include "state/grant_store.hpp"

namespace egressd::proxy {

// Request bodies larger than this are refused with 413.
constexpr size_t admin_api_max_body = 64 * 1024;

struct api_request {
  std::string_view method;         // "GET", "POST", ...
  std::string_view target;         // path and query, e.g. /v1/denials?since=...
  std::string_view authorization;  // the Authorization field ("" when absent)
  std::string_view body;
};

struct api_response {
  int status = 200;
  std::string body;              // JSON text ending in '\n'; empty for 204
  bool www_authenticate = false;  // 401: add `WWW-Authenticate: Bearer`
  std::string_view allow;         // 405: the Allow field
};

// Reads `admin token_file=`: the whole file, one trailing newline (LF or
// CRLF) stripped. false and *error ("PATH: what is wrong") when it cannot
// be read or holds no token.
bool read_admin_token(const std::string& path, std::string* token, std::string* error);

class admin_api {
 public:
  admin_api(state::grant_store& grants, const state::denial_feed& denials);

  // token: the bearer token, or empty when no token_file is configured, in
  // which case /v1/ answers only when the admin address is loopback.
  void set_access(const std::string& token, bool loopback_admin);

  bool is_api(std::string_view target) const;
  // The access decision alone (before a body is read): nullopt = admitted,
  // else the 401/403 to send.
  std::optional<api_response> check_access(std::string_view authorization) const;
  // Access check, then the resource.
  api_response handle(const api_request& r, state::clock::time_point now);
  // The sweeper (about once a second): drops expired grants.
  void tick(state::clock::time_point now);

  static api_response error(int status, std::string_view message);

  // `state redis://`: the fleet's denial feed, nullopt when it cannot be
  // read now (GET /v1/denials then answers from this replica's own).
  using shared_denials = std::function<std::optional<std::vector<state::denial_feed::group>>(
      std::optional<state::clock::time_point> since)>;
  void set_shared_denials(shared_denials f) { shared_denials_ = std::move(f); }

 private:
  api_response grants(const api_request& r, std::string_view rest, state::clock::time_point now);
  api_response denials(const api_request& r, std::string_view query) const;

  state::grant_store& grants_;
  const state::denial_feed& denials_;
  shared_denials shared_denials_;
  bool token_set_ = false;
  unsigned char token_digest_[32] = {};
  bool loopback_ = false;
};

}  // namespace egressd::proxy
