#include "proxy/admin.hpp"

#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "proxy/accept_guard.hpp"
#include "proxy/listen_socket.hpp"

namespace egressd::proxy {

std::unique_ptr<admin_server> admin_server::start(const tcp::endpoint& ep, handlers h, std::string* error) {
  std::unique_ptr<admin_server> a(new admin_server());
  a->h_ = std::move(h);
  error_code ec;
  a->acceptor_ = open_acceptor(a->io_, ep, false, 128, ec);
  if (!ec) a->local_ = a->acceptor_->local_endpoint(ec);
  if (ec) {
    *error = fmt::format("cannot listen on {}:{} (admin): {}", ep.address().to_string(), ep.port(), ec.message());
    return nullptr;
  }
  net::co_spawn(a->io_, a->accept_loop(), [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "egressd: admin endpoint stopped by an exception\n");
  });
  a->thread_ = std::thread([p = a.get()] { p->io_.run(); });
  return a;
}

admin_server::~admin_server() {
  net::post(io_, [this] {
    error_code ec;
    acceptor_->close(ec);
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
}

awaitable<void> admin_server::accept_loop() {
  for (;;) {
    tcp::socket s(io_);
    error_code ec;
    co_await acceptor_->async_accept(s, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor_->is_open()) co_return;
      // EMFILE and friends leave the listener readable: wait, never spin.
      if (out_of_descriptors(ec)) note_accept_failure("admin", ec);
      co_await back_off();
      continue;
    }
    net::co_spawn(io_, serve(std::move(s)), [](std::exception_ptr) {});
  }
}

awaitable<void> admin_server::serve(tcp::socket s) {
  beast::tcp_stream stream(std::move(s));
  beast::flat_buffer buf;
  for (;;) {
    http::request_parser<http::empty_body> p;
    p.header_limit(8 * 1024);
    p.body_limit(0);
    error_code ec;
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_read(stream, buf, p, net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    const auto& req = p.get();
    http::response<http::string_body> res;
    res.version(11);
    res.keep_alive(req.keep_alive());
    std::string_view target = req.target();
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, HEAD");
      res.body() = "only GET\n";
    } else if (target == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = h_.metrics();
    } else if (target == "/healthz") {
      res.result(http::status::ok);
      res.body() = "ok\n";
    } else if (target == "/readyz") {
      bool ready = h_.ready();
      res.result(ready ? http::status::ok : http::status::service_unavailable);
      res.body() = ready ? "ready\n" : "not ready\n";
    } else if (target == "/alerts") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "application/json");
      res.body() = h_.alerts();
    } else {
      res.result(http::status::not_found);
      res.body() = "not found: try /metrics, /healthz, /readyz or /alerts\n";
    }
    if (!res.has_content_length() && res[http::field::content_type].empty())
      res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    co_await http::async_write(stream, res, net::redirect_error(use_awaitable, ec));
    if (ec || !res.keep_alive()) co_return;
  }
}

}  // namespace egressd::proxy
