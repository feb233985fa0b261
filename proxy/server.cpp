#include "proxy/server.hpp"

#include <sys/socket.h>

#include <thread>

#include <fmt/format.h>

#include "proxy/admin.hpp"
#include "proxy/dns_listener.hpp"
#include "proxy/listen_socket.hpp"
#include "proxy/rule_limits.hpp"
#include "proxy/upstream.hpp"
#include "proxy/worker.hpp"
#include "state/redis_state.hpp"

namespace egressd::proxy {
namespace {

acl::ip_address to_acl(const net::ip::address& a) { return to_acl_address(a).unmapped(); }

// Refuse to share a port with another process: SO_REUSEPORT would let a
// second egressd (same user) silently split the traffic with the first.
bool port_free(const tcp::endpoint& ep, std::string* error) {
  net::io_context io;
  tcp::acceptor probe(io);
  error_code ec;
  probe.open(ep.protocol(), ec);
  if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) probe.bind(ep, ec);
  if (ec) {
    *error = fmt::format("cannot listen on {}:{}: {}", ep.address().to_string(), ep.port(), ec.message());
    return false;
  }
  return true;
}

std::unique_ptr<tcp::acceptor> bind_reuseport(net::io_context& io, const tcp::endpoint& ep,
                                              std::string* error) {
  error_code ec;
  auto a = open_acceptor(io, ep, true, 4096, ec);
  if (!a) *error = fmt::format("cannot listen on {}:{}: {}", ep.address().to_string(), ep.port(), ec.message());
  return a;
}

}  // namespace

std::unique_ptr<server> server::start(std::shared_ptr<const config::snapshot> snap,
                                      std::unique_ptr<monitor::access_log> log, std::string* error) {
  std::unique_ptr<server> s(new server());
  s->log_ = std::move(log);
  unsigned n = snap->threads ? snap->threads : std::max(1u, std::thread::hardware_concurrency());
  // Room for every rule's series, twice over so reloads can add rules.
  s->metrics_ = std::make_unique<monitor::metrics>(
      n, monitor::metrics_registry::default_capacity + 2 * snap->policy->rules().size());
  s->detector_ = std::make_unique<monitor::anomaly_detector>(thresholds(snap->anomaly), snap->limit.max_clients);
  s->metrics_->attach(*s->detector_);
  if (s->log_) s->metrics_->attach(*s->log_);
  if (snap->state.kind == config::state_spec::kind_t::redis) {
    monitor::anomaly_detector* d = s->detector_.get();
    state::redis_state::hooks h;
    h.local_blocks = [d] {
      std::vector<state::redis_state::block> out;
      for (auto& [client, dur] : d->take_new_blocks()) out.push_back({client, dur.count()});
      return out;
    };
    h.apply_remote_block = [d](const state::redis_state::block& b) {
      d->block(b.client, monitor::anomaly_detector::clock::now() + std::chrono::milliseconds(b.remaining_ms));
    };
    s->shared_ = state::redis_state::start(snap->state, *s->metrics_, std::move(h), error);
    if (!s->shared_) return nullptr;
  }
  s->limits_ = rule_limits::build(*snap, nullptr, *s->metrics_, s->shared_.get());
  try {
    for (unsigned i = 0; i < n; ++i)
      s->workers_.push_back(std::make_unique<worker>(*s, i, snap, s->limits_, s->log_.get()));
  } catch (const std::exception& e) {
    *error = fmt::format("cannot start the DNS resolver: {}", e.what());
    return nullptr;
  }

  // Proxy/transparent listeners, then plain forwards: each bound on every worker.
  std::vector<std::pair<config::endpoint, listener_info>> binds;
  for (const auto& l : snap->listens) binds.push_back({l.addr, listener_info{l.mode, {}, l.upstream_port, false, {}}});
  for (const auto& f : snap->forwards)
    binds.push_back({f.listen, listener_info{config::listen_mode::proxy, {}, 0, true, f.target}});
  for (auto& [where, info] : binds) {
    error_code ec;
    auto addr = net::ip::make_address(where.host, ec);
    if (ec) {
      *error = fmt::format("cannot listen on {}: not an IP address", where.host);
      return nullptr;
    }
    tcp::endpoint ep(addr, where.port);
    if (ep.port() != 0 && !port_free(ep, error)) return nullptr;
    for (auto& w : s->workers_) {
      auto a = bind_reuseport(w->io(), ep, error);
      if (!a) return nullptr;
      // Port 0: every worker shares the port the first one got.
      ep = a->local_endpoint(ec);
      info.local = ep;
      w->add_acceptor(std::move(a), info);
    }
    s->own_.push_back({to_acl(ep.address()), ep.address().is_unspecified(), ep.port()});
  }
  if (snap->admin) {
    error_code ec;
    auto addr = net::ip::make_address(snap->admin->host, ec);
    if (ec) {
      *error = fmt::format("cannot listen on {} (admin): not an IP address", snap->admin->host);
      return nullptr;
    }
    tcp::endpoint ep(addr, snap->admin->port);
    if (ep.port() != 0 && !port_free(ep, error)) return nullptr;
    server* self = s.get();
    admin_server::handlers h{[self] { return self->metrics_->render(); },
                             [self] { return self->detector_->recent_alerts_json(); },
                             [self] { return self->ready_.load(); },
                             [self] { self->metrics_->admin_refused(); }};
    s->admin_ = admin_server::start(ep, snap->admin_allow, std::move(h), error);
    if (!s->admin_) return nullptr;
    auto local = s->admin_->local();
    s->own_.push_back({to_acl(local.address()), local.address().is_unspecified(), local.port()});
  }
  for (const auto& d : snap->dns_listens) {
    auto l = dns_listener::start(d, snap, *s->metrics_, error);
    if (!l) return nullptr;
    auto local = l->local();
    s->own_.push_back({to_acl(local.address()), local.address().is_unspecified(), local.port()});
    s->dns_.push_back(std::move(l));
  }
  for (auto& w : s->workers_) w->start();
  s->metrics_->config_reload(true);
  s->ready_ = true;
  return s;
}

monitor::anomaly_thresholds server::thresholds(const config::anomaly_settings& a) {
  monitor::anomaly_thresholds t;
  t.window = a.window;
  t.unique_domains = a.unique_domains;
  t.bytes_out = a.bytes_out;
  t.total_bytes_out = a.total_bytes_out;
  t.requests_per_second = a.requests_per_second;
  t.error_rate = a.error_rate;
  t.min_requests = a.min_requests;
  t.block_for = a.action == config::anomaly_action::block ? a.block_for : std::chrono::milliseconds(0);
  return t;
}

server::~server() {
  for (auto& w : workers_) w->stop_and_join();
  dns_.clear();
  admin_.reset();
}

void server::publish(std::shared_ptr<const config::snapshot> snap) {
  limits_ = rule_limits::build(*snap, limits_.get(), *metrics_, shared_.get());
  detector_->set_thresholds(thresholds(snap->anomaly));
  for (auto& w : workers_) w->publish(snap, limits_);
  for (auto& d : dns_) d->publish(snap);
  if (admin_) admin_->set_allow(snap->admin_allow);
  metrics_->config_reload(true);
}

void server::stop(std::chrono::milliseconds drain) {
  ready_ = false;
  for (auto& w : workers_) w->begin_drain();
  auto deadline = std::chrono::steady_clock::now() + drain;
  for (;;) {
    size_t active = 0;
    for (auto& w : workers_) active += w->active();
    if (active == 0 || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers_) w->force_close();
  // Give closed sessions a moment to write their log lines.
  auto grace = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  for (;;) {
    size_t active = 0;
    for (auto& w : workers_) active += w->active();
    if (active == 0 || std::chrono::steady_clock::now() >= grace) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& w : workers_) w->stop_and_join();
  if (log_) log_->flush();
}

bool server::is_self(const acl::ip_address& a, uint16_t port) const {
  acl::ip_address u = a.unmapped();
  for (const auto& b : own_) {
    if (b.port != port) continue;
    if (b.addr == u) return true;
    // A wildcard listener is reachable on every local address; loopback and
    // the unspecified address are the ones a client can name for sure.
    if (b.any) {
      const auto c = acl::classify(u);
      if (c == acl::address_class::loopback || c == acl::address_class::unspecified ||
          (u.is_v4() && u.v4_host_order() == 0))
        return true;
    }
  }
  return false;
}

bool server::try_admit(uint64_t max_conns) {
  uint64_t n = conns_.fetch_add(1, std::memory_order_relaxed);
  if (n >= max_conns) {
    conns_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void server::release() { conns_.fetch_sub(1, std::memory_order_relaxed); }

}  // namespace egressd::proxy
