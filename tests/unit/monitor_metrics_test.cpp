#include "monitor/metrics.hpp"
#include "monitor/metrics_registry.hpp"

#include <chrono>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "monitor/access_log.hpp"
#include "monitor/anomaly_detector.hpp"

namespace egressd::monitor {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using type = metrics_registry::metric_type;

// Checks the text exposition format 0.0.4 line by line: HELP/TYPE comments
// before samples of their family, sample syntax, label syntax and escaping,
// numeric values. Returns "" or the first problem.
std::string exposition_problem(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  static const std::regex type_re(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? (-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?|\+Inf|-Inf|NaN))");
  if (text.empty() || text.back() != '\n') return "must end with a newline";
  std::istringstream in(text);
  std::string line, family;
  std::set<std::string> typed;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      family = m[1];
    } else if (std::regex_match(line, m, type_re)) {
      if (m[1] != family) return "TYPE without HELP: " + line;
      if (!typed.insert(family).second) return "family twice: " + line;
    } else if (std::regex_match(line, m, sample)) {
      const std::string name = m[1];
      if (name != family && name != family + "_bucket" && name != family + "_sum" &&
          name != family + "_count") {
        return "sample outside its family: " + line;
      }
    } else {
      return "bad line: " + line;
    }
  }
  return "";
}

TEST(metrics_registry, counters_sum_worker_and_shared_shards) {
  metrics_registry reg(2);
  const size_t f = reg.family("x_total", "X.", type::counter);
  auto a = reg.counter(f, {{"k", "a"}});
  auto b = reg.counter(f, {{"k", "b"}});
  reg.add(0, a);
  reg.add(1, a, 10);
  reg.add(reg.shared_shard(), a, 100);
  reg.add(1, b, 7);
  EXPECT_EQ(reg.value(a), 111u);
  EXPECT_EQ(reg.value(b), 7u);
  EXPECT_EQ(reg.counter(f, {{"k", "a"}}).slot, a.slot);  // get-or-create
  EXPECT_EQ(reg.family("x_total", "ignored", type::counter), f);
  EXPECT_EQ(reg.render(),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{k=\"a\"} 111\nx_total{k=\"b\"} 7\n");
}

TEST(metrics_registry, gauges_add_and_set) {
  metrics_registry reg(2);
  auto g = reg.gauge(reg.family("g", "G.", type::gauge), {});
  reg.add(0, g, 5);
  reg.add(1, g, -2);
  EXPECT_EQ(reg.value(g), 3);
  reg.add(1, g, -4);
  EXPECT_EQ(reg.value(g), -1);
  reg.set(g, 100);
  EXPECT_EQ(reg.value(g), 99);
  EXPECT_THAT(reg.render(), HasSubstr("\ng 99\n"));
}

TEST(metrics_registry, histogram_buckets_are_cumulative_with_le_inclusive) {
  metrics_registry reg(1);
  auto h = reg.histogram(reg.family("lat_seconds", "Latency.", type::histogram, false, {0.1, 1, 10}),
                         {{"kind", "http"}});
  // Binary fractions, so the sum is exact; 1.0 sits on a bound (le is <=).
  for (double v : {0.0625, 0.09375, 0.5, 1.0, 2.0, 100.0}) reg.observe(0, h, v);
  reg.observe(reg.shared_shard(), h, 0.03125);
  const auto s = reg.value(h);
  EXPECT_THAT(s.cumulative, ::testing::ElementsAre(3, 5, 6, 7));
  EXPECT_EQ(s.count, 7u);
  EXPECT_EQ(s.sum, 103.6875);
  EXPECT_EQ(reg.render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{kind=\"http\",le=\"0.1\"} 3\n"
            "lat_seconds_bucket{kind=\"http\",le=\"1\"} 5\n"
            "lat_seconds_bucket{kind=\"http\",le=\"10\"} 6\n"
            "lat_seconds_bucket{kind=\"http\",le=\"+Inf\"} 7\n"
            "lat_seconds_sum{kind=\"http\"} 103.6875\n"
            "lat_seconds_count{kind=\"http\"} 7\n");
}

TEST(metrics_registry, escapes_label_values_and_help) {
  metrics_registry reg(1);
  const size_t f = reg.family("r_total", "Line one\nback\\slash \"quoted\".", type::counter);
  reg.add(0, reg.counter(f, {{"rule", "~^a\\.b\"c\nd$"}}));
  const std::string text = reg.render();
  EXPECT_THAT(text, HasSubstr("# HELP r_total Line one\\nback\\\\slash \"quoted\".\n"));
  EXPECT_THAT(text, HasSubstr("r_total{rule=\"~^a\\\\.b\\\"c\\nd$\"} 1\n"));
  EXPECT_EQ(exposition_problem(text), "");
}

TEST(metrics_registry, sparse_families_hide_zero_series) {
  metrics_registry reg(1);
  const size_t f = reg.family("s_total", "S.", type::counter, true);
  auto a = reg.counter(f, {{"k", "a"}});
  reg.counter(f, {{"k", "b"}});
  reg.add(0, a);
  const std::string text = reg.render();
  EXPECT_THAT(text, HasSubstr("s_total{k=\"a\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("k=\"b\"")));
}

TEST(metrics_registry, full_registry_uses_an_unrendered_sink) {
  metrics_registry reg(1, 8);  // slots 0-1 are the sink: 6 usable
  const size_t f = reg.family("c_total", "C.", type::counter);
  std::vector<metrics_registry::counter_id> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(reg.counter(f, {{"i", std::to_string(i)}}));
  for (auto id : ids) reg.add(0, id);
  auto h = reg.histogram(reg.family("h", "H.", type::histogram, false, {1, 2, 3}), {});
  reg.observe(0, h, 2);  // sink: must not corrupt a real series
  const std::string text = reg.render();
  for (int i = 0; i < 6; ++i) EXPECT_THAT(text, HasSubstr("i=\"" + std::to_string(i) + "\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("i=\"6\"")));
  EXPECT_THAT(text, Not(HasSubstr("h_bucket")));
  EXPECT_EQ(exposition_problem(text), "");
}

TEST(metrics_registry, collectors_append_families) {
  metrics_registry reg(1);
  reg.add_collector([](std::string& out) {
    metrics_registry::write_header(out, "dyn", "Dynamic.", type::gauge);
    metrics_registry::write_sample(out, "dyn", {{"client", "10.0.0.1"}}, uint64_t{4});
    metrics_registry::write_sample(out, "dyn", {}, 0.25);
  });
  EXPECT_EQ(reg.render(), "# HELP dyn Dynamic.\n# TYPE dyn gauge\ndyn{client=\"10.0.0.1\"} 4\ndyn 0.25\n");
}

TEST(metrics_registry, numbers) {
  std::string out;
  for (double v : {0.0, 1.0, 0.005, 2.5, 1e21, -3.0}) {
    metrics_registry::append_number(out, v);
    out += ' ';
  }
  metrics_registry::append_number(out, std::numeric_limits<double>::infinity());
  EXPECT_EQ(out, "0 1 0.005 2.5 1e+21 -3 +Inf");
}

TEST(metrics_registry, concurrent_workers_and_shared_writers_lose_nothing) {
  constexpr unsigned workers = 4;
  constexpr uint64_t n = 200000;
  metrics_registry reg(workers);
  auto c = reg.counter(reg.family("c_total", "C.", type::counter), {});
  auto h = reg.histogram(reg.family("h", "H.", type::histogram, false, {0.5}), {});
  std::vector<std::thread> ts;
  for (unsigned w = 0; w < workers; ++w) {
    ts.emplace_back([&, w] {
      for (uint64_t i = 0; i < n; ++i) {
        reg.add(w, c);
        reg.observe(w, h, 1.0);
      }
    });
  }
  for (int k = 0; k < 2; ++k) {
    ts.emplace_back([&] {
      for (uint64_t i = 0; i < n; ++i) {
        reg.add(reg.shared_shard(), c);
        reg.observe(reg.shared_shard(), h, 0.25);
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 50; ++i) (void)reg.render();
  });
  for (auto& t : ts) t.join();
  scraper.join();
  EXPECT_EQ(reg.value(c), (workers + 2) * n);
  const auto s = reg.value(h);
  EXPECT_EQ(s.count, (workers + 2) * n);
  EXPECT_EQ(s.cumulative[0], 2 * n);
  EXPECT_DOUBLE_EQ(s.sum, workers * n * 1.0 + 2 * n * 0.25);
}

TEST(metrics, spec_series_are_exposed) {
  metrics m(2);
  const std::string text = m.render();
  EXPECT_EQ(exposition_problem(text), "");
  for (const char* family :
       {"egressd_requests_total", "egressd_rule_requests_total", "egressd_bytes_total",
        "egressd_connections_active", "egressd_anomaly_alerts_total", "egressd_dns_queries_total",
        "egressd_config_reloads_total", "egressd_upstream_connect_seconds",
        "egressd_request_duration_seconds"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + family + " ")) << family;
  }
  EXPECT_THAT(text, HasSubstr("egressd_bytes_total{direction=\"up\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_connections_active{kind=\"connect\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_anomaly_alerts_total{type=\"error_rate\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_config_reloads_total{result=\"error\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_tls_ech_total{decision=\"allow\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_tls_ech_total{decision=\"deny\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_upstream_connect_seconds_bucket{le=\"+Inf\"} 0\n"));
  // Sparse: nothing requested yet, so no requests_total sample.
  EXPECT_THAT(text, Not(HasSubstr("egressd_requests_total{")));
}

TEST(metrics, values_move_by_the_expected_amounts) {
  metrics m(2);
  using k = metrics::kind;
  using d = metrics::decision;
  m.request(0, k::http, d::allow, acl::reason::none);
  m.request(1, k::http, d::allow, acl::reason::none);
  m.request(1, k::connect, d::deny, acl::reason::rate_limited);
  m.request(0, k::sni, d::report, acl::reason::not_allowed);
  const auto rule = m.rule_series(".github.com");
  EXPECT_EQ(m.rule_series(".github.com").slot, rule.slot);
  m.rule_request(0, rule);
  m.rule_request(1, rule);
  m.bytes(0, metrics::direction::up, 1000);
  m.bytes(1, metrics::direction::down, 2048);
  m.connection_opened(0, k::connect);
  m.connection_opened(1, k::connect);
  m.connection_closed(0, k::connect);
  m.anomaly_alert(alert_type::large_outbound);
  m.dns_query(0, metrics::dns_result::nxdomain);
  m.config_reload(true);
  m.config_reload(false);
  m.tls_ech(0, true);
  m.tls_ech(1, false);
  m.tls_ech(1, false);
  m.upstream_connect(0, 0.003);
  m.request_duration(1, 42.0);
  EXPECT_EQ(m.requests_value(k::http, d::allow, acl::reason::none), 2u);
  const std::string text = m.render();
  EXPECT_EQ(exposition_problem(text), "");
  EXPECT_THAT(text, HasSubstr(
      "egressd_requests_total{kind=\"http\",decision=\"allow\",reason=\"none\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
      "egressd_requests_total{kind=\"connect\",decision=\"deny\",reason=\"rate_limited\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
      "egressd_requests_total{kind=\"sni\",decision=\"report\",reason=\"not_allowed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_rule_requests_total{rule=\".github.com\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("egressd_bytes_total{direction=\"up\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("egressd_bytes_total{direction=\"down\"} 2048\n"));
  EXPECT_THAT(text, HasSubstr("egressd_connections_active{kind=\"connect\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_anomaly_alerts_total{type=\"large_outbound\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_dns_queries_total{result=\"nxdomain\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_config_reloads_total{result=\"ok\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_tls_ech_total{decision=\"allow\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_tls_ech_total{decision=\"deny\"} 2\n"));
  EXPECT_EQ(m.tls_ech_value(false), 2u);
  EXPECT_THAT(text, HasSubstr("egressd_upstream_connect_seconds_bucket{le=\"0.0025\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_upstream_connect_seconds_bucket{le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_request_duration_seconds_bucket{le=\"30\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("egressd_request_duration_seconds_bucket{le=\"60\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_request_duration_seconds_sum 42\n"));
}

TEST(metrics, client_series_come_from_the_detector_table) {
  metrics m(1);
  anomaly_detector det(anomaly_thresholds{}, 2);
  m.attach(det);
  std::string error;
  auto log = access_log::open("off", &error);
  m.attach(*log);
  const auto now = std::chrono::steady_clock::now();
  det.observe("10.0.0.1", "a.example", 10, false, now);
  det.observe("10.0.0.1", "b.example", 10, false, now);
  det.observe("10.0.0.2", "a.example", 10, true, now);
  det.observe("10.0.0.3", "evil\"}\n.example", 10, true, now);  // evicts 10.0.0.1
  const std::string text = m.render();
  EXPECT_EQ(exposition_problem(text), "");
  EXPECT_THAT(text, HasSubstr("egressd_client_requests_total{client=\"10.0.0.2\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("egressd_client_unique_domains{client=\"10.0.0.3\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("10.0.0.1")));  // bounded: least recently seen evicted
  EXPECT_THAT(text, Not(HasSubstr("evil")));      // a host never becomes a label
  EXPECT_THAT(text, HasSubstr("egressd_access_log_dropped_total 0\n"));
}

}  // namespace
}  // namespace egressd::monitor
