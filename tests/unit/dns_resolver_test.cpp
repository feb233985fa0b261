// dns::resolver against a DNS server of the test's own on 127.0.0.1.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "dns/resolver.hpp"
#include "tests/unit/dns_fake_server.hpp"

namespace egressd::dns {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::fake_dns_server;
using ::testing::ElementsAre;

using steady = std::chrono::steady_clock;

std::vector<std::string> texts(const result& r) {
  std::vector<std::string> out;
  for (const auto& a : r.addresses) out.push_back(a.to_string());
  return out;
}

struct outcome {
  std::optional<result> res;
  steady::duration elapsed{};
};

class ResolverTest : public ::testing::Test {
 protected:
  resolver_options opts(std::chrono::milliseconds timeout = 2000ms) {
    resolver_options o;
    o.servers = {{"127.0.0.1", server_.port()}};
    o.timeout = timeout;
    return o;
  }

  // Spawns one resolve(); the outcome is filled when it completes.
  std::shared_ptr<outcome> spawn(resolver& r, std::string name) {
    auto out = std::make_shared<outcome>();
    const auto start = steady::now();
    asio::co_spawn(io_, r.resolve(std::move(name)), [out, start](std::exception_ptr e, result res) {
      if (e) std::rethrow_exception(e);
      out->elapsed = steady::now() - start;
      out->res = std::move(res);
    });
    return out;
  }

  // Runs the io_context until every outcome is filled (bounded).
  void wait_all(const std::vector<std::shared_ptr<outcome>>& outs) {
    io_.restart();
    const auto give_up = steady::now() + 10s;
    auto done = [&] {
      for (const auto& o : outs) {
        if (!o->res) return false;
      }
      return true;
    };
    while (!done() && steady::now() < give_up) {
      if (io_.run_one_for(100ms) == 0 && io_.stopped()) io_.restart();
    }
    ASSERT_TRUE(done()) << "resolve did not complete";
  }

  result run(resolver& r, std::string name) {
    auto o = spawn(r, std::move(name));
    wait_all({o});
    return o->res.value_or(result{});
  }

  // Lets c-ares finish whatever it still has in flight.
  void drain() {
    io_.restart();
    io_.run_for(3s);
  }

  fake_dns_server server_;
  asio::io_context io_;
};

TEST_F(ResolverTest, ReturnsV4ThenV6Deduplicated) {
  server_.set("dual.test", {fake_dns_server::kind::answer,
                            {"192.0.2.1", "192.0.2.2", "192.0.2.1"},
                            {"2001:db8::1", "2001:db8::1"},
                            60,
                            0ms});
  resolver r(io_, opts());
  result res = run(r, "dual.test");
  EXPECT_EQ(res.st, status::ok);
  EXPECT_FALSE(res.from_cache);
  EXPECT_THAT(texts(res), ElementsAre("192.0.2.1", "192.0.2.2", "2001:db8::1"));
  EXPECT_EQ(server_.count("dual.test", fake_dns_server::type_a), 1u);
  EXPECT_EQ(server_.count("dual.test", fake_dns_server::type_aaaa), 1u);
  EXPECT_EQ(r.counters().queries, 1u);
  EXPECT_EQ(r.counters().ok, 1u);
}

TEST_F(ResolverTest, V6OnlyAndV4Only) {
  server_.set("six.test", {fake_dns_server::kind::answer, {}, {"2001:db8::6"}, 60, 0ms});
  server_.set("four.test", {fake_dns_server::kind::answer, {"198.51.100.4"}, {}, 60, 0ms});
  resolver r(io_, opts());
  EXPECT_THAT(texts(run(r, "six.test")), ElementsAre("2001:db8::6"));
  EXPECT_THAT(texts(run(r, "four.test")), ElementsAre("198.51.100.4"));
}

TEST_F(ResolverTest, CacheHitWithinTtlThenRequeryAfterExpiry) {
  server_.set("ttl.test", {fake_dns_server::kind::answer, {"192.0.2.10"}, {}, 1, 0ms});
  resolver r(io_, opts());
  EXPECT_EQ(run(r, "ttl.test").st, status::ok);
  EXPECT_EQ(server_.count("ttl.test"), 2u);  // A + AAAA

  result again = run(r, "ttl.test");
  EXPECT_EQ(again.st, status::ok);
  EXPECT_TRUE(again.from_cache);
  EXPECT_THAT(texts(again), ElementsAre("192.0.2.10"));
  EXPECT_EQ(server_.count("ttl.test"), 2u);

  std::this_thread::sleep_for(1100ms);
  result fresh = run(r, "ttl.test");
  EXPECT_EQ(fresh.st, status::ok);
  EXPECT_FALSE(fresh.from_cache);
  EXPECT_EQ(server_.count("ttl.test"), 4u);
  EXPECT_EQ(r.counters().queries, 2u);
  EXPECT_EQ(r.counters().cache_hits, 1u);
  EXPECT_EQ(r.counters().ok, 3u);
}

TEST_F(ResolverTest, TtlClampedToMaxAndMin) {
  server_.set("long.test", {fake_dns_server::kind::answer, {"192.0.2.11"}, {}, 86400, 0ms});
  server_.set("zero.test", {fake_dns_server::kind::answer, {"192.0.2.12"}, {}, 0, 0ms});
  auto o = opts();
  o.max_ttl = 1s;
  o.min_ttl = 1s;
  resolver r(io_, o);
  run(r, "long.test");
  run(r, "zero.test");
  EXPECT_TRUE(run(r, "long.test").from_cache);
  EXPECT_TRUE(run(r, "zero.test").from_cache);  // TTL 0 still kept for min_ttl
  std::this_thread::sleep_for(1100ms);
  EXPECT_FALSE(run(r, "long.test").from_cache);
  EXPECT_FALSE(run(r, "zero.test").from_cache);
}

TEST_F(ResolverTest, NxdomainIsCachedForNegativeTtl) {
  server_.set("nx.test", {fake_dns_server::kind::nxdomain, {}, {}, 60, 0ms});
  auto o = opts();
  o.negative_ttl = 1s;
  resolver r(io_, o);
  result first = run(r, "nx.test");
  EXPECT_EQ(first.st, status::nxdomain);
  EXPECT_TRUE(first.addresses.empty());
  const size_t asked = server_.count("nx.test");
  EXPECT_GE(asked, 2u);

  result second = run(r, "nx.test");
  EXPECT_EQ(second.st, status::nxdomain);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(server_.count("nx.test"), asked);

  std::this_thread::sleep_for(1100ms);
  EXPECT_FALSE(run(r, "nx.test").from_cache);
  EXPECT_GT(server_.count("nx.test"), asked);
  EXPECT_EQ(r.counters().nxdomain, 3u);
}

TEST_F(ResolverTest, NoDataIsNxdomain) {
  server_.set("empty.test", {fake_dns_server::kind::answer, {}, {}, 60, 0ms});
  resolver r(io_, opts());
  EXPECT_EQ(run(r, "empty.test").st, status::nxdomain);
}

TEST_F(ResolverTest, SilentServerTimesOutWithinBudget) {
  server_.set("quiet.test", {fake_dns_server::kind::silent, {}, {}, 60, 0ms});
  resolver r(io_, opts(300ms));
  auto o = spawn(r, "quiet.test");
  wait_all({o});
  ASSERT_TRUE(o->res);
  EXPECT_EQ(o->res->st, status::timeout);
  EXPECT_GE(o->elapsed, 250ms);
  EXPECT_LT(o->elapsed, 1s);
  EXPECT_GE(server_.count("quiet.test", fake_dns_server::type_a), 2u);  // c-ares retried
  drain();

  // A timeout is not cached: the next call asks again.
  const size_t asked = server_.count("quiet.test");
  EXPECT_EQ(run(r, "quiet.test").st, status::timeout);
  EXPECT_GT(server_.count("quiet.test"), asked);
  EXPECT_EQ(r.counters().timeout, 2u);
}

TEST_F(ResolverTest, LateAnswerAfterTimeoutIsHarmlessAndCached) {
  // Our budget (30 ms) ends before c-ares' own retries (3 x 20 ms minimum,
  // doubling: ~140 ms); the answer to the first try arrives at 60 ms.
  server_.set("slow.test", {fake_dns_server::kind::answer, {"192.0.2.50"}, {}, 60, 60ms});
  resolver r(io_, opts(30ms));
  EXPECT_EQ(run(r, "slow.test").st, status::timeout);
  drain();
  result later = run(r, "slow.test");
  EXPECT_EQ(later.st, status::ok);
  EXPECT_TRUE(later.from_cache);
  EXPECT_THAT(texts(later), ElementsAre("192.0.2.50"));
}

TEST_F(ResolverTest, ServfailIsFailureAndNotCached) {
  server_.set("broken.test", {fake_dns_server::kind::servfail, {}, {}, 60, 0ms});
  resolver r(io_, opts());
  EXPECT_EQ(run(r, "broken.test").st, status::failure);
  const size_t asked = server_.count("broken.test");
  EXPECT_EQ(run(r, "broken.test").st, status::failure);
  EXPECT_GT(server_.count("broken.test"), asked);
  EXPECT_EQ(r.counters().failure, 2u);
}

TEST_F(ResolverTest, ServerOnNonStandardPort) {
  ASSERT_NE(server_.port(), 53);
  server_.set("port.test", {fake_dns_server::kind::answer, {"203.0.113.7"}, {}, 60, 0ms});
  resolver r(io_, opts());
  EXPECT_THAT(texts(run(r, "port.test")), ElementsAre("203.0.113.7"));
}

TEST_F(ResolverTest, SecondServerAnswersWhenFirstIsSilent) {
  fake_dns_server mute;
  mute.set_default({fake_dns_server::kind::silent, {}, {}, 60, 0ms});
  server_.set("two.test", {fake_dns_server::kind::answer, {"192.0.2.77"}, {}, 60, 0ms});
  auto o = opts(2000ms);
  o.servers = {{"127.0.0.1", mute.port()}, {"127.0.0.1", server_.port()}};
  resolver r(io_, o);
  EXPECT_THAT(texts(run(r, "two.test")), ElementsAre("192.0.2.77"));
}

TEST_F(ResolverTest, NoSearchDomainsAppended) {
  ::setenv("LOCALDOMAIN", "corp.example", 1);
  resolver r(io_, opts());
  ::unsetenv("LOCALDOMAIN");
  EXPECT_EQ(run(r, "nosuch.test").st, status::nxdomain);
  EXPECT_EQ(run(r, "single").st, status::nxdomain);
  for (const auto& q : server_.questions()) {
    EXPECT_TRUE(q.name == "nosuch.test" || q.name == "single") << q.name;
  }
}

TEST_F(ResolverTest, ManyConcurrentLookups) {
  server_.set_default({fake_dns_server::kind::answer, {"192.0.2.99"}, {"2001:db8::99"}, 60, 0ms});
  resolver r(io_, opts(5000ms));
  std::vector<std::shared_ptr<outcome>> outs;
  for (int i = 0; i < 200; ++i) outs.push_back(spawn(r, "host" + std::to_string(i) + ".test"));
  for (int i = 0; i < 100; ++i) outs.push_back(spawn(r, "same.test"));
  wait_all(outs);
  for (const auto& o : outs) {
    ASSERT_TRUE(o->res);
    EXPECT_EQ(o->res->st, status::ok);
    EXPECT_THAT(texts(*o->res), ElementsAre("192.0.2.99", "2001:db8::99"));
  }
  // Identical concurrent lookups coalesce into one upstream query.
  EXPECT_EQ(server_.count("same.test", fake_dns_server::type_a), 1u);
  EXPECT_EQ(r.counters().queries, 201u);
  EXPECT_EQ(r.counters().ok, 300u);
}

TEST_F(ResolverTest, DestroyWithQueryPendingCompletesWithFailure) {
  server_.set("quiet.test", {fake_dns_server::kind::silent, {}, {}, 60, 0ms});
  auto r = std::make_unique<resolver>(io_, opts(2000ms));
  auto a = spawn(*r, "quiet.test");
  auto b = spawn(*r, "quiet.test");
  io_.run_for(50ms);
  EXPECT_FALSE(a->res);
  r.reset();
  wait_all({a, b});
  EXPECT_EQ(a->res->st, status::failure);
  EXPECT_EQ(b->res->st, status::failure);
  EXPECT_LT(a->elapsed, 1s);
  drain();  // stale handlers of the dead resolver run harmlessly
}

TEST_F(ResolverTest, DestroyBeforeCoroutineStarts) {
  server_.set("quiet.test", {fake_dns_server::kind::silent, {}, {}, 60, 0ms});
  auto r = std::make_unique<resolver>(io_, opts(2000ms));
  auto a = spawn(*r, "quiet.test");
  io_.poll();  // coroutine starts, query sent, waiting
  r.reset();
  wait_all({a});
  EXPECT_EQ(a->res->st, status::failure);
}

TEST_F(ResolverTest, ShutdownFailsPendingAndLaterLookups) {
  server_.set("quiet.test", {fake_dns_server::kind::silent, {}, {}, 60, 0ms});
  server_.set("ok.test", {fake_dns_server::kind::answer, {"192.0.2.5"}, {}, 60, 0ms});
  resolver r(io_, opts(2000ms));
  auto a = spawn(r, "quiet.test");
  io_.run_for(50ms);
  r.shutdown();
  wait_all({a});
  EXPECT_EQ(a->res->st, status::failure);
  EXPECT_LT(a->elapsed, 1s);
  EXPECT_EQ(run(r, "ok.test").st, status::failure);
  EXPECT_EQ(server_.count("ok.test"), 0u);
  // Nothing keeps the io_context busy after shutdown.
  io_.restart();
  const auto t0 = steady::now();
  io_.run();
  EXPECT_LT(steady::now() - t0, 500ms);
}

TEST_F(ResolverTest, TruncatedAnswerRetriedOverTcp) {
  fake_dns_server::zone z{fake_dns_server::kind::answer, {}, {}, 60, 0ms};
  for (int i = 1; i <= 40; ++i) z.v4.push_back("198.51.100." + std::to_string(i));
  z.v6 = {"2001:db8::40"};
  z.truncate_udp = true;
  server_.set("big.test", z);
  resolver r(io_, opts());
  result res = run(r, "big.test");
  EXPECT_EQ(res.st, status::ok);
  EXPECT_EQ(res.addresses.size(), 41u);
  EXPECT_EQ(res.addresses.back().to_string(), "2001:db8::40");
  EXPECT_GE(server_.count_tcp("big.test"), 2u);
  drain();
}

TEST_F(ResolverTest, InvalidNameFailsWithoutWaiting) {
  resolver r(io_, opts());
  const std::string label(64, 'a');  // labels are at most 63 octets
  auto o = spawn(r, label + ".test");
  wait_all({o});
  EXPECT_EQ(o->res->st, status::failure);  // c-ares: ARES_EBADNAME
  EXPECT_LT(o->elapsed, 500ms);
  EXPECT_EQ(server_.questions().size(), 0u);
}

TEST_F(ResolverTest, BadServerAddressThrows) {
  resolver_options o;
  o.servers = {{"not-an-ip", 53}};
  EXPECT_THROW(resolver(io_, o), std::runtime_error);
}

TEST(ResolverLifetime, IoContextDestroyedWithLookupSuspended) {
  fake_dns_server server;
  server.set_default({fake_dns_server::kind::silent, {}, {}, 60, 0ms});
  auto io = std::make_unique<asio::io_context>();
  resolver_options o;
  o.servers = {{"127.0.0.1", server.port()}};
  auto r = std::make_unique<resolver>(*io, o);
  bool completed = false;
  asio::co_spawn(*io, r->resolve("quiet.test"),
                 [&completed](std::exception_ptr, result) { completed = true; });
  io->run_for(50ms);
  r.reset();   // completes the waiter; its coroutine is never resumed
  io.reset();  // destroys the suspended coroutine frame
  EXPECT_FALSE(completed);
}

TEST(ResolverStatus, Names) {
  EXPECT_STREQ(to_string(status::ok), "ok");
  EXPECT_STREQ(to_string(status::nxdomain), "nxdomain");
  EXPECT_STREQ(to_string(status::timeout), "timeout");
  EXPECT_STREQ(to_string(status::failure), "failure");
}

}  // namespace
}  // namespace egressd::dns
