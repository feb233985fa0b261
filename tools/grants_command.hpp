#pragma once
// `egressd grants list | add PATTERN ... | revoke ID`: a CLI over the admin
// API's /v1/grants (SPEC "Grants at run time"). Builds the request bodies
// and reads the answers with nlohmann-json; the HTTP exchange itself is
// passed in (proxy/admin_client in the binary, a fake in tests), so this
// file stays free of Asio. Blocking; main thread only.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace egressd::tools {

struct admin_answer {
  int status = 0;         // 0: no answer (error says why)
  std::string body;
  std::string error;      // transport failure, e.g. "connection refused"
};
// (method, target, JSON body or "", bearer token or "") -> answer
using admin_transport =
    std::function<admin_answer(const std::string&, const std::string&, const std::string&, const std::string&)>;

struct grants_options {
  enum class action_t { list, add, revoke } action = action_t::list;
  std::string admin = "127.0.0.1:9090";  // for messages
  std::string token;                     // "" = no Authorization
  bool json = false;                     // print the server's JSON as is
  // add
  std::string pattern;
  std::string ports;  // "443,8443" as typed; empty = the server's default
  std::string agent, group, ttl, note;
  // revoke
  std::string id;
};

// 0 on a 2xx; 1 with the server's one-line message (or the transport
// failure) on `err`; 2 for a usage error found here (e.g. --ports x).
int grants_command(const grants_options& o, const admin_transport& send, std::FILE* out = stdout,
                   std::FILE* err = stderr);

}  // namespace egressd::tools
