#include "monitor/anomaly_detector.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace egressd::monitor {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using clock_t_ = anomaly_detector::clock;
const clock_t_::time_point t0 = clock_t_::time_point{} + 1000h;

// Concatenation without `"literal" + std::string` (GCC 12 -Wrestrict false positive).
std::string cat(std::string_view a, std::string_view b, std::string_view c = {}) {
  std::string out(a);
  out += b;
  out += c;
  return out;
}

std::vector<alert_type> types(const std::vector<alert>& alerts) {
  std::vector<alert_type> out;
  for (const auto& a : alerts) out.push_back(a.type);
  return out;
}

// Thresholds that never fire unless a test lowers one.
anomaly_thresholds quiet() {
  anomaly_thresholds t;
  t.unique_domains = 1000;
  t.bytes_out = 1ull << 40;
  t.total_bytes_out = 1ull << 50;
  t.requests_per_second = 1e6;
  t.error_rate = 1.0;
  t.min_requests = 5;
  return t;
}

// /work/shared/scenarios/anomaly.md, step by step.
TEST(anomaly_detector, network_monitor_scenario) {
  anomaly_thresholds t;  // SPEC defaults, then the scenario's
  t.unique_domains = 5;
  t.bytes_out = 100 * 1024;
  t.error_rate = 0.30;
  t.min_requests = 5;
  t.requests_per_second = 1000;  // high enough not to fire
  anomaly_detector det(t);
  struct step {
    const char* host;
    uint64_t bytes;
    bool error;
  } steps[] = {
      {"api.openai.com", 2000, false},  {"api.openai.com", 1500, false},
      {"scholar.google.com", 500, false}, {"arxiv.org", 300, false},
      {"api.openai.com", 3000, false},  {"unknown1.com", 500, true},
      {"unknown2.com", 500, true},      {"unknown3.com", 500, true},
      {"unknown4.com", 150000, false},  {"unknown5.com", 500, true},
      {"unknown6.com", 500, true},
  };
  std::vector<std::vector<alert>> raised;
  auto now = t0;
  for (const auto& s : steps) {
    raised.push_back(det.observe("10.0.0.5", s.host, s.bytes, s.error, now));
    now += 200ms;
  }
  // Normal phase (#1-#5) and #6, #7 (errors 1/6, 2/7 = 28.6%; 5 hosts): nothing.
  for (size_t i = 0; i < 7; ++i) EXPECT_TRUE(raised[i].empty()) << "#" << i + 1;
  // #8: the 6th distinct host, and 3 errors of 8 = 37.5%.
  ASSERT_THAT(types(raised[7]),
              ::testing::ElementsAre(alert_type::domain_diversity, alert_type::error_rate));
  EXPECT_EQ(raised[7][0].value, 6);
  EXPECT_EQ(raised[7][0].threshold, 5);
  EXPECT_EQ(raised[7][0].host, "unknown3.com");
  EXPECT_EQ(raised[7][0].client, "10.0.0.5");
  EXPECT_DOUBLE_EQ(raised[7][1].value, 37.5);
  EXPECT_DOUBLE_EQ(raised[7][1].threshold, 30);
  // #9: one upload above 100K, naming unknown4 and 150000 bytes.
  ASSERT_THAT(types(raised[8]), ::testing::ElementsAre(alert_type::large_outbound));
  EXPECT_EQ(raised[8][0].host, "unknown4.com");
  EXPECT_EQ(raised[8][0].value, 150000);
  EXPECT_EQ(raised[8][0].threshold, 102400);
  // #10, #11: same conditions, same window: no flood.
  EXPECT_TRUE(raised[9].empty());
  EXPECT_TRUE(raised[10].empty());
  // Totals after #11. The scenario text says 159,300 bytes, but its own table
  // sums to 2000+1500+500+300+3000 + 5*500 + 150000 = 159,800 ("follow the
  // rules, not the printout").
  const auto tot = det.totals("10.0.0.5", now);
  ASSERT_TRUE(tot);
  EXPECT_EQ(tot->requests, 11u);
  EXPECT_EQ(tot->unique_hosts, 9u);
  EXPECT_EQ(tot->bytes_out, 159800u);
  EXPECT_EQ(tot->errors, 5u);
  // /alerts: the three alerts, newest last.
  EXPECT_THAT(types(det.recent_alerts()),
              ::testing::ElementsAre(alert_type::domain_diversity, alert_type::error_rate,
                                     alert_type::large_outbound));
  EXPECT_FALSE(det.is_blocked("10.0.0.5", now));  // action=log
}

TEST(anomaly_detector, domain_diversity_just_below_and_above) {
  auto t = quiet();
  t.unique_domains = 3;
  anomaly_detector det(t);
  EXPECT_TRUE(det.observe("c", "a.example", 0, false, t0).empty());
  EXPECT_TRUE(det.observe("c", "b.example", 0, false, t0).empty());
  EXPECT_TRUE(det.observe("c", "c.example", 0, false, t0).empty());
  EXPECT_TRUE(det.observe("c", "a.example", 0, false, t0).empty());  // seen before: still 3
  const auto a = det.observe("c", "d.example", 0, false, t0);
  ASSERT_THAT(types(a), ::testing::ElementsAre(alert_type::domain_diversity));
  EXPECT_EQ(a[0].value, 4);
  EXPECT_TRUE(det.observe("other", "x.example", 0, false, t0).empty());  // per client
}

TEST(anomaly_detector, large_outbound_just_below_and_above) {
  auto t = quiet();
  t.bytes_out = 1000;
  anomaly_detector det(t);
  EXPECT_TRUE(det.observe("c", "h", 1000, false, t0).empty());
  const auto a = det.observe("c", "h", 1001, false, t0);
  ASSERT_THAT(types(a), ::testing::ElementsAre(alert_type::large_outbound));
  EXPECT_EQ(a[0].value, 1001);
  EXPECT_EQ(a[0].threshold, 1000);
}

TEST(anomaly_detector, total_outbound_just_below_and_above) {
  auto t = quiet();
  t.total_bytes_out = 1000;
  anomaly_detector det(t);
  EXPECT_TRUE(det.observe("c", "h", 600, false, t0).empty());
  EXPECT_TRUE(det.observe("c", "h", 400, false, t0 + 10s).empty());
  const auto a = det.observe("c", "h", 1, false, t0 + 20s);
  ASSERT_THAT(types(a), ::testing::ElementsAre(alert_type::total_outbound));
  EXPECT_EQ(a[0].value, 1001);
}

TEST(anomaly_detector, request_rate_just_below_and_above) {
  auto t = quiet();
  t.requests_per_second = 5.0 / 60;  // requests=5/m, window 60 s: 5 per window
  anomaly_detector det(t);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(det.observe("c", "h", 0, false, t0 + i * 1s).empty());
  const auto a = det.observe("c", "h", 0, false, t0 + 5s);
  ASSERT_THAT(types(a), ::testing::ElementsAre(alert_type::request_rate));
  EXPECT_EQ(a[0].value, 6);
  EXPECT_DOUBLE_EQ(a[0].threshold, 5);
}

TEST(anomaly_detector, request_rate_scales_with_the_window) {
  auto t = quiet();
  t.requests_per_second = 2;  // 120/m
  t.window = 10s;             // 20 per window
  anomaly_detector det(t);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(det.observe("c", "h", 0, false, t0).empty());
  EXPECT_THAT(types(det.observe("c", "h", 0, false, t0)),
              ::testing::ElementsAre(alert_type::request_rate));
}

TEST(anomaly_detector, error_rate_just_below_and_above) {
  auto t = quiet();
  t.error_rate = 0.30;
  t.min_requests = 5;
  anomaly_detector det(t);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(det.observe("c", "h", 0, false, t0).empty());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(det.observe("c", "h", 0, true, t0).empty());  // 3/10 = 30%
  const auto a = det.observe("c", "h", 0, true, t0);  // 4/11
  ASSERT_THAT(types(a), ::testing::ElementsAre(alert_type::error_rate));
  EXPECT_NEAR(a[0].value, 100.0 * 4 / 11, 1e-9);
  EXPECT_DOUBLE_EQ(a[0].threshold, 30);
}

TEST(anomaly_detector, error_rate_waits_for_min_requests) {
  auto t = quiet();
  t.error_rate = 0.30;
  t.min_requests = 5;
  anomaly_detector det(t);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(det.observe("c", "h", 0, true, t0).empty());  // 100%, 4 < 5
  const auto a = det.observe("c", "h", 0, true, t0);
  ASSERT_THAT(types(a), ::testing::ElementsAre(alert_type::error_rate));
  EXPECT_DOUBLE_EQ(a[0].value, 100);
}

TEST(anomaly_detector, window_expiry) {
  auto t = quiet();
  t.unique_domains = 2;
  t.total_bytes_out = 1000;
  anomaly_detector det(t);  // window 60 s, 1 s sub-buckets
  det.observe("c", "a", 500, true, t0);
  det.observe("c", "b", 500, false, t0);
  auto tot = det.totals("c", t0 + 59s);
  ASSERT_TRUE(tot);
  EXPECT_EQ(tot->requests, 2u);
  EXPECT_EQ(tot->bytes_out, 1000u);
  EXPECT_EQ(tot->unique_hosts, 2u);
  tot = det.totals("c", t0 + 60s);
  EXPECT_EQ(tot->requests, 0u);
  EXPECT_EQ(tot->errors, 0u);
  EXPECT_EQ(tot->bytes_out, 0u);
  EXPECT_EQ(tot->unique_hosts, 0u);
  // A third host and more bytes a window later cross nothing.
  EXPECT_TRUE(det.observe("c", "c", 500, false, t0 + 61s).empty());
  // Still within that window, more do.
  EXPECT_THAT(types(det.observe("c", "d", 501, false, t0 + 62s)),
              ::testing::ElementsAre(alert_type::total_outbound));
  EXPECT_THAT(types(det.observe("c", "e", 0, false, t0 + 63s)),
              ::testing::ElementsAre(alert_type::domain_diversity));
}

TEST(anomaly_detector, one_alert_per_type_per_window) {
  auto t = quiet();
  t.bytes_out = 10;
  anomaly_detector det(t);
  EXPECT_EQ(det.observe("c", "h", 11, false, t0).size(), 1u);
  EXPECT_TRUE(det.observe("c", "h", 11, false, t0 + 30s).empty());
  EXPECT_TRUE(det.observe("c", "h", 11, false, t0 + 59s).empty());
  EXPECT_EQ(det.observe("c", "h", 11, false, t0 + 60s).size(), 1u);
  EXPECT_EQ(det.observe("d", "h", 11, false, t0 + 60s).size(), 1u);  // another client
}

TEST(anomaly_detector, action_block_refuses_for_the_duration) {
  auto t = quiet();
  t.bytes_out = 10;
  t.block_for = 10s;
  anomaly_detector det(t);
  EXPECT_FALSE(det.is_blocked("c", t0));
  const auto a = det.observe("c", "h", 11, false, t0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].block_for, 10s);
  EXPECT_TRUE(det.is_blocked("c", t0));
  EXPECT_TRUE(det.is_blocked("c", t0 + 9999ms));
  EXPECT_FALSE(det.is_blocked("c", t0 + 10s));
  EXPECT_FALSE(det.is_blocked("other", t0));
  const auto j = json::parse(to_json(a[0]));
  EXPECT_EQ(j["action"], "block");
  EXPECT_EQ(j["block_seconds"], 10);
  t.block_for = 0s;  // reload to action=log
  det.set_thresholds(t);
  EXPECT_FALSE(det.is_blocked("c", t0));
}

TEST(anomaly_detector, alert_json_line) {
  alert a;
  a.type = alert_type::large_outbound;
  a.client = "10.0.0.5";
  a.host = "unknown4.com\"\xff";
  a.value = 150000;
  a.threshold = 102400;
  a.ts = std::chrono::sys_days{std::chrono::year{2026} / 11 / 22} + 1h;
  const auto j = nlohmann::ordered_json::parse(to_json(a));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ::testing::ElementsAre("ts", "alert", "client", "value", "threshold", "host",
                                           "action"));
  EXPECT_EQ(j["ts"], "2026-11-22T01:00:00.000Z");
  EXPECT_EQ(j["alert"], "large_outbound");
  EXPECT_EQ(j["value"], 150000);
  EXPECT_EQ(j["threshold"], 102400);
  EXPECT_EQ(j["host"], "unknown4.com\"\xef\xbf\xbd");
  EXPECT_EQ(j["action"], "log");
  a.type = alert_type::error_rate;
  a.value = 37.5;
  EXPECT_THAT(to_json(a), ::testing::HasSubstr("\"alert\":\"error_rate\",\"client\":\"10.0.0.5\",\"value\":37.5,"));
}

TEST(anomaly_detector, recent_alerts_ring_is_bounded_newest_last) {
  auto t = quiet();
  t.bytes_out = 10;
  anomaly_detector det(t, 4096, 3);
  for (int i = 0; i < 5; ++i) det.observe(cat("10.0.0.", std::to_string(i)), "h", 11, false, t0);
  const auto recent = det.recent_alerts();
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].client, "10.0.0.2");
  EXPECT_EQ(recent[2].client, "10.0.0.4");
  const auto arr = json::parse(det.recent_alerts_json());
  ASSERT_TRUE(arr.is_array());
  ASSERT_EQ(arr.size(), 3u);
  EXPECT_EQ(arr[2]["client"], "10.0.0.4");
  anomaly_detector empty(t);
  EXPECT_EQ(empty.recent_alerts_json(), "[]");
}

TEST(anomaly_detector, client_table_is_bounded_lru) {
  anomaly_detector det(quiet(), 2);
  det.observe("a", "h", 0, false, t0);
  det.observe("b", "h", 0, false, t0);
  det.observe("a", "h", 0, false, t0);  // b least recently seen
  det.observe("c", "h", 0, false, t0);
  EXPECT_EQ(det.client_count(), 2u);
  EXPECT_TRUE(det.totals("a", t0));
  EXPECT_FALSE(det.totals("b", t0));
  const auto clients = det.clients(t0);
  ASSERT_EQ(clients.size(), 2u);
  EXPECT_EQ(clients[0].client, "a");
  EXPECT_EQ(clients[0].requests_total, 2u);
  EXPECT_EQ(clients[0].unique_domains, 1u);

  anomaly_detector big(quiet(), 1000);
  for (int i = 0; i < 20000; ++i) big.observe(std::to_string(i), "h", 0, false, t0);
  EXPECT_EQ(big.client_count(), 1000u);
}

TEST(anomaly_detector, hosts_per_client_are_bounded) {
  auto t = quiet();
  t.unique_domains = 10;
  anomaly_detector det(t);
  size_t alerts = 0;
  for (int i = 0; i < 5000; ++i) {
    alerts += det.observe("c", cat("h", std::to_string(i), ".example"), 0, false, t0).size();
  }
  EXPECT_EQ(alerts, 1u);
  EXPECT_EQ(det.totals("c", t0)->unique_hosts, 128u);
}

TEST(anomaly_detector, reload_keeps_windows_unless_the_window_changes) {
  auto t = quiet();
  anomaly_detector det(t);
  det.observe("c", "a", 10, false, t0);
  t.bytes_out = 5;
  det.set_thresholds(t);
  EXPECT_EQ(det.totals("c", t0)->requests, 1u);
  EXPECT_EQ(det.thresholds().bytes_out, 5u);
  t.window = 30s;
  det.set_thresholds(t);
  EXPECT_EQ(det.totals("c", t0)->requests, 0u);
  EXPECT_EQ(det.clients(t0)[0].requests_total, 1u);
}

TEST(anomaly_detector, concurrent_observers) {
  anomaly_detector det(quiet(), 4096);
  std::vector<std::thread> ts;
  for (int w = 0; w < 4; ++w) {
    ts.emplace_back([&, w] {
      for (int i = 0; i < 20000; ++i) {
        det.observe(cat("10.0.", std::to_string(i % 64)), cat("h", std::to_string(w)), 1, i % 3 == 0,
                    t0 + std::chrono::microseconds(i));
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 100; ++i) (void)det.clients(t0);
  });
  for (auto& t : ts) t.join();
  scraper.join();
  uint64_t total = 0;
  for (const auto& c : det.clients(t0 + 1s)) {
    total += c.requests_total;
    EXPECT_EQ(c.unique_domains, 4u);
  }
  EXPECT_EQ(total, 80000u);
}

}  // namespace
}  // namespace egressd::monitor
