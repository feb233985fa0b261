#pragma once
// The HTTP exchange of `egressd grants`: one request to the admin endpoint
// and its answer, on a private io_context with a deadline. Blocking; main
// thread only (control path, never used by the proxy itself).

#include <chrono>
#include <string>

#include "tools/grants_command.hpp"

namespace egressd::proxy {

// admin: ADDR:PORT ([V6]:PORT, or a host name). status 0 with .error on a
// bad address, a failed connection, or no answer within `timeout`.
tools::admin_answer admin_exchange(const std::string& admin, const std::string& method, const std::string& target,
                                   const std::string& body, const std::string& token,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace egressd::proxy
