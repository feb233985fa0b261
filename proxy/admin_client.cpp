// egressd grants' HTTP client (see admin_client.hpp).

#include "proxy/admin_client.hpp"

#include <exception>

#include "config/config.hpp"
#include "proxy/asio.hpp"

namespace egressd::proxy {
namespace {

awaitable<void> exchange(tcp::resolver::results_type where, http::request<http::string_body> req,
                         std::chrono::milliseconds timeout, tools::admin_answer& out) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  error_code ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(where, net::redirect_error(use_awaitable, ec));
  if (!ec) co_await http::async_write(stream, req, net::redirect_error(use_awaitable, ec));
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(16u << 20);
  if (!ec) co_await http::async_read(stream, buf, p, net::redirect_error(use_awaitable, ec));
  if (ec) {
    out.error = ec == beast::error::timeout ? "timed out" : ec.message();
    co_return;
  }
  out.status = static_cast<int>(p.get().result_int());
  out.body = std::move(p.get().body());
}

}  // namespace

tools::admin_answer admin_exchange(const std::string& admin, const std::string& method, const std::string& target,
                                   const std::string& body, const std::string& token,
                                   std::chrono::milliseconds timeout) {
  tools::admin_answer out;
  config::endpoint ep;
  if (!config::parse_endpoint(admin, &ep, true)) {
    out.error = "--admin takes ADDR:PORT, e.g. 127.0.0.1:9090";
    return out;
  }
  net::io_context io;
  tcp::resolver resolver(io);
  error_code ec;
  auto where = resolver.resolve(ep.host, std::to_string(ep.port), ec);
  if (ec) {
    out.error = ec.message();
    return out;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, admin);
  req.set(http::field::user_agent, "egressd-grants");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  net::co_spawn(io, exchange(std::move(where), std::move(req), timeout, out), [&out](std::exception_ptr e) {
    if (e && out.status == 0 && out.error.empty()) out.error = "the request failed";
  });
  io.run();
  return out;
}

}  // namespace egressd::proxy
