#include "proxy/worker.hpp"

#include <cstdio>
#include <exception>

#include "proxy/responses.hpp"
#include "proxy/server.hpp"
#include "proxy/session.hpp"

namespace egressd::proxy {

buffer_pool::handle buffer_pool::take() {
  char* p;
  if (free_.empty()) {
    p = new char[buffer_size];
  } else {
    p = free_.back();
    free_.pop_back();
  }
  return handle(p, deleter{this});
}

void buffer_pool::give(char* p) {
  if (free_.size() < 64)
    free_.push_back(p);
  else
    delete[] p;
}

buffer_pool::~buffer_pool() {
  for (char* p : free_) delete[] p;
}

worker::worker(server& srv, unsigned index, std::shared_ptr<const config::snapshot> snap,
               std::shared_ptr<const rule_limits> limits, monitor::access_log* log)
    : srv_(srv),
      index_(index),
      guard_(net::make_work_guard(io_)),
      snap_(std::move(snap)),
      limits_(std::move(limits)),
      log_(log) {
  head_.prev = head_.next = &head_;
  overload_503_ = refusal_response(acl::reason::overloaded, {}, false);
  make_resolver();
}

worker::~worker() { stop_and_join(); }

void worker::make_resolver() {
  dns::resolver_options o;
  for (const auto& r : snap_->resolvers) o.servers.emplace_back(r.host, r.port ? r.port : 53);
  o.timeout = snap_->timeout.dns;
  resolver_ = std::make_unique<dns::resolver>(io_, std::move(o));
}

void worker::add_acceptor(std::unique_ptr<tcp::acceptor> a, listener_info info) {
  acceptors_.emplace_back(std::move(a), info);
}

void worker::start() {
  for (auto& [a, info] : acceptors_) {
    net::co_spawn(io_, accept_loop(*a, info), [](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "egressd: accept loop failed: %s\n", ex.what());
        }
      }
    });
  }
  thread_ = std::thread([this] { io_.run(); });
}

void worker::publish_grants(std::shared_ptr<const state::grant_view> grants) {
  net::post(io_, [this, grants = std::move(grants)]() mutable { grants_ = std::move(grants); });
}

void worker::publish(std::shared_ptr<const config::snapshot> snap, std::shared_ptr<const rule_limits> limits) {
  net::post(io_, [this, snap = std::move(snap), limits = std::move(limits)]() mutable {
    limits_ = std::move(limits);
    bool dns_changed = snap->timeout.dns != snap_->timeout.dns ||
                       snap->resolvers.size() != snap_->resolvers.size();
    for (size_t i = 0; !dns_changed && i < snap->resolvers.size(); ++i)
      dns_changed = snap->resolvers[i].to_string() != snap_->resolvers[i].to_string();
    snap_ = std::move(snap);
    // Lookups in flight keep the old resolver alive only until it is
    // destroyed here, which completes them with a failure: rare (reload
    // changing resolvers) and better than mixing servers.
    if (dns_changed) {
      try {
        make_resolver();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "egressd: keeping the previous resolver: %s\n", e.what());
      }
    }
  });
}

void worker::publish_self(std::shared_ptr<const self_set> set) {
  net::post(io_, [this, set = std::move(set)]() mutable { self_ = std::move(set); });
}

void worker::begin_drain() {
  net::post(io_, [this] {
    draining_ = true;
    for (auto& [a, info] : acceptors_) {
      error_code ec;
      a->close(ec);
    }
    for (conn_entry* c = head_.next; c != &head_; c = c->next) {
      if (c->idle && c->client) {
        error_code ec;
        c->client->close(ec);
      }
    }
  });
}

void worker::force_close() {
  net::post(io_, [this] {
    for (conn_entry* c = head_.next; c != &head_; c = c->next) {
      error_code ec;
      if (c->client) c->client->close(ec);
      if (c->upstream) c->upstream->close(ec);
    }
  });
}

void worker::stop_and_join() {
  if (!thread_.joinable()) return;
  net::post(io_, [this] {
    if (resolver_) resolver_->shutdown();
    guard_.reset();
    io_.stop();
  });
  thread_.join();
}

void worker::register_conn(conn_entry& c) {
  c.next = &head_;
  c.prev = head_.prev;
  head_.prev->next = &c;
  head_.prev = &c;
  active_.fetch_add(1, std::memory_order_relaxed);
}

void worker::unregister_conn(conn_entry& c) {
  if (!c.prev) return;
  c.prev->next = c.next;
  c.next->prev = c.prev;
  c.prev = c.next = nullptr;
  active_.fetch_sub(1, std::memory_order_relaxed);
}

awaitable<void> worker::accept_loop(tcp::acceptor& a, listener_info info) {
  for (;;) {
    tcp::socket s(io_);
    tcp::endpoint peer;
    error_code ec;
    co_await a.async_accept(s, peer, net::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!a.is_open() || ec == net::error::operation_aborted) co_return;
      if (out_of_descriptors(ec)) {
        // At the limit: refuse the newcomer with the spare descriptor, or
        // (none left) back off; never retry at once.
        const bool shed = co_await shed_one(a, info, ec);
        if (shed) continue;
        note_accept_failure("listener", ec);
      }
      co_await back_off();
      continue;
    }
    if (!srv_.try_admit(snap_->limit.max_conns)) {
      // Over limit max_conns: refuse the newcomer, never hurt open ones.
      s.close(ec);
      continue;
    }
    net::co_spawn(io_, run_session(std::move(s), peer, info, *this), [this](std::exception_ptr e) {
      srv_.release();
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "egressd: session ended by an exception: %s\n", ex.what());
        }
      }
    });
  }
}

// At the descriptor limit: frees the spare, accepts one newcomer, tells a
// proxy/http client `503 overloaded` (sni and forward clients cannot read an
// HTTP answer: closed at once), closes it and takes the spare back. Counted
// as egressd_requests_total{reason="overloaded"}. False when there was no
// spare or nothing could be accepted with it.
awaitable<bool> worker::shed_one(tcp::acceptor& a, const listener_info& info, error_code why) {
  if (!spare_.release()) {
    spare_.restore();  // lost to another thread earlier: take a free slot back if there is one
    co_return false;
  }
  tcp::socket s(io_);
  error_code ec;
  a.non_blocking(true, ec);
  if (!ec) a.accept(s, ec);
  if (ec) {
    spare_.restore();
    co_return false;
  }
  const bool http_client = !info.forward && info.mode != config::listen_mode::sni;
  const auto kind = info.forward                                ? monitor::request_kind::forward
                    : info.mode == config::listen_mode::sni ? monitor::request_kind::sni
                                                             : monitor::request_kind::http;
  srv_.metrics().request(index_, kind, monitor::request_decision::deny, acl::reason::overloaded);
  note_accept_failure("listener (newcomer refused: overloaded)", why);
  if (http_client) co_await tell_overloaded(s, overload_503_);
  const int fd = s.release(ec);
  if (ec) {
    s.close(ec);
    spare_.restore();
  } else {
    spare_.adopt(fd);
  }
  co_return true;
}

}  // namespace egressd::proxy
