#include "proxy/session.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "acl/pattern.hpp"
#include "proxy/inspect/client_hello.hpp"
#include "proxy/inspect/http_framing.hpp"
#include "proxy/server.hpp"
#include "proxy/session_impl.hpp"
#include "proxy/upstream.hpp"
#include "proxy/write_now.hpp"

namespace egressd::proxy {

using acl::reason;

awaitable<void> run_session(tcp::socket client, tcp::endpoint peer, listener_info info, worker& w) {
  std::optional<tunnel_job> job;
  {
    session s(std::move(client), peer, info, w);
    co_await s.run();
    job = s.take_job();
  }  // the session, its buffers and its callees' frames are gone here
  if (job) co_await run_tunnel_job(*job, w);
}

// peer: the address accept() returned (no getpeername per connection).
session::session(tcp::socket s, const tcp::endpoint& peer, listener_info info, worker& w)
    : w_(w), snap_(w.snapshot()), limits_(w.limits()), info_(info), client_(std::move(s)) {
  error_code ec;
  if (peer.port() != 0 || !peer.address().is_unspecified()) {
    client_ip_ = to_acl_address(peer.address()).unmapped();
    client_ip_str_ = client_ip_.to_string();
    who_.addr = client_ip_;
    client_str_ = client_ip_.is_v4() ? fmt::format("{}:{}", client_ip_str_, peer.port())
                                     : fmt::format("[{}]:{}", client_ip_str_, peer.port());
  }
  client_.socket().set_option(tcp::no_delay(true), ec);
  find_group();
  // The connection's kind for egressd_connections_active, by listener (a
  // CONNECT on a proxy listener switches it to connect).
  kind_ = info_.forward                                  ? monitor::metrics::kind::forward
          : info_.mode == config::listen_mode::sni        ? monitor::metrics::kind::sni
          : info_.mode == config::listen_mode::http       ? monitor::metrics::kind::host
                                                          : monitor::metrics::kind::http;
  reg_.client = &client_.socket();
  w_.register_conn(reg_);
  w_.srv().metrics().connection_opened(w_.index(), kind_);
}

void session::find_group() {
  group_.clear();
  for (const auto& g : snap_->groups) {
    bool in = false;
    for (const auto& n : g.nets) in = in || n.contains(client_ip_);
    if (in) {
      group_ = g.name;
      break;
    }
  }
}

// A reload applies to the next request of a kept-alive connection too: a
// domain the operator removed must not stay reachable through an old
// connection. (A tunnel keeps the config it was opened under.)
void session::refresh_config() {
  if (snap_ == w_.snapshot()) return;
  snap_ = w_.snapshot();
  limits_ = w_.limits();
  find_group();
  credentials_.reset();  // they name agents of the old snapshot
  // Its addresses were checked under the old config: dial afresh.
  close_upstream();
}

session::~session() {
  error_code ec;
  client_.socket().close(ec);
  release_upstream();
  w_.unregister_conn(reg_);
  w_.srv().metrics().connection_closed(w_.index(), kind_);
}

void session::release_upstream() {
  if (up_ && ubuf_.size() == 0 && up_snap_ && up_->socket().is_open()) {
    up_->expires_never();
    w_.upstreams().put({std::move(up_key_), std::move(up_addr_), std::move(up_snap_), up_->release_socket(), {}});
    up_.reset();
  }
  close_upstream();
}

void session::close_upstream() {
  if (up_) {
    error_code ec;
    up_->socket().close(ec);
    up_.reset();
  }
  reg_.upstream = nullptr;
  up_key_.clear();
  up_addr_.clear();
  up_snap_.reset();
  ubuf_.clear();
}

void session::finish(monitor::access_record& rec) {
  slot_.release();
  fill_identity(rec);
  record_end(w_, limits_.get(), rule_index_, who_.agent_index, client_key(), start_, rec);
  rule_index_ = -1;
}

bool session::blocked() const {
  return w_.srv().detector().is_blocked(client_key(), std::chrono::steady_clock::now());
}

reason session::admit(const verdict& v, uint64_t* retry_after) {
  const rule_runtime* rt = limits_->at(v.rule_index);
  if (!rt) return reason::none;
  if (rt->conns) {
    slot_ = rt->conns->try_acquire();
    if (!slot_) {
      *retry_after = 1;
      return reason::conns_limited;
    }
  }
  double wait = 0;
  bool ok = true;
  const auto now = acl::token_bucket::clock::now();
  if (rt->lease)
    ok = rt->lease->try_take(&wait);
  else if (rt->client_leases)
    ok = rt->client_leases->try_take(client_ip_str_, &wait);
  else if (rt->bucket)
    ok = rt->bucket->try_take(now, &wait);
  else if (rt->client_buckets)
    ok = rt->client_buckets->try_take(client_key(), now, &wait);
  if (!ok) {
    slot_.release();
    *retry_after = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(wait)));
    return reason::rate_limited;
  }
  return reason::none;
}

acl::bandwidth_limiter* session::bandwidth(const verdict& v) const {
  const rule_runtime* rt = limits_->at(v.rule_index);
  return rt ? rt->bandwidth.get() : nullptr;
}

// Reads bytes until the end of a request head. The first byte of a request
// after the first may take the idle timeout; the rest of a head must arrive
// within the header timeout. Limits: a request line longer than
// header_bytes is 414, a head longer than header_bytes is 431.
awaitable<session::head_status> session::read_head(size_t* head_len, bool first) {
  const size_t limit = snap_->limit.header_bytes;
  size_t scanned = 0;
  for (;;) {
    auto data = static_cast<const char*>(cbuf_.data().data());
    size_t size = cbuf_.size();
    // Look for CRLFCRLF, or LFLF (bare LF: rejected later by the framing check).
    for (size_t i = scanned; i < size; ++i) {
      if (data[i] != '\n') continue;
      if ((i >= 1 && data[i - 1] == '\n') || (i >= 3 && data[i - 1] == '\r' && data[i - 2] == '\n')) {
        *head_len = i + 1;
        co_return head_status::ok;
      }
    }
    scanned = size;
    if (size > limit) {
      std::string_view v(data, size);
      co_return v.find('\n') == std::string_view::npos ? head_status::uri_too_long : head_status::too_large;
    }
    // Small first reads: an idle keep-alive connection or tunnel keeps this
    // buffer's capacity, so it starts at 2 KiB and grows only for big heads.
    size_t want = std::min<size_t>(limit + 1 - size, std::max<size_t>(2048, cbuf_.capacity() - size));
    if (first && size == 0) {
      // A new connection's first request is usually here already (clients
      // write it as soon as connect() returns): take it without arming the
      // stream's timer and an asynchronous read. Later reads on a kept-alive
      // connection would mostly find nothing yet, so they go the usual way.
      const auto b = cbuf_.prepare(want);
      ssize_t got;
      do {
        got = ::recv(client_.socket().native_handle(), b.data(), b.size(), MSG_DONTWAIT);
      } while (got < 0 && errno == EINTR);
      if (got > 0) {
        cbuf_.commit(static_cast<size_t>(got));
        continue;
      }
      if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) co_return head_status::closed;
    }
    client_.expires_after(size == 0 && !first ? snap_->timeout.idle : snap_->timeout.header);
    error_code ec;
    size_t n = co_await client_.async_read_some(cbuf_.prepare(want), net::redirect_error(use_awaitable, ec));
    cbuf_.commit(n);
    if (ec) co_return head_status::closed;
  }
}

awaitable<void> session::run() {
  if (info_.forward) {
    co_await run_forward();
    co_return;
  }
  if (info_.mode == config::listen_mode::sni) {
    co_await run_sni();
    co_return;
  }
  for (bool first = true;; first = false) {
    if (!first && w_.draining()) co_return;
    reg_.idle = !first && cbuf_.size() == 0;
    size_t head_len = 0;
    head_status hs = co_await read_head(&head_len, first);
    reg_.idle = false;
    refresh_config();
    start_ = std::chrono::steady_clock::now();
    monitor::access_record rec;
    rec.kind = monitor::request_kind::http;
    if (hs == head_status::closed) co_return;
    if (hs != head_status::ok) {
      co_await refuse(hs == head_status::too_large ? reason::header_too_large : reason::uri_too_long, {},
                      false, rec);
      co_return;
    }
    std::string_view head(static_cast<const char*>(cbuf_.data().data()), head_len);
    if (auto fe = check_request_head(head); fe != framing_error::none) {
      refusal_detail d;
      d.what = to_string(fe);
      co_await refuse(reason::bad_request, d, false, rec);
      co_return;
    }
    request_parser p;
    p.header_limit(static_cast<std::uint32_t>(std::min<uint64_t>(snap_->limit.header_bytes + 2, UINT32_MAX)));
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    error_code ec;
    p.put(net::buffer(head.data(), head.size()), ec);
    if (ec == http::error::need_more && p.is_header_done()) ec = {};
    if (ec || !p.is_header_done()) {
      refusal_detail d;
      d.what = "unparsable request head";
      co_await refuse(reason::bad_request, d, false, rec);
      co_return;
    }
    cbuf_.consume(head_len);
    // (GCC 12 miscompiles co_await inside a condition: keep it a statement.)
    const bool keep = co_await handle(p, rec);
    if (!keep) co_return;
  }
}

awaitable<bool> session::handle(request_parser& p, monitor::access_record& rec) {
  auto& req = p.get();
  rec.method = std::string(req.method_string());
  uint64_t auth_retry = 0;
  if (const reason ar = identify(req, &auth_retry); ar != reason::none) {
    const bool keep = co_await refuse_auth(p, ar, auth_retry, rec);
    co_return keep;
  }
  if (info_.mode == config::listen_mode::http) rec.kind = monitor::request_kind::host;
  if (req.method() == http::verb::connect && info_.mode == config::listen_mode::http) {
    refusal_detail d;
    d.what = "CONNECT on a transparent HTTP listener";
    co_await refuse(reason::bad_request, d, false, rec);
    co_return false;
  }
  if (req.method() == http::verb::connect) {
    rec.kind = monitor::request_kind::connect;
    auto& m = w_.srv().metrics();
    m.connection_closed(w_.index(), kind_);
    kind_ = monitor::metrics::kind::connect;
    m.connection_opened(w_.index(), kind_);
    co_await handle_connect(p, rec);
    co_return false;
  }
  co_return co_await forward_http(p, rec);
}

verdict session::judge(std::string_view raw_host, bool bracketed, uint16_t port,
                       std::string_view method) const {
  verdict v;
  const auto& policy = *snap_->policy;
  if (bracketed || acl::looks_like_ip_literal(raw_host)) {
    v.host = std::string(raw_host);
    v.literal = acl::parse_ip_literal(raw_host);
    // egressd's own ports on its own addresses are `self` whatever allow_net says.
    if (v.literal && w_.is_self(*v.literal, port)) {
      v.why = reason::self;
    } else if (!v.literal || !policy.covered_by_allow_net(*v.literal, port)) {
      v.why = reason::ip_literal;
    }
    return v;
  }
  auto norm = acl::normalize_host(raw_host);
  if (!norm) {
    v.host = std::string(raw_host);
    v.why = reason::bad_request;
    return v;
  }
  v.host = std::move(*norm);
  acl::decision d = policy.decide(v.host, port, method, who_);
  v.rule = d.matched;
  v.rule_index = d.rule_index;
  // A grant joins the decision as an allow rule would: never against a
  // deny rule, never past the address checks (those come later, on dial).
  if (!d.allowed && (d.why == reason::not_allowed || d.why == reason::port || d.why == reason::method)) {
    if (const state::grant* g = find_grant(v.host, port)) {
      v.grant_rule = "grant:" + g->id;
      return v;
    }
  }
  if (!d.allowed) {
    v.why = d.why;
    if (snap_->report_mode) {
      // Only the allowlist is relaxed; address, protocol and SNI checks still block.
      v.reported = v.why;
      v.why = reason::none;
    }
  }
  return v;
}

const state::grant* session::find_grant(std::string_view name, uint16_t port) const {
  const state::grant_view* grants = w_.grants();
  if (!grants || grants->empty()) return nullptr;
  // The identity of this request: its agent (when credentials named one) and address.
  return grants->match(name, port, who_, snap_->groups, std::chrono::system_clock::now());
}

void session::note_verdict(const verdict& v, monitor::access_record& rec) {
  rule_index_ = v.rule_index;
  rec.host = v.host;
  if (v.rule)
    rec.rule = v.rule->pattern;
  else if (!v.grant_rule.empty())
    rec.rule = v.grant_rule;
  if (v.reported != reason::none) {
    rec.decision = monitor::request_decision::report;
    rec.reason = v.reported;
  }
}

awaitable<void> session::refuse(reason r, const refusal_detail& d, bool keep_alive,
                                monitor::access_record& rec) {
  refusal_detail detail = d;
  detail.agent = who_.agent;
  detail.grantable = snap_->admin.has_value();  // the admin API can grant it
  std::string resp = refusal_response(r, detail, keep_alive);
  rec.status = status_for(r);
  // 5xx: the policy allowed it and the upstream side failed.
  if (rec.status < 500)
    rec.decision = monitor::request_decision::deny;
  else if (rec.decision != monitor::request_decision::report)
    rec.decision = monitor::request_decision::allow;
  rec.reason = r;
  // Recorded before the answer goes out: once the client has read its
  // refusal, GET /v1/denials and the metrics hold it (and the log writer
  // has its line).
  finish(rec);
  error_code ec;
  client_.expires_after(snap_->timeout.header);
  co_await write_now(client_, net::buffer(resp), ec);
}

awaitable<void> session::handle_connect(request_parser& p, monitor::access_record& rec) {
  release_upstream();  // nothing of an earlier plain-HTTP upstream may leak into the tunnel
  target t;
  if (!parse_authority_form(p.get().target(), &t)) {
    refusal_detail d;
    d.what = "CONNECT needs host:port";
    co_await refuse(reason::bad_request, d, false, rec);
    co_return;
  }
  verdict v = judge(t.host, t.bracketed, t.port, {});
  note_verdict(v, rec);
  rec.port = t.port;
  refusal_detail d;
  d.host = v.host;
  d.port = t.port;
  if (v.why == reason::none && !p.is_done()) {
    v.why = reason::bad_request;
    d.what = "CONNECT with a body";
  }
  if (v.why == reason::none && blocked()) v.why = reason::anomaly_block;
  if (v.why == reason::none) v.why = admit(v, &d.retry_after);
  if (v.why != reason::none) {
    if (v.why == reason::denied_rule && v.rule) d.rule = v.rule->pattern;
    co_await refuse(v.why, d, false, rec);
    co_return;
  }

  beast::tcp_stream up(w_.io());
  upstream_guard guard(reg_, up);
  dial_result dr = co_await dial_tunnel(v, t.port, up, rec);
  if (dr.why != reason::none) {
    d.address = dr.refused_address;
    co_await refuse(dr.why, d, false, rec);
    co_return;
  }
  if (v.reported == reason::none) rec.decision = monitor::request_decision::allow;
  rec.status = 200;

  static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
  error_code ec;
  client_.expires_after(snap_->timeout.header);
  co_await write_now(client_, net::buffer(established), ec);
  if (ec) {
    rec.reason = reason::client_closed;
    finish(rec);
    co_return;
  }

  hand_off(up, bandwidth(v), rec);
  // On a TLS port, the whole ClientHello must arrive and name the CONNECT
  // host before a byte goes upstream, and so must a second one after a
  // HelloRetryRequest (the first-flight watch): the tunnel job runs those
  // checks (check_tunnel), so that a tunnel waiting for its ClientHello
  // holds the job and not this session. An IP-literal destination (inside
  // allow_net) has no name to compare, so it is not inspected.
  if (snap_->is_tls_port(t.port) && !v.literal) job_->check = snap_;
}

awaitable<dial_result> session::dial_tunnel(const verdict& v, uint16_t port, beast::tcp_stream& up,
                                            monitor::access_record& rec) {
  dial_result dr = co_await dial(w_, *snap_, v.host, v.literal ? &*v.literal : nullptr, port, up);
  if (dr.why != reason::none) co_return dr;
  rec.upstream = endpoint_string(dr.remote);
  if (!dr.via_parent) co_return dr;

  // Through the parent proxy: CONNECT there, and only a 2xx opens the tunnel.
  std::string authority = v.literal && !v.literal->is_v4() ? fmt::format("[{}]:{}", v.literal->to_string(), port)
                                                           : fmt::format("{}:{}", v.host, port);
  std::string req = fmt::format("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", authority);
  error_code ec;
  up.expires_after(snap_->timeout.connect);
  co_await write_now(up, net::buffer(req), ec);
  http::response_parser<http::empty_body> rp;
  rp.header_limit(16 * 1024);
  if (!ec) co_await http::async_read_header(up, ubuf_, rp, net::redirect_error(use_awaitable, ec));
  up.expires_never();
  if (ec) {
    dr.why = ec == beast::error::timeout ? reason::upstream_timeout : reason::upstream_reset;
  } else if (rp.get().result_int() / 100 != 2) {
    dr.why = reason::upstream_unreachable;
  }
  co_return dr;
}

void session::hand_off(beast::tcp_stream& up, acl::bandwidth_limiter* bw, monitor::access_record& rec) {
  client_.expires_never();
  up.expires_never();
  job_.emplace(client_.release_socket(), up.release_socket());
  tunnel_job& j = *job_;
  reg_.client = nullptr;
  reg_.upstream = nullptr;
  // Only the bytes still to be written travel with the tunnel (usually a
  // ClientHello), not the read buffers' capacity.
  j.first_up.assign(static_cast<const char*>(cbuf_.data().data()), cbuf_.size());
  j.first_down.assign(static_cast<const char*>(ubuf_.data().data()), ubuf_.size());
  fill_identity(rec);
  j.rec = std::move(rec);
  j.start = start_;
  j.slot = std::move(slot_);
  j.limits = limits_;
  j.rule_index = rule_index_;
  j.bw = bw;
  j.idle = snap_->timeout.idle;
  j.client_key = std::string(client_key());
  j.agent_index = who_.agent_index;
  j.kind = kind_;
}

namespace {
// What the end of a tunnel's relay means for its log line.
void note_relay_end(const relay_result& rr, monitor::access_record& rec) {
  rec.bytes_up += rr.bytes_up;
  rec.bytes_down += rr.bytes_down;
  switch (rr.end) {
    case relay_end::idle_timeout: rec.reason = reason::idle_timeout; break;
    case relay_end::upstream_error: rec.reason = reason::upstream_reset; break;
    case relay_end::client_error: rec.reason = reason::client_closed; break;
    case relay_end::closed: rec.reason = reason::shutdown; break;
    case relay_end::done: break;
  }
}

}  // namespace

awaitable<void> run_tunnel_job(tunnel_job& j, worker& w) {
  conn_entry reg;
  reg.client = &j.client;
  reg.upstream = &j.upstream;
  w.register_conn(reg);
  auto& m = w.srv().metrics();
  m.connection_opened(w.index(), j.kind);
  bool go = true;
  if (j.check) go = co_await check_tunnel(j, reg, w);
  if (go) {
    const relay_result rr =
        co_await relay(j.client, j.upstream, j.first_up, j.first_down, j.idle, w.pipes(), j.bw);
    note_relay_end(rr, j.rec);
  }
  w.unregister_conn(reg);
  m.connection_closed(w.index(), j.kind);
  j.slot.release();
  record_end(w, j.limits.get(), j.rule_index, j.agent_index, j.client_key, j.start, j.rec);
}

}  // namespace egressd::proxy
