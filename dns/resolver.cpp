#include "dns/resolver.hpp"

#include <ares.h>
#include <netinet/in.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <unordered_map>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "dns/ares_driver.hpp"
#include "dns/cache.hpp"

namespace egressd::dns {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

// Addresses of a c-ares answer, IPv4 first then IPv6, each once, in answer
// order; *ttl gets the smallest TTL of the addresses and CNAMEs.
std::vector<acl::ip_address> collect(const ares_addrinfo* ai, int* ttl) {
  std::vector<acl::ip_address> v4, v6;
  int min_ttl = INT_MAX;
  for (const ares_addrinfo_node* n = ai ? ai->nodes : nullptr; n; n = n->ai_next) {
    acl::ip_address a;
    if (n->ai_family == AF_INET && n->ai_addr) {
      sockaddr_in sin;
      std::memcpy(&sin, n->ai_addr, sizeof sin);
      a.family = acl::ip_address::family_t::v4;
      std::memcpy(a.bytes.data(), &sin.sin_addr, 4);
      if (std::find(v4.begin(), v4.end(), a) == v4.end()) v4.push_back(a);
    } else if (n->ai_family == AF_INET6 && n->ai_addr) {
      sockaddr_in6 sin6;
      std::memcpy(&sin6, n->ai_addr, sizeof sin6);
      a.family = acl::ip_address::family_t::v6;
      std::memcpy(a.bytes.data(), &sin6.sin6_addr, 16);
      if (std::find(v6.begin(), v6.end(), a) == v6.end()) v6.push_back(a);
    } else {
      continue;
    }
    min_ttl = std::min(min_ttl, n->ai_ttl);
  }
  for (const ares_addrinfo_cname* c = ai ? ai->cnames : nullptr; c; c = c->next) {
    min_ttl = std::min(min_ttl, c->ttl);
  }
  *ttl = std::max(min_ttl, 0);
  v4.insert(v4.end(), v6.begin(), v6.end());
  return v4;
}

status map_status(int ares_status, bool have_addresses) {
  switch (ares_status) {
    case ARES_SUCCESS: return have_addresses ? status::ok : status::nxdomain;
    case ARES_ENOTFOUND:
    case ARES_ENODATA: return status::nxdomain;
    case ARES_ETIMEOUT: return status::timeout;
    default: return status::failure;
  }
}

}  // namespace

struct resolver::impl {
  struct flight;

  // One awaiting resolve() call; lives in its coroutine frame. Completed by
  // filling `out` and cancelling `timer` (the timer doubles as the deadline).
  struct waiter {
    explicit waiter(asio::io_context& io) : timer(io) {}
    ~waiter() { unlink(); }
    waiter(const waiter&) = delete;
    waiter& operator=(const waiter&) = delete;
    void unlink() {
      if (!owner) return;
      auto& ws = owner->waiters;
      ws.erase(std::remove(ws.begin(), ws.end(), this), ws.end());
      owner = nullptr;
    }
    asio::steady_timer timer;
    std::optional<result> out;
    flight* owner = nullptr;
  };

  // One upstream lookup, shared by the waiters of one name. Allocated here,
  // owned by c-ares as the callback argument: freed in on_answer, which
  // c-ares calls exactly once (answer, timeout, cancel or destruction).
  struct flight {
    impl* self;
    std::string name;
    std::vector<waiter*> waiters;
    bool joinable = true;  // still indexed in impl::joinable_
  };

  impl(asio::io_context& io, resolver_options o)
      : io_(io), opts_(std::move(o)), cache_(opts_.cache_entries),
        driver_(std::make_unique<ares_driver>(io, opts_.servers, opts_.timeout)) {}

  ~impl() {
    // Fires on_answer(ARES_EDESTRUCTION) for every flight while the rest of
    // this object is still alive; each waiter gets failure.
    driver_.reset();
  }

  void count(status st) {
    switch (st) {
      case status::ok: ++stats_.ok; break;
      case status::nxdomain: ++stats_.nxdomain; break;
      case status::timeout: ++stats_.timeout; break;
      case status::failure: ++stats_.failure; break;
    }
  }

  // Joins the pending lookup of `name` or starts one. May complete w at once.
  void start(const std::string& name, waiter& w) {
    if (auto it = joinable_.find(name); it != joinable_.end()) {
      link(w, *it->second);
      return;
    }
    auto* f = new flight{this, name, {}, true};
    link(w, *f);
    joinable_.emplace(name, f);
    ++stats_.queries;
    driver_->getaddrinfo(name, &impl::on_answer, f);  // f may be gone after this
  }

  static void link(waiter& w, flight& f) {
    w.owner = &f;
    f.waiters.push_back(&w);
  }

  static void on_answer(void* arg, int ares_status, int /*timeouts*/, ares_addrinfo* ai) {
    std::unique_ptr<flight> f(static_cast<flight*>(arg));
    int ttl = 0;
    std::vector<acl::ip_address> addrs = collect(ai, &ttl);
    if (ai) ares_freeaddrinfo(ai);
    f->self->finish(*f, ares_status, std::move(addrs), ttl);
  }

  void finish(flight& f, int ares_status, std::vector<acl::ip_address> addrs, int ttl) {
    if (f.joinable) joinable_.erase(f.name);
    const status st = map_status(ares_status, !addrs.empty());
    if (!shut_down_ && ares_status != ARES_EDESTRUCTION && ares_status != ARES_ECANCELLED) {
      // A late answer (its waiters timed out) still refreshes the cache.
      const auto now = clock::now();
      if (st == status::ok) {
        auto life = std::chrono::seconds(ttl);
        life = std::max(opts_.min_ttl, std::min(life, opts_.max_ttl));
        cache_.insert(f.name, st, addrs, now + life);
      } else if (st == status::nxdomain && opts_.negative_ttl.count() > 0) {
        cache_.insert(f.name, st, {}, now + opts_.negative_ttl);
      }
    }
    if (st != status::ok) addrs.clear();
    for (waiter* w : f.waiters) {
      w->owner = nullptr;
      w->out = result{st, addrs, false};
      count(st);
      w->timer.cancel();  // resumes its coroutine through the io_context
    }
    f.waiters.clear();
  }

  // w's deadline passed before its flight answered.
  void timed_out(waiter& w) {
    if (flight* f = w.owner) {
      // Later callers start afresh instead of joining a lookup that already
      // used up a whole budget.
      if (f->joinable) {
        joinable_.erase(f->name);
        f->joinable = false;
      }
      w.unlink();
    }
    ++stats_.timeout;
  }

  asio::io_context& io_;
  resolver_options opts_;
  cache cache_;
  stats stats_;
  bool shut_down_ = false;
  std::unordered_map<std::string, flight*> joinable_;
  std::unique_ptr<ares_driver> driver_;
};

resolver::resolver(asio::io_context& io, resolver_options opts)
    : impl_(std::make_unique<impl>(io, std::move(opts))) {}

resolver::~resolver() = default;

asio::awaitable<result> resolver::resolve(std::string name) {
  impl& s = *impl_;
  if (auto hit = s.cache_.find(name, clock::now())) {
    ++s.stats_.cache_hits;
    s.count(hit->st);
    co_return std::move(*hit);
  }
  if (s.shut_down_) {
    s.count(status::failure);
    co_return result{};
  }
  impl::waiter w(s.io_);
  s.start(name, w);
  if (!w.out) {
    w.timer.expires_after(s.opts_.timeout);
    boost::system::error_code ec;
    co_await w.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    // An empty `out` means nobody completed w, so the resolver still exists
    // (its destruction completes every waiter): only then touch `s` again.
    if (!w.out) {
      s.timed_out(w);
      co_return result{status::timeout, {}, false};
    }
  }
  co_return std::move(*w.out);
}

void resolver::shutdown() {
  impl_->shut_down_ = true;
  impl_->driver_->cancel_all();
}

const resolver::stats& resolver::counters() const { return impl_->stats_; }

}  // namespace egressd::dns
