#include "proxy/admin.hpp"

#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "proxy/admin_api.hpp"
#include "proxy/accept_guard.hpp"
#include "proxy/listen_socket.hpp"
#include "proxy/upstream.hpp"

namespace egressd::proxy {

std::unique_ptr<admin_server> admin_server::start(const tcp::endpoint& ep, std::vector<acl::cidr> allow, handlers h,
                                                  std::string* error) {
  std::unique_ptr<admin_server> a(new admin_server());
  a->h_ = std::move(h);
  a->allow_ = std::move(allow);
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
  if (a->h_.api)
    net::co_spawn(a->io_, a->tick_loop(), [](std::exception_ptr e) {
      if (e) std::fprintf(stderr, "egressd: grant sweeper stopped by an exception\n");
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

void admin_server::set_allow(std::vector<acl::cidr> allow) {
  net::post(io_, [this, allow = std::move(allow)]() mutable { allow_ = std::move(allow); });
}

bool admin_server::admitted(const tcp::socket& s) const {
  if (allow_.empty()) return true;
  error_code ec;
  const auto peer = s.remote_endpoint(ec);
  if (ec) return false;  // already gone: nothing to serve
  const acl::ip_address a = to_acl_address(peer.address());
  for (const auto& c : allow_)
    if (c.contains(a)) return true;
  return false;
}

void admin_server::post(std::function<void()> fn) { net::post(io_, std::move(fn)); }

// The grant sweeper: expired grants leave the published view within about a
// second (decisions never honour them anyway: the view checks expiry).
awaitable<void> admin_server::tick_loop() {
  net::steady_timer t(io_);
  for (;;) {
    t.expires_after(std::chrono::seconds(1));
    error_code ec;
    co_await t.async_wait(net::redirect_error(use_awaitable, ec));
    if (ec || !acceptor_->is_open()) co_return;
    h_.api->tick(std::chrono::system_clock::now());
  }
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
    if (!admitted(s)) {
      s.close(ec);  // before reading a byte
      if (h_.refused) h_.refused();
      continue;
    }
    net::co_spawn(io_, serve(std::move(s)), [](std::exception_ptr) {});
  }
}

awaitable<void> admin_server::serve(tcp::socket s) {
  beast::tcp_stream stream(std::move(s));
  beast::flat_buffer buf;
  for (;;) {
    http::request_parser<http::string_body> p;
    p.header_limit(8 * 1024);
    p.body_limit(admin_api_max_body);
    error_code ec;
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_read_header(stream, buf, p, net::redirect_error(use_awaitable, ec));
    // A Content-Length over the limit fails here, with the head parsed.
    const bool too_large = ec == http::error::body_limit;
    if (ec && !too_large) co_return;
    const auto& req = p.get();
    http::response<http::string_body> res;
    res.version(11);
    res.keep_alive(req.keep_alive() && !too_large);
    std::string_view target = req.target();
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const bool api = h_.api && h_.api->is_api(target);
    std::optional<api_response> answer;
    if (too_large) {
      answer = admin_api::error(413, "the request body is larger than 64K");
    } else if (api) {
      // Refused before its body is read; the connection then closes.
      answer = h_.api->check_access(req[http::field::authorization]);
      if (answer) res.keep_alive(false);
    }
    if (!answer && !p.is_done()) {
      // curl asks before sending a larger body; answer rather than make it wait.
      if (beast::iequals(req[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, 11};
        co_await http::async_write(stream, cont, net::redirect_error(use_awaitable, ec));
        if (ec) co_return;
      }
      co_await http::async_read(stream, buf, p, net::redirect_error(use_awaitable, ec));
      if (ec == http::error::body_limit) {
        answer = admin_api::error(413, "the request body is larger than 64K");
        res.keep_alive(false);
      } else if (ec) {
        co_return;
      }
    }
    if (!answer && api) {
      api_request ar{req.method_string(), req.target(), req[http::field::authorization], p.get().body()};
      answer = h_.api->handle(ar, std::chrono::system_clock::now());
    }
    if (answer) {
      res.result(static_cast<unsigned>(answer->status));
      if (answer->www_authenticate) res.set(http::field::www_authenticate, "Bearer");
      if (!answer->allow.empty()) res.set(http::field::allow, answer->allow);
      if (!answer->body.empty()) res.set(http::field::content_type, "application/json");
      res.body() = std::move(answer->body);
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
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
      res.body() = h_.api ? "not found: try /metrics, /healthz, /readyz, /alerts or /v1/grants\n"
                          : "not found: try /metrics, /healthz, /readyz or /alerts\n";
    }
    if (!res.has_content_length() && res[http::field::content_type].empty() && res.result_int() != 204)
      res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    co_await http::async_write(stream, res, net::redirect_error(use_awaitable, ec));
    if (ec || !res.keep_alive()) co_return;
  }
}

}  // namespace egressd::proxy
