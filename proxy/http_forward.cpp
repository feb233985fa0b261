// Plain-HTTP forwarding of absolute-form requests (session::forward_http):
// judge, connect or reuse the upstream, re-serialize the request head
// (origin-form target, Host from the target, hop-by-hop and Proxy-* removed,
// nothing added), stream the body both ways through a pooled buffer, and
// switch to a raw relay after a 101 to an Upgrade request.

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <optional>
#include <span>

#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>

#include "proxy/body_relay.hpp"
#include "proxy/http_head.hpp"
#include "proxy/inspect/chunked_prefix.hpp"
#include "proxy/session_impl.hpp"
#include "proxy/upstream.hpp"
#include "proxy/write_now.hpp"

namespace egressd::proxy {

using acl::reason;

namespace {

// Watches the client while egressd waits for the upstream's response head:
// a client that goes away (EOF or reset) must free its conns= slot at once,
// not when the upstream answers or the idle timeout fires. Closing the
// upstream socket ends the wait. Pipelined bytes just end the watch.
struct client_watch {
  bool running = false;
  bool stop = false;
  bool gone = false;
  std::optional<net::steady_timer> done;  // signalled when the watcher ends
};

awaitable<void> watch_client(tcp::socket& client, tcp::socket& upstream, client_watch& cw) {
  error_code ec;
  co_await client.async_wait(tcp::socket::wait_read, net::redirect_error(use_awaitable, ec));
  if (ec || cw.stop) co_return;
  char c;
  const ssize_t n = ::recv(client.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
    cw.gone = true;
    upstream.close(ec);
  }
}

}  // namespace

awaitable<bool> session::forward_http(request_parser& p, monitor::access_record& rec) {
  auto& req = p.get();
  target t;
  bool target_ok = parse_absolute_form(req.target(), &t);
  if (!target_ok && info_.mode == config::listen_mode::http && req.target().starts_with("/")) {
    // Transparent HTTP: the destination is the Host header (the framing
    // check already refused a duplicate Host); the port is the original
    // destination's, or port=, or 80.
    auto host = req.find(http::field::host);
    if (dest_port_ == 0) dest_port_ = destination_port(80);  // fixed for the connection
    target_ok = host != req.end() && parse_host_header(host->value(), dest_port_, &t);
    t.path = req.target();
  }
  if (!target_ok) {
    refusal_detail d;
    d.what = req.target().starts_with("/")
                 ? "a proxy needs an absolute URI (http://host/path); set HTTP_PROXY instead of sending to egressd directly"
                 : "unsupported request target (only http:// URIs; use CONNECT for https)";
    co_await refuse(reason::bad_request, d, false, rec);
    co_return false;
  }
  verdict v = judge(t.host, t.bracketed, t.port, req.method_string());
  note_verdict(v, rec);
  rec.port = t.port;
  rec.path = std::string(path_without_query(t.path));

  // A refusal keeps the connection only when no request body is pending.
  const bool client_ka = req.keep_alive() && !w_.draining();
  refusal_detail d;
  d.host = v.host;
  d.port = t.port;
  d.method = req.method_string();
  if (v.why == reason::none && blocked()) v.why = reason::anomaly_block;
  if (v.why == reason::none) v.why = admit(v, &d.retry_after);
  if (v.why != reason::none) {
    if (v.why == reason::denied_rule && v.rule) d.rule = v.rule->pattern;
    bool ka = client_ka && p.is_done() && v.why != reason::bad_request;
    co_await refuse(v.why, d, ka, rec);
    co_return ka;
  }

  // The head egressd sends: origin-form target (absolute form to a parent
  // proxy), Host from the target, no hop-by-hop or Proxy-* fields.
  std::string& host_field = host_field_;
  host_field.clear();
  if (t.bracketed) host_field += '[';
  host_field += t.host;
  if (t.bracketed) host_field += ']';
  if (t.port != 80) fmt::format_to(std::back_inserter(host_field), ":{}", t.port);
  std::string& target_buf = target_buf_;
  target_buf.clear();
  if (snap_->upstream_proxy) fmt::format_to(std::back_inserter(target_buf), "http://{}", host_field);
  if (t.path.front() == '?') target_buf += '/';
  target_buf += t.path;
  std::string_view upgrade;
  if (auto it = req.find(http::field::upgrade); it != req.end()) {
    auto conn = req.find(http::field::connection);
    if (conn != req.end() && token_list_contains(conn->value(), "upgrade")) upgrade = it->value();
  }
  bool expect_continue = false;
  if (auto it = req.find(http::field::expect); it != req.end() && beast::iequals(it->value(), "100-continue"))
    expect_continue = true;
  head_.clear();
  write_request_head(req, target_buf, host_field, upgrade.empty() ? conn_header::none : conn_header::upgrade,
                     upgrade, head_);

  // A malformed chunk that arrived with the head is refused before the
  // upstream is contacted at all.
  if (!p.is_done() && p.chunked() &&
      !chunked_prefix_valid({static_cast<const char*>(cbuf_.data().data()), cbuf_.size()})) {
    d.what = "invalid chunked body";
    co_await refuse(reason::bad_request, d, false, rec);
    co_return false;
  }

  key_buf_.clear();
  fmt::format_to(std::back_inserter(key_buf_), "{}:{}", v.host, t.port);
  if (up_ && up_key_ != key_buf_) release_upstream();
  const bool has_body = !p.is_done();
  const bool req_chunked = p.chunked();
  error_code ec;
  std::optional<http::response_parser<http::buffer_body>> rp;
  for (int attempt = 0;; ++attempt) {
    if (!up_ && attempt == 0) {
      // An idle connection another client left to the same host:port,
      // checked under this very snapshot.
      if (auto e = w_.upstreams().take(key_buf_, snap_.get())) {
        up_.emplace(std::move(e->sock));
        reg_.upstream = &up_->socket();
        up_key_ = std::move(e->key);
        up_addr_ = std::move(e->addr);
        up_snap_ = std::move(e->snap);
      }
    }
    const bool reused = up_.has_value();
    if (!up_) {
      up_.emplace(w_.io());
      reg_.upstream = &up_->socket();
      dial_result dr = co_await dial(w_, *snap_, v.host, v.literal ? &*v.literal : nullptr, t.port, *up_);
      if (dr.why != reason::none) {
        close_upstream();
        d.address = dr.refused_address;
        bool ka = client_ka && !has_body;
        co_await refuse(dr.why, d, ka, rec);
        co_return ka;
      }
      up_key_ = key_buf_;
      up_addr_ = endpoint_string(dr.remote);
      up_snap_ = snap_;
    }
    rec.upstream = up_addr_;
    if (v.reported == reason::none) rec.decision = monitor::request_decision::allow;

    if (expect_continue && has_body) {
      expect_continue = false;
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      client_.expires_after(snap_->timeout.header);
      co_await write_now(client_, net::buffer(cont), ec);
      if (ec) co_return false;
    }

    body_end be = co_await relay_body(w_, p,
                                      body_route{client_.socket(), cbuf_, up_->socket(), head_, req_chunked,
                                                 snap_->timeout.idle, &rec.bytes_up, bandwidth(v)});
    if (be == body_end::bad_framing) {
      // The upstream saw at most an unfinished message; it is closed, never reused.
      close_upstream();
      d.what = "invalid chunked body";
      co_await refuse(reason::bad_request, d, false, rec);
      co_return false;
    }
    if (be == body_end::read_error) {
      close_upstream();
      rec.reason = reason::client_closed;
      finish(rec);
      co_return false;
    }

    // The response head; 1xx interim responses are passed on.
    client_watch cw;
    if (slot_) {
      cw.running = true;
      cw.done.emplace(w_.io(), net::steady_timer::time_point::max());
      net::co_spawn(w_.io(), watch_client(client_.socket(), up_->socket(), cw), [&cw](std::exception_ptr) {
        cw.running = false;
        cw.done->cancel();
      });
    }
    bool got_head = false;
    while (be == body_end::ok) {
      rp.emplace();
      rp->header_limit(64 * 1024);
      rp->body_limit(std::numeric_limits<std::uint64_t>::max());
      if (req.method() == http::verb::head) rp->skip(true);
      up_->expires_after(snap_->timeout.idle);
      co_await http::async_read_header(*up_, ubuf_, *rp, net::redirect_error(use_awaitable, ec));
      if (ec) break;
      int code = rp->get().result_int();
      if (code >= 200 || code == 101) {
        got_head = true;
        break;
      }
      std::string interim;
      write_response_head(rp->get(), conn_header::none, false, interim);
      // (The watcher, if any, only waits for readability: writing is fine.)
      client_.expires_after(snap_->timeout.idle);
      co_await write_now(client_, net::buffer(interim), ec);
      if (ec) break;
    }
    if (cw.running) {
      cw.stop = true;
      error_code ignore;
      client_.socket().cancel(ignore);
      co_await cw.done->async_wait(net::redirect_error(use_awaitable, ignore));
    }
    if (cw.gone) {
      close_upstream();
      rec.reason = reason::client_closed;
      finish(rec);
      co_return false;
    }
    if (got_head) break;
    close_upstream();
    // A kept-alive upstream may have closed while idle: one fresh try is
    // safe when no body was consumed.
    if (reused && attempt == 0 && !has_body) continue;
    co_await refuse(ec == beast::error::timeout ? reason::upstream_timeout : reason::upstream_reset, d, false,
                    rec);
    co_return false;
  }
  auto& res = rp->get();
  rec.status = res.result_int();
  if (res.result() == http::status::switching_protocols) {
    if (upgrade.empty()) {
      close_upstream();
      co_await refuse(reason::upstream_reset, d, false, rec);
      co_return false;
    }
    head_.clear();
    write_response_head(res, conn_header::upgrade, false, head_);
    client_.expires_after(snap_->timeout.idle);
    co_await write_now(client_, net::buffer(head_), ec);
    if (ec) {
      finish(rec);
      co_return false;
    }
    hand_off(*up_, bandwidth(v), rec);
    up_.reset();
    co_return false;
  }

  const bool up_reusable = res.keep_alive() && !rp->need_eof();
  bool client_keep = client_ka && !rp->need_eof();
  bool chunked_out = res.chunked();
  bool drop_framing = false;
  if (req.version() < 11 && chunked_out) {
    // An HTTP/1.0 client cannot read chunks: the body is delimited by close.
    chunked_out = false;
    drop_framing = true;
    client_keep = false;
  }
  const conn_header conn = !client_keep ? conn_header::close
                           : req.version() < 11 ? conn_header::keep_alive
                                                : conn_header::none;
  head_.clear();
  write_response_head(res, conn, drop_framing, head_);
  body_end be = co_await relay_body(w_, *rp,
                                    body_route{up_->socket(), ubuf_, client_.socket(), head_, chunked_out,
                                               snap_->timeout.idle, &rec.bytes_down, bandwidth(v)});
  if (be != body_end::ok) {
    close_upstream();
    if (be == body_end::read_error || be == body_end::bad_framing)
      rec.reason = reason::upstream_reset;
    else
      rec.reason = reason::client_closed;
    finish(rec);
    co_return false;
  }
  if (!up_reusable) close_upstream();
  finish(rec);
  co_return client_keep;
}

}  // namespace egressd::proxy
