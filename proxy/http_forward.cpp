// Plain-HTTP forwarding of absolute-form requests (session::forward_http),
// in phases that each do one thing: resolve the target, admit it, build
// the head egressd sends, get an upstream (pooled or dialled), send the
// request (head and body), read the response head (1xx passed on), relay
// the response (body, or a raw relay after a 101 to an Upgrade request).
// The state that crosses phases is forward_state; a phase that ends the
// request (a refusal, an error) says so by returning the keep-alive answer
// forward_http gives back, std::nullopt to go on.

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
#include "proxy/inspect/chunked.hpp"
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

// What one forwarded request carries from phase to phase.
struct forward_state {
  forward_state(request_parser& parser, monitor::access_record& record) : p(parser), rec(record) {}
  request_parser& p;
  monitor::access_record& rec;
  target t;                // where the request goes
  verdict v;               // judged and admitted
  refusal_detail d;        // what a refusal from here on tells the client
  bool client_ka = false;  // the client asked to keep the connection (and we are not draining)
  bool has_body = false, req_chunked = false, expect_continue = false;
  std::string_view upgrade;  // the Upgrade protocol when the client asked for one
  bool reused = false;       // this attempt's upstream came from the pool or the last request
  bool request_sent = false;  // this attempt's head and body reached the upstream's socket
  error_code ec;             // the last upstream error (timeout or reset for the refusal)
  std::optional<http::response_parser<http::buffer_body>> rp;
};

awaitable<bool> session::forward_http(request_parser& p, monitor::access_record& rec) {
  forward_state fs(p, rec);
  const bool target_ok = resolve_forward_target(fs);
  if (!target_ok) {
    co_await refuse(reason::bad_request, fs.d, false, rec);
    co_return false;
  }
  std::optional<bool> end = co_await admit_forward(fs);
  if (end) co_return *end;
  end = co_await build_forward_head(fs);
  if (end) co_return *end;
  for (int attempt = 0;; ++attempt) {
    end = co_await get_upstream(fs, attempt);
    if (end) co_return *end;
    end = co_await send_request(fs);
    if (end) co_return *end;
    const head_read h = co_await read_response_head(fs, attempt);
    if (h == head_read::got) break;
    if (h == head_read::ended) co_return false;
  }
  const bool keep = co_await relay_response(fs);
  co_return keep;
}

// The destination from the absolute-form target, or (transparent HTTP) from
// the Host header. False: fs.d says why not.
bool session::resolve_forward_target(forward_state& fs) {
  auto& req = fs.p.get();
  bool ok = parse_absolute_form(req.target(), &fs.t);
  if (!ok && info_.mode == config::listen_mode::http && req.target().starts_with("/")) {
    // Transparent HTTP: the destination is the Host header (the framing
    // check already refused a duplicate Host); the port is the original
    // destination's, or port=, or 80.
    auto host = req.find(http::field::host);
    if (dest_port_ == 0) dest_port_ = destination_port(80);  // fixed for the connection
    ok = host != req.end() && parse_host_header(host->value(), dest_port_, &fs.t);
    fs.t.path = req.target();
  }
  if (!ok)
    fs.d.what = req.target().starts_with("/")
                    ? "a proxy needs an absolute URI (http://host/path); set HTTP_PROXY instead of sending to egressd directly"
                    : "unsupported request target (only http:// URIs; use CONNECT for https)";
  return ok;
}

// The allowlist, action=block and the rule's conns=/rate= limits.
awaitable<std::optional<bool>> session::admit_forward(forward_state& fs) {
  auto& req = fs.p.get();
  fs.v = judge(fs.t.host, fs.t.bracketed, fs.t.port, req.method_string());
  auto& v = fs.v;
  note_verdict(v, fs.rec);
  fs.rec.port = fs.t.port;
  fs.rec.path = std::string(path_without_query(fs.t.path));

  // A refusal keeps the connection only when no request body is pending.
  fs.client_ka = req.keep_alive() && !w_.draining();
  fs.d.host = v.host;
  fs.d.port = fs.t.port;
  fs.d.method = req.method_string();
  if (v.why == reason::none && blocked()) v.why = reason::anomaly_block;
  if (v.why == reason::none) v.why = admit(v, &fs.d.retry_after);
  if (v.why == reason::none) co_return std::nullopt;
  if (v.why == reason::denied_rule && v.rule) fs.d.rule = v.rule->pattern;
  const bool ka = fs.client_ka && fs.p.is_done() && v.why != reason::bad_request;
  co_await refuse(v.why, fs.d, ka, fs.rec);
  co_return ka;
}

// The head egressd sends (into head_): origin-form target (absolute form to
// a parent proxy), Host from the target, no hop-by-hop or Proxy-* fields.
// A malformed chunk that arrived with the head is refused here, before the
// upstream is contacted at all.
awaitable<std::optional<bool>> session::build_forward_head(forward_state& fs) {
  auto& req = fs.p.get();
  const target& t = fs.t;
  host_field_.clear();
  if (t.bracketed) host_field_ += '[';
  host_field_ += t.host;
  if (t.bracketed) host_field_ += ']';
  if (t.port != 80) fmt::format_to(std::back_inserter(host_field_), ":{}", t.port);
  target_buf_.clear();
  if (snap_->upstream_proxy) fmt::format_to(std::back_inserter(target_buf_), "http://{}", host_field_);
  if (t.path.front() == '?') target_buf_ += '/';
  target_buf_ += t.path;
  if (auto it = req.find(http::field::upgrade); it != req.end()) {
    auto conn = req.find(http::field::connection);
    if (conn != req.end() && token_list_contains(conn->value(), "upgrade")) fs.upgrade = it->value();
  }
  if (auto it = req.find(http::field::expect); it != req.end() && beast::iequals(it->value(), "100-continue"))
    fs.expect_continue = true;
  head_.clear();
  write_request_head(req, target_buf_, host_field_, fs.upgrade.empty() ? conn_header::none : conn_header::upgrade,
                     fs.upgrade, head_);
  fs.has_body = !fs.p.is_done();
  fs.req_chunked = fs.p.chunked();
  if (fs.has_body && fs.req_chunked &&
      !chunked_prefix_valid({static_cast<const char*>(cbuf_.data().data()), cbuf_.size()})) {
    fs.d.what = "invalid chunked body";
    co_await refuse(reason::bad_request, fs.d, false, fs.rec);
    co_return false;
  }
  key_buf_.clear();
  fmt::format_to(std::back_inserter(key_buf_), "{}:{}", fs.v.host, fs.t.port);
  if (up_ && up_key_ != key_buf_) release_upstream();
  co_return std::nullopt;
}

// up_ for this attempt: the connection kept from the last request to the
// same host:port, else (first attempt) an idle one from the worker's pool,
// else a fresh dial.
awaitable<std::optional<bool>> session::get_upstream(forward_state& fs, int attempt) {
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
  fs.reused = up_.has_value();
  if (!up_) {
    const verdict& v = fs.v;
    up_.emplace(w_.io());
    reg_.upstream = &up_->socket();
    dial_result dr = co_await dial(w_, *snap_, v.host, v.literal ? &*v.literal : nullptr, fs.t.port, *up_);
    if (dr.why != reason::none) {
      close_upstream();
      fs.d.address = dr.refused_address;
      const bool ka = fs.client_ka && !fs.has_body;
      co_await refuse(dr.why, fs.d, ka, fs.rec);
      co_return ka;
    }
    up_key_ = key_buf_;
    up_addr_ = endpoint_string(dr.remote);
    up_snap_ = snap_;
  }
  fs.rec.upstream = up_addr_;
  if (fs.v.reported == reason::none) fs.rec.decision = monitor::request_decision::allow;
  co_return std::nullopt;
}

// 100 Continue to a client that waits for it, then the head and the body.
// A failed write of the head to a reused upstream ends in the response-head
// phase (which may retry); a bad or broken request body ends here.
awaitable<std::optional<bool>> session::send_request(forward_state& fs) {
  if (fs.expect_continue && fs.has_body) {
    fs.expect_continue = false;
    static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    client_.expires_after(snap_->timeout.header);
    co_await write_now(client_, net::buffer(cont), fs.ec);
    if (fs.ec) co_return false;
  }
  const body_end be = co_await relay_body(w_, fs.p,
                                          body_route{client_.socket(), cbuf_, up_->socket(), head_, fs.req_chunked,
                                                     snap_->timeout.idle, &fs.rec.bytes_up, bandwidth(fs.v)});
  if (be == body_end::bad_framing) {
    // The upstream saw at most an unfinished message; it is closed, never reused.
    close_upstream();
    fs.d.what = "invalid chunked body";
    co_await refuse(reason::bad_request, fs.d, false, fs.rec);
    co_return false;
  }
  if (be == body_end::read_error) {
    close_upstream();
    fs.rec.reason = reason::client_closed;
    finish(fs.rec);
    co_return false;
  }
  fs.request_sent = be == body_end::ok;
  co_return std::nullopt;
}

// The response head into fs.rp; 1xx interim responses are passed on. While
// it waits, a client with a conns= slot is watched so that its going away
// frees the slot at once.
awaitable<session::head_read> session::read_response_head(forward_state& fs, int attempt) {
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
  if (fs.request_sent) got_head = co_await read_final_head(fs);
  if (cw.running) {
    cw.stop = true;
    error_code ignore;
    client_.socket().cancel(ignore);
    co_await cw.done->async_wait(net::redirect_error(use_awaitable, ignore));
  }
  if (cw.gone) {
    close_upstream();
    fs.rec.reason = reason::client_closed;
    finish(fs.rec);
    co_return head_read::ended;
  }
  if (got_head) co_return head_read::got;
  close_upstream();
  // A kept-alive upstream may have closed while idle: one fresh try is
  // safe when no body was consumed.
  if (fs.reused && attempt == 0 && !fs.has_body) co_return head_read::retry;
  co_await refuse(fs.ec == beast::error::timeout ? reason::upstream_timeout : reason::upstream_reset, fs.d, false,
                  fs.rec);
  co_return head_read::ended;
}

// Reads heads until a final one (>= 200, or 101), writing 1xx ones to the
// client. False with fs.ec on an error either way.
awaitable<bool> session::read_final_head(forward_state& fs) {
  for (;;) {
    fs.rp.emplace();
    fs.rp->header_limit(64 * 1024);
    fs.rp->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (fs.p.get().method() == http::verb::head) fs.rp->skip(true);
    up_->expires_after(snap_->timeout.idle);
    co_await http::async_read_header(*up_, ubuf_, *fs.rp, net::redirect_error(use_awaitable, fs.ec));
    if (fs.ec) co_return false;
    const int code = fs.rp->get().result_int();
    if (code >= 200 || code == 101) co_return true;
    std::string interim;
    write_response_head(fs.rp->get(), conn_header::none, false, interim);
    // (The watcher, if any, only waits for readability: writing is fine.)
    client_.expires_after(snap_->timeout.idle);
    co_await write_now(client_, net::buffer(interim), fs.ec);
    if (fs.ec) co_return false;
  }
}

// The final response: a 101 hands both sockets to a raw relay; anything
// else is re-headed and its body relayed. Returns whether the client
// connection stays for another request.
awaitable<bool> session::relay_response(forward_state& fs) {
  auto& req = fs.p.get();
  auto& res = fs.rp->get();
  fs.rec.status = res.result_int();
  if (res.result() == http::status::switching_protocols) {
    const bool keep = co_await switch_protocols(fs);
    co_return keep;
  }
  const bool up_reusable = res.keep_alive() && !fs.rp->need_eof();
  bool client_keep = fs.client_ka && !fs.rp->need_eof();
  bool keep_chunks = res.chunked();
  bool drop_framing = false;
  if (req.version() < 11 && keep_chunks) {
    // An HTTP/1.0 client cannot read chunks: the body is delimited by close.
    keep_chunks = false;
    drop_framing = true;
    client_keep = false;
  }
  const conn_header conn = !client_keep ? conn_header::close
                           : req.version() < 11 ? conn_header::keep_alive
                                                : conn_header::none;
  head_.clear();
  write_response_head(res, conn, drop_framing, head_);
  const body_end be = co_await relay_body(w_, *fs.rp,
                                          body_route{up_->socket(), ubuf_, client_.socket(), head_, keep_chunks,
                                                     snap_->timeout.idle, &fs.rec.bytes_down, bandwidth(fs.v)});
  if (be != body_end::ok) {
    close_upstream();
    fs.rec.reason = be == body_end::write_error ? reason::client_closed : reason::upstream_reset;
    finish(fs.rec);
    co_return false;
  }
  if (!up_reusable) close_upstream();
  finish(fs.rec);
  co_return client_keep;
}

// 101 to an Upgrade request: the head goes to the client, then both sockets
// to a tunnel job. A 101 nobody asked for is refused.
awaitable<bool> session::switch_protocols(forward_state& fs) {
  if (fs.upgrade.empty()) {
    close_upstream();
    co_await refuse(reason::upstream_reset, fs.d, false, fs.rec);
    co_return false;
  }
  head_.clear();
  write_response_head(fs.rp->get(), conn_header::upgrade, false, head_);
  client_.expires_after(snap_->timeout.idle);
  co_await write_now(client_, net::buffer(head_), fs.ec);
  if (fs.ec) {
    finish(fs.rec);
    co_return false;
  }
  hand_off(*up_, bandwidth(fs.v), fs.rec);
  up_.reset();
  co_return false;
}

}  // namespace egressd::proxy
