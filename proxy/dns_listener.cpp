#include "proxy/dns_listener.hpp"

#include <algorithm>
#include <cstdio>
#include <exception>

#include <boost/asio/read.hpp>
#include <fmt/format.h>

#include "monitor/metrics.hpp"
#include "proxy/accept_guard.hpp"
#include "proxy/listen_socket.hpp"

namespace egressd::proxy {
namespace {

using dns_result = monitor::metrics::dns_result;

acl::ip_address to_acl(const net::ip::address& a) {
  if (a.is_v4()) return acl::ip_address::v4(a.to_v4().to_uint());
  return acl::ip_address::v6(a.to_v6().to_bytes()).unmapped();
}

dns_result result_for(dns::outcome o) {
  switch (o) {
    case dns::outcome::address: return dns_result::ok;
    case dns::outcome::nodata: return dns_result::nodata;
    case dns::outcome::nxdomain: return dns_result::denied;
    default: return dns_result::failure;
  }
}

// Port 0 asks for one free port for both protocols: the UDP one, then the
// same for TCP, retried when that TCP port happens to be taken.
constexpr int port_zero_attempts = 16;

}  // namespace

std::vector<uint16_t> dns_listener::decision_ports(const config::snapshot& s) {
  // The protocol defaults, plus what session::destination_port() uses
  // without an original destination: each transparent listener's port=.
  std::vector<uint16_t> ports{80, 443};
  for (const auto& l : s.listens)
    if (l.mode != config::listen_mode::proxy && l.upstream_port != 0) ports.push_back(l.upstream_port);
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

std::shared_ptr<const dns_listener::view> dns_listener::make_view(std::shared_ptr<const config::snapshot> snap) {
  auto v = std::make_shared<view>();
  v->ports = decision_ports(*snap);
  v->snap = std::move(snap);
  return v;
}

std::unique_ptr<dns_listener> dns_listener::start(const config::dns_listen_spec& spec,
                                                  std::shared_ptr<const config::snapshot> snap,
                                                  monitor::metrics& m, std::string* error) {
  error_code ec;
  auto addr = net::ip::make_address(spec.addr.host, ec);
  if (ec) {
    *error = fmt::format("{}:{}: cannot listen on {} (dns_listen): not an IP address", spec.file, spec.line,
                         spec.addr.host);
    return nullptr;
  }
  std::unique_ptr<dns_listener> l(new dns_listener(m));
  for (int i = 0; i < 4; ++i) l->answer_[i] = spec.answer.bytes[i];
  l->view_ = make_view(std::move(snap));
  bool bound = false;
  for (int attempt = 0; attempt < (spec.addr.port == 0 ? port_zero_attempts : 1) && !bound; ++attempt)
    bound = l->bind(addr, spec.addr.port, ec);
  if (!bound) {
    *error = fmt::format("cannot listen on {} (dns_listen): {}", spec.addr.to_string(), ec.message());
    return nullptr;
  }
  auto report = [](std::exception_ptr e) {
    if (e) std::fprintf(stderr, "egressd: dns_listen stopped by an exception\n");
  };
  net::co_spawn(l->io_, l->udp_loop(), report);
  net::co_spawn(l->io_, l->accept_loop(), report);
  l->thread_ = std::thread([p = l.get()] { p->io_.run(); });
  return l;
}

bool dns_listener::bind(const net::ip::address& addr, uint16_t port, error_code& ec) {
  // No SO_REUSEADDR on UDP: on Linux it would let another socket share the
  // port and split the queries.
  udp_ = std::make_unique<udp::socket>(io_);
  udp::endpoint uep(addr, port);
  udp_->open(uep.protocol(), ec);
  if (!ec) udp_->bind(uep, ec);
  if (!ec) port = udp_->local_endpoint(ec).port();
  if (ec) return false;
  acceptor_ = open_acceptor(io_, tcp::endpoint(addr, port), false, 128, ec);
  if (!ec) local_ = acceptor_->local_endpoint(ec);
  return !ec;
}

dns_listener::~dns_listener() {
  net::post(io_, [this] {
    error_code ec;
    if (acceptor_) acceptor_->close(ec);
    if (udp_) udp_->close(ec);
    io_.stop();
  });
  if (thread_.joinable()) thread_.join();
}

void dns_listener::publish(std::shared_ptr<const config::snapshot> snap) {
  net::post(io_, [this, v = make_view(std::move(snap))]() mutable { view_ = std::move(v); });
}

void dns_listener::publish_grants(std::shared_ptr<const state::grant_view> grants) {
  net::post(io_, [this, g = std::move(grants)]() mutable { grants_ = std::move(g); });
}

bool dns_listener::allowed(std::string_view name, const acl::ip_address& client) const {
  const auto& v = *view_;
  const bool granting = grants_ && !grants_->empty();
  acl::host_buffer buf;
  const auto norm = granting ? acl::normalize_host(name, buf) : std::nullopt;
  acl::client_id who;  // DNS carries no credentials: the address alone
  who.addr = client;
  for (uint16_t port : v.ports) {
    const acl::decision d = v.snap->policy->decide(name, port, "", client);
    if (d.allowed) return true;
    // As on the listeners the answer leads to: a grant allows what the
    // allowlist does not name (never what a deny rule denies).
    if (norm && d.why != acl::reason::denied_rule &&
        grants_->match(*norm, port, who, v.snap->groups, std::chrono::system_clock::now()))
      return true;
  }
  return v.snap->report_mode;
}

size_t dns_listener::answer(std::span<const uint8_t> msg, const net::ip::address& from,
                            dns::response_buffer& out) {
  const unsigned shard = metrics_.shared_shard();
  acl::host_buffer name_buf;
  const auto q = dns::parse_query(msg, name_buf);
  if (!q) {
    metrics_.dns_query(shard, dns_result::failure);
    return 0;
  }
  const bool ok = q->needs_decision() && allowed(q->name, to_acl(from));
  const dns::response r = dns::build_response(*q, ok, answer_, out);
  metrics_.dns_query(shard, result_for(r.what));
  return r.size;
}

awaitable<void> dns_listener::udp_loop() {
  // One byte more than the largest query, so an oversized datagram shows.
  std::array<uint8_t, dns::max_query_size + 1> in;
  dns::response_buffer out;
  udp::endpoint from;
  for (;;) {
    error_code ec;
    const size_t n =
        co_await udp_->async_receive_from(net::buffer(in), from, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!udp_->is_open()) co_return;
      continue;
    }
    const size_t len = answer(std::span<const uint8_t>(in.data(), n), from.address(), out);
    if (len == 0) continue;
    co_await udp_->async_send_to(net::buffer(out.data(), len), from, net::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> dns_listener::accept_loop() {
  net::steady_timer backoff(io_);
  for (;;) {
    tcp::socket s(io_);
    error_code ec;
    co_await acceptor_->async_accept(s, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor_->is_open()) co_return;
      // EMFILE and friends: do not spin on an error that repeats.
      if (out_of_descriptors(ec)) note_accept_failure("dns_listen (TCP)", ec);
      backoff.expires_after(accept_backoff);
      co_await backoff.async_wait(net::redirect_error(use_awaitable, ec));
      continue;
    }
    if (tcp_conns_ >= max_tcp_conns) {
      metrics_.dns_query(metrics_.shared_shard(), dns_result::failure);
      s.close(ec);
      continue;
    }
    net::co_spawn(io_, serve_tcp(std::move(s)), [](std::exception_ptr) {});
  }
}

awaitable<void> dns_listener::serve_tcp(tcp::socket s) {
  struct counted {
    int& n;
    explicit counted(int& c) : n(c) { ++n; }
    ~counted() { --n; }
  } count(tcp_conns_);
  error_code ec;
  const net::ip::address peer = s.remote_endpoint(ec).address();
  if (ec) co_return;
  beast::tcp_stream stream(std::move(s));
  std::array<uint8_t, dns::max_query_size> in;
  std::array<uint8_t, 2> prefix;
  dns::response_buffer out;
  for (;;) {
    stream.expires_after(tcp_idle);
    co_await net::async_read(stream, net::buffer(prefix), net::redirect_error(use_awaitable, ec));
    if (ec) break;
    const size_t len = static_cast<size_t>(prefix[0] << 8 | prefix[1]);
    if (len > in.size()) {
      metrics_.dns_query(metrics_.shared_shard(), dns_result::failure);
      break;
    }
    co_await net::async_read(stream, net::buffer(in.data(), len), net::redirect_error(use_awaitable, ec));
    if (ec) break;
    const size_t n = answer(std::span<const uint8_t>(in.data(), len), peer, out);
    // A message we do not answer (not a query) ends the connection rather
    // than leaving the client waiting for a reply that never comes.
    if (n == 0) break;
    prefix[0] = static_cast<uint8_t>(n >> 8);
    prefix[1] = static_cast<uint8_t>(n);
    const std::array<net::const_buffer, 2> reply{net::buffer(prefix), net::buffer(out.data(), n)};
    co_await net::async_write(stream, reply, net::redirect_error(use_awaitable, ec));
    if (ec) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream.socket().close(ec);
}

}  // namespace egressd::proxy
