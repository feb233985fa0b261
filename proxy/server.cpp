#include "proxy/server.hpp"

#include <sys/socket.h>

#include <thread>

#include <fmt/format.h>

#include "proxy/admin.hpp"
#include "proxy/admin_api.hpp"
#include "proxy/dns_listener.hpp"
#include "proxy/listen_socket.hpp"
#include "proxy/rule_limits.hpp"
#include "proxy/self_addresses.hpp"
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
                                      std::unique_ptr<monitor::access_log> log, std::string* error,
                                      std::unique_ptr<state::grant_store> grants, std::string admin_token) {
  std::unique_ptr<server> s(new server());
  s->log_ = std::move(log);
  unsigned n = snap->threads ? snap->threads : std::max(1u, std::thread::hardware_concurrency());
  // Room for every rule's series, twice over so reloads can add rules.
  s->metrics_ = std::make_unique<monitor::metrics>(
      n, monitor::metrics_registry::default_capacity + 2 * snap->policy->rules().size() +
             6 * snap->agents->agents().size());
  s->detector_ = std::make_unique<monitor::anomaly_detector>(thresholds(snap->anomaly), snap->limit.max_clients);
  s->metrics_->attach(*s->detector_);
  s->throttle_ = std::make_unique<acl::auth_throttle>(snap->limit.max_clients);
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
  s->denials_ = std::make_unique<state::denial_feed>(n);
  s->grants_ = grants ? std::move(grants) : std::make_unique<state::grant_store>();
  if (s->shared_) {  // Redis holds the grant set: changes go there first
    state::redis_state* r = s->shared_.get();
    s->grants_->set_shared({[r](const state::grant& g, size_t max_live) { return r->put_grant(g, max_live); },
                            [r](const std::string& id) { return r->erase_grant(id); }});
  }
  try {
    for (unsigned i = 0; i < n; ++i)
      s->workers_.push_back(std::make_unique<worker>(*s, i, snap, s->limits_, s->log_.get()));
  } catch (const std::exception& e) {
    *error = fmt::format("cannot start the DNS resolver: {}", e.what());
    return nullptr;
  }

  // Every change of the grant set reaches every worker as a new view.
  s->grants_->set_publisher([self = s.get()](std::shared_ptr<const state::grant_view> v) {
    self->metrics_->grants_active(static_cast<int64_t>(v->grants().size()));
    for (auto& w : self->workers_) w->publish_grants(v);
    for (auto& d : self->dns_) d->publish_grants(v);
  });

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
    s->note_own(ep.address(), ep.port());
  }
  // DNS responders before the admin endpoint: once its thread runs, grant
  // changes are published to dns_ from there.
  for (const auto& d : snap->dns_listens) {
    auto l = dns_listener::start(d, snap, *s->metrics_, error);
    if (!l) return nullptr;
    auto local = l->local();
    s->note_own(local.address(), local.port());
    l->publish_grants(s->grants_->view());
    s->dns_.push_back(std::move(l));
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
    s->api_ = std::make_unique<admin_api>(*s->grants_, *s->denials_);
    // Without token_file, /v1/ answers only on a loopback admin address.
    s->api_->set_access(admin_token, ep.address().is_loopback());
    if (s->shared_) {
      state::redis_state* r = s->shared_.get();
      s->api_->set_shared_denials([r](std::optional<state::clock::time_point> since) { return r->read_denials(since); });
    }
    admin_server::handlers h{[self] { return self->metrics_->render(); },
                             [self] { return self->detector_->recent_alerts_json(); },
                             [self] { return self->ready_.load(); },
                             [self] { self->metrics_->admin_refused(); }, s->api_.get()};
    s->admin_ = admin_server::start(ep, snap->admin_allow, std::move(h), error);
    if (!s->admin_) return nullptr;
    auto local = s->admin_->local();
    s->note_own(local.address(), local.port());
  }
  // Each replica's denials join the fleet's feed (pushed every second).
  if (s->shared_) s->shared_->set_denial_source([d = s->denials_.get()] { return d->take_changes(); });
  // The shared grant set, read back by the state thread, replaces this
  // replica's on the thread that owns the store: the admin thread, or, with
  // no admin endpoint, the state thread itself (then its only user).
  if (s->shared_) {
    server* self = s.get();
    s->shared_->set_grant_sink([self](int64_t version, std::vector<state::grant> set, bool restart) {
      if (self->admin_) {
        self->admin_->post([self, version, set = std::move(set), restart]() mutable {
          self->grants_->replace_all(version, std::move(set), restart, state::clock::now());
        });
      } else {
        self->grants_->replace_all(version, std::move(set), restart, state::clock::now());
      }
    });
  }
  // The self check: every address of the machine, kept current.
  s->self_watch_ = address_watch::start(
      s->own_addrs_, s->own_ports_,
      [self = s.get()](std::shared_ptr<const self_set> set) {
        for (auto& w : self->workers_) w->publish_self(set);
      },
      error);
  if (!s->self_watch_) return nullptr;
  for (auto& w : s->workers_) w->set_self(s->self_watch_->current());
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
  if (shared_) {
    shared_->set_grant_sink(nullptr);  // no more grant sets for the store or the admin thread
    shared_->set_denial_source(nullptr);
  }
  self_watch_.reset();  // no more posts to the workers
  for (auto& w : workers_) w->stop_and_join();
  dns_.clear();
  admin_.reset();
}

bool server::reload_admin_token(const config::snapshot& snap, std::string* error) {
  std::string token;
  if (!snap.admin_token_file.empty() && !read_admin_token(snap.admin_token_file, &token, error)) return false;
  if (admin_ && api_) {
    admin_api* api = api_.get();
    admin_->post([api, token = std::move(token), loopback = admin_->local().address().is_loopback()] {
      api->set_access(token, loopback);
    });
  }
  return true;
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

void server::note_own(const net::ip::address& a, uint16_t port) {
  own_ports_.push_back(port);
  if (!a.is_unspecified()) own_addrs_.push_back(to_acl(a));
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
