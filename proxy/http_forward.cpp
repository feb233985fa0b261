// Plain-HTTP forwarding of absolute-form requests (session::forward_http):
// judge, connect or reuse the upstream, re-serialize the request head
// (origin-form target, Host from the target, hop-by-hop and Proxy-* removed,
// nothing added), stream the body both ways through a pooled buffer, and
// switch to a raw relay after a 101 to an Upgrade request.

#include <optional>

#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>

#include "proxy/inspect/chunked_prefix.hpp"
#include "proxy/session_impl.hpp"
#include "proxy/upstream.hpp"

namespace egressd::proxy {

using acl::reason;

namespace {

bool token_list_contains(std::string_view list, std::string_view token) {
  size_t i = 0;
  while (i < list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    auto t = list.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (beast::iequals(t, token)) return true;
    i = j + 1;
  }
  return false;
}

// Removes the hop-by-hop fields of RFC 9110 7.6.1 and the Proxy-* ones, plus
// every field the Connection header names. Transfer-Encoding stays: the
// serializer needs it to re-frame a chunked body.
template <class Fields>
void strip_hop_by_hop(Fields& f) {
  std::vector<std::string> named;
  for (auto it = f.find(http::field::connection); it != f.end() && it->name() == http::field::connection; ++it) {
    std::string_view v = it->value();
    size_t i = 0;
    while (i < v.size()) {
      size_t j = v.find(',', i);
      if (j == std::string_view::npos) j = v.size();
      auto t = v.substr(i, j - i);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (!t.empty() && !beast::iequals(t, "close") && !beast::iequals(t, "keep-alive") &&
          !beast::iequals(t, "transfer-encoding"))
        named.emplace_back(t);
      i = j + 1;
    }
  }
  for (const auto& n : named) f.erase(n);
  for (auto fld : {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
                   http::field::proxy_authorization, http::field::proxy_authenticate,
                   http::field::proxy_authentication_info, http::field::te, http::field::trailer,
                   http::field::upgrade})
    f.erase(fld);
}

enum class body_end { ok, read_error, write_error, bad_framing };

// Streams a message body from `in` to `out` through `buf` (Beast's relay
// pattern with buffer_body): whatever arrives is written at once, so a
// server-sent-event stream reaches the client as it is produced.
template <bool isRequest>
awaitable<body_end> relay_body(beast::tcp_stream& in, beast::flat_buffer& in_buf,
                               http::parser<isRequest, http::buffer_body>& p, beast::tcp_stream& out,
                               http::serializer<isRequest, http::buffer_body>& sr, char* buf,
                               std::chrono::milliseconds idle, uint64_t* moved,
                               acl::bandwidth_limiter* bw) {
  error_code ec;
  const auto dir = isRequest ? acl::bandwidth_limiter::direction::up : acl::bandwidth_limiter::direction::down;
  std::optional<net::steady_timer> pace;
  do {
    if (!p.is_done()) {
      size_t size = buffer_pool::buffer_size;
      if (bw) {
        // bandwidth=: read no more than the rule's shared budget allows.
        std::chrono::steady_clock::duration wait{};
        size = bw->grant(dir, std::chrono::steady_clock::now(), size, &wait);
        if (size == 0) {
          if (!pace) pace.emplace(co_await net::this_coro::executor);
          pace->expires_after(wait);
          co_await pace->async_wait(net::redirect_error(use_awaitable, ec));
          continue;
        }
      }
      p.get().body().data = buf;
      p.get().body().size = size;
      in.expires_after(idle);
      co_await http::async_read_some(in, in_buf, p, net::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension ||
            ec == http::error::bad_content_length || ec == http::error::body_limit)
          co_return body_end::bad_framing;
        co_return body_end::read_error;
      }
      size_t got = size - p.get().body().size;
      if (bw && got < size) bw->refund(dir, size - got);
      // Nothing decoded yet (e.g. only a chunk header): an empty buffer must
      // not reach the serializer, which would frame it as the last chunk.
      if (got == 0 && !p.is_done()) continue;
      *moved += got;
      p.get().body().size = got;
      p.get().body().data = got ? buf : nullptr;  // empty data + more=false: just end
      p.get().body().more = !p.is_done();
    } else {
      p.get().body().data = nullptr;
      p.get().body().size = 0;
      p.get().body().more = false;
    }
    out.expires_after(idle);
    co_await http::async_write(out, sr, net::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return body_end::write_error;
  } while (!p.is_done() || !sr.is_done());
  out.expires_never();
  in.expires_never();
  co_return body_end::ok;
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
    if (host != req.end() && parse_authority_form(host->value(), &t)) {
      target_ok = true;
    } else if (host != req.end() && parse_authority_form(fmt::format("{}:80", host->value()), &t)) {
      t.port = destination_port(80);
      target_ok = true;
    }
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

  // Re-serialize the head: origin-form target, Host from the target.
  std::string new_target = t.path.front() == '?' ? fmt::format("/{}", t.path) : std::string(t.path);
  std::string host_field = t.bracketed ? fmt::format("[{}]", t.host) : std::string(t.host);
  if (t.port != 80) host_field += fmt::format(":{}", t.port);
  std::string upgrade;
  if (auto it = req.find(http::field::upgrade); it != req.end()) {
    auto conn = req.find(http::field::connection);
    if (conn != req.end() && token_list_contains(conn->value(), "upgrade")) upgrade = std::string(it->value());
  }
  bool expect_continue = false;
  if (auto it = req.find(http::field::expect); it != req.end() && beast::iequals(it->value(), "100-continue")) {
    expect_continue = true;
    req.erase(http::field::expect);
  }
  strip_hop_by_hop(req.base());
  // A parent proxy (upstream_proxy) gets the absolute form; an origin the
  // origin form.
  if (snap_->upstream_proxy) new_target = fmt::format("http://{}{}", host_field, new_target);
  req.target(new_target);
  req.set(http::field::host, host_field);
  if (!upgrade.empty()) {
    req.set(http::field::connection, "upgrade");
    req.set(http::field::upgrade, upgrade);
  } else {
    req.keep_alive(true);
  }

  // A malformed chunk that arrived with the head is refused before the
  // upstream is contacted at all.
  if (!p.is_done() && p.chunked() &&
      !chunked_prefix_valid({static_cast<const char*>(cbuf_.data().data()), cbuf_.size()})) {
    d.what = "invalid chunked body";
    co_await refuse(reason::bad_request, d, false, rec);
    co_return false;
  }

  std::string key = fmt::format("{}:{}", v.host, t.port);
  if (up_ && up_key_ != key) close_upstream();
  const bool has_body = !p.is_done();
  error_code ec;
  buffer_pool::handle buf;
  std::optional<http::response_parser<http::buffer_body>> rp;
  for (int attempt = 0;; ++attempt) {
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
      up_key_ = key;
      up_addr_ = endpoint_string(dr.remote);
    }
    rec.upstream = up_addr_;
    if (v.reported == reason::none) rec.decision = "allow";

    if (expect_continue && has_body) {
      expect_continue = false;
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      client_.expires_after(snap_->timeout.header);
      co_await net::async_write(client_, net::buffer(cont), net::redirect_error(use_awaitable, ec));
      if (ec) co_return false;
    }

    if (has_body && !buf) buf = w_.buffers().take();
    http::serializer<true, http::buffer_body> req_sr{req};
    // With the body (or its first bytes) already here, head and body leave in
    // one write; otherwise the head goes first so the upstream can start.
    if (!p.is_done() && cbuf_.size() == 0) {
      up_->expires_after(snap_->timeout.idle);
      co_await http::async_write_header(*up_, req_sr, net::redirect_error(use_awaitable, ec));
    }
    body_end be = ec ? body_end::write_error : body_end::ok;
    if (be == body_end::ok) {
      be = co_await relay_body(client_, cbuf_, p, *up_, req_sr, buf.get(), snap_->timeout.idle, &rec.bytes_up,
                               bandwidth(v));
    }
    if (be == body_end::bad_framing) {
      // The upstream saw at most an unfinished message; it is closed, never reused.
      close_upstream();
      d.what = "invalid chunked body";
      co_await refuse(reason::bad_request, d, false, rec);
      co_return false;
    }
    if (be == body_end::read_error) {
      close_upstream();
      rec.reason = acl::to_string(reason::client_closed);
      finish(rec);
      co_return false;
    }

    // The response head; 1xx interim responses are passed on.
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
      http::response<http::empty_body> interim{rp->get().result(), 11};
      for (const auto& f : rp->get()) interim.insert(f.name_string(), f.value());
      client_.expires_after(snap_->timeout.idle);
      co_await http::async_write(client_, interim, net::redirect_error(use_awaitable, ec));
      if (ec) co_return false;
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
  if (!buf) buf = w_.buffers().take();

  auto& res = rp->get();
  rec.status = res.result_int();
  if (res.result() == http::status::switching_protocols) {
    if (upgrade.empty()) {
      close_upstream();
      co_await refuse(reason::upstream_reset, d, false, rec);
      co_return false;
    }
    http::response<http::empty_body> head{res.result(), res.version()};
    for (const auto& f : res) head.insert(f.name_string(), f.value());
    client_.expires_after(snap_->timeout.idle);
    co_await http::async_write(client_, head, net::redirect_error(use_awaitable, ec));
    if (ec) {
      finish(rec);
      co_return false;
    }
    client_.expires_never();
    up_->expires_never();
    tcp::socket cs = client_.release_socket();
    tcp::socket us = up_->release_socket();
    reg_.client = &cs;
    reg_.upstream = &us;
    std::string_view first_up(static_cast<const char*>(cbuf_.data().data()), cbuf_.size());
    std::string_view first_down(static_cast<const char*>(ubuf_.data().data()), ubuf_.size());
    buf.reset();
    relay_result rr = co_await relay(cs, us, first_up, first_down, snap_->timeout.idle, w_.pipes(), bandwidth(v));
    reg_.client = nullptr;
    reg_.upstream = nullptr;
    up_.reset();
    rec.bytes_up += rr.bytes_up;
    rec.bytes_down += rr.bytes_down;
    finish(rec);
    co_return false;
  }

  const bool up_reusable = res.keep_alive() && !rp->need_eof();
  bool client_keep = client_ka && !rp->need_eof();
  if (req.version() < 11 && res.chunked()) {
    res.chunked(false);  // an HTTP/1.0 client cannot read chunks: delimit by close
    client_keep = false;
  }
  strip_hop_by_hop(res.base());
  res.keep_alive(client_keep);
  http::serializer<false, http::buffer_body> res_sr{res};
  // Same for the response: a streamed body (server-sent events) gets its head
  // at once, a body already read goes out with its head in one write.
  if (!rp->is_done() && ubuf_.size() == 0) {
    client_.expires_after(snap_->timeout.idle);
    co_await http::async_write_header(client_, res_sr, net::redirect_error(use_awaitable, ec));
  }
  body_end be = ec ? body_end::write_error : body_end::ok;
  if (be == body_end::ok) {
    be = co_await relay_body(*up_, ubuf_, *rp, client_, res_sr, buf.get(), snap_->timeout.idle, &rec.bytes_down,
                             bandwidth(v));
  }
  if (be != body_end::ok) {
    close_upstream();
    if (be == body_end::read_error || be == body_end::bad_framing)
      rec.reason = acl::to_string(reason::upstream_reset);
    else
      rec.reason = acl::to_string(reason::client_closed);
    finish(rec);
    co_return false;
  }
  if (!up_reusable) close_upstream();
  finish(rec);
  co_return client_keep;
}

}  // namespace egressd::proxy
