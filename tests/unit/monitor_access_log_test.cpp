#include "monitor/access_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace egressd::monitor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;
using nlohmann::json;
using nlohmann::ordered_json;

std::string escaped(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// Parses a JSON string literal back (throws on invalid JSON or UTF-8).
std::string round_trip(std::string_view s) { return json::parse(escaped(s)).get<std::string>(); }

access_record sample() {
  access_record r;
  r.ts = sys_days{year{2026} / 11 / 22} + hours{16} + minutes{4} + seconds{5} + milliseconds{123};
  r.client = "10.0.0.7:51234";
  r.group = "agents";
  r.kind = monitor::request_kind::connect;
  r.method = "CONNECT";
  r.host = "api.openai.com";
  r.port = 443;
  r.sni = "api.openai.com";
  r.path = "";
  r.decision = monitor::request_decision::allow;
  r.reason = egressd::acl::reason::none;
  r.rule = ".openai.com";
  r.status = 200;
  r.bytes_up = 1234;
  r.bytes_down = 98765432109ULL;
  r.duration_ms = 4567;
  r.upstream = "104.18.1.2:443";
  return r;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class temp_dir {
 public:
  temp_dir() {
    char tmpl[] = "/tmp/egressd_access_log_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~temp_dir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(access_log_json, fields_in_spec_order) {
  const auto j = ordered_json::parse(to_json(sample()));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ::testing::ElementsAre("ts", "client", "group", "agent", "kind", "method", "host", "port",
                                           "sni", "path", "decision", "reason", "rule", "status",
                                           "bytes_up", "bytes_down", "duration_ms", "upstream"));
  EXPECT_EQ(j["ts"], "2026-11-22T16:04:05.123Z");
  EXPECT_EQ(j["client"], "10.0.0.7:51234");
  EXPECT_EQ(j["kind"], "connect");
  EXPECT_EQ(j["port"], 443);
  EXPECT_EQ(j["decision"], "allow");
  EXPECT_EQ(j["reason"], "");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["bytes_down"], 98765432109ULL);
  EXPECT_EQ(j["duration_ms"], 4567);
  EXPECT_EQ(j["upstream"], "104.18.1.2:443");
}

TEST(access_log_json, exact_line) {
  EXPECT_EQ(to_json(sample()),
            R"({"ts":"2026-11-22T16:04:05.123Z","client":"10.0.0.7:51234","group":"agents","agent":"",)"
            R"("kind":"connect","method":"CONNECT","host":"api.openai.com","port":443,)"
            R"("sni":"api.openai.com","path":"","decision":"allow","reason":"","rule":".openai.com",)"
            R"("status":200,"bytes_up":1234,"bytes_down":98765432109,"duration_ms":4567,)"
            R"("upstream":"104.18.1.2:443"})");
}

// "ech": true follows "sni" only when the ClientHello carried ECH.
TEST(access_log_json, ech_key_only_when_true) {
  access_record r = sample();
  EXPECT_EQ(to_json(r).find("\"ech\""), std::string::npos);
  r.ech = true;
  const auto j = ordered_json::parse(to_json(r));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ::testing::ElementsAre("ts", "client", "group", "agent", "kind", "method", "host", "port",
                                           "sni", "ech", "path", "decision", "reason", "rule", "status",
                                           "bytes_up", "bytes_down", "duration_ms", "upstream"));
  EXPECT_EQ(j["ech"], true);
  EXPECT_NE(to_json(r).find(R"("sni":"api.openai.com","ech":true,"path":"")"), std::string::npos);
}

TEST(access_log_json, timestamp_is_utc_with_milliseconds) {
  std::string out;
  append_rfc3339_ms(out, sys_days{year{1970} / 1 / 1});
  EXPECT_EQ(out, "1970-01-01T00:00:00.000Z");
  out.clear();
  append_rfc3339_ms(out, sys_days{year{2024} / 2 / 29} + hours{23} + minutes{59} + seconds{59} +
                             milliseconds{999} + microseconds{999});
  EXPECT_EQ(out, "2024-02-29T23:59:59.999Z");  // truncated, not rounded into March
}

TEST(access_log_json, escapes_quotes_backslashes_and_controls) {
  EXPECT_EQ(escaped("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(escaped("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(escaped(std::string_view("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(escaped("plain/path-1.2_~"), R"("plain/path-1.2_~")");
  EXPECT_EQ(round_trip("x\"\\\n\x7fy"), "x\"\\\n\x7fy");
}

TEST(access_log_json, keeps_valid_utf8) {
  for (std::string s : {"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xbf\xbf",
                        "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"}) {
    EXPECT_EQ(escaped(s), "\"" + s + "\"") << s;
    EXPECT_EQ(round_trip(s), s);
  }
}

TEST(access_log_json, replaces_invalid_utf8) {
  const std::string fffd = "\xef\xbf\xbd";
  struct tc {
    std::string in, out;
  } cases[] = {
      {"a\xff" "b", "a" + fffd + "b"},
      {"\xc0\x80", fffd + fffd},                  // overlong NUL
      {"\xc1\xbf", fffd + fffd},                  // overlong
      {"\xe0\x80\xaf", fffd + fffd + fffd},       // overlong 3-byte
      {"\xed\xa0\x80", fffd + fffd + fffd},       // UTF-16 surrogate
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},  // above U+10FFFF
      {"\xf8\x88\x80\x80\x80", fffd + fffd + fffd + fffd + fffd},
      {"\xe2\x82", fffd + fffd},                  // truncated at the end
      {"\xe2\x82x", fffd + fffd + "x"},           // truncated in the middle
      {"\x80", fffd},                             // lone continuation
  };
  for (const auto& c : cases) {
    EXPECT_EQ(round_trip(c.in), c.out) << escaped(c.in);
    EXPECT_EQ(escaped(c.in).find('\xff'), std::string::npos);
  }
}

TEST(access_log_json, random_bytes_always_parse) {
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 24, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? 0x80 + rng() % 0x80 : rng() % 256);
    access_record r = sample();
    r.host = s;
    r.path = s + s;
    r.method = s.substr(0, 3);
    ASSERT_TRUE(json::accept(to_json(r))) << escaped(s);
  }
}

TEST(access_log, off_discards) {
  std::string error;
  auto log = access_log::open("off", &error);
  ASSERT_TRUE(log);
  EXPECT_FALSE(log->enabled());
  log->write(sample());
  log->flush();
  EXPECT_EQ(log->dropped(), 0u);
}

TEST(access_log, open_failure_names_the_path) {
  std::string error;
  auto log = access_log::open("/nonexistent-dir/x/access.log", &error);
  EXPECT_FALSE(log);
  EXPECT_THAT(error, ::testing::StartsWith("cannot open /nonexistent-dir/x/access.log: "));
}

TEST(access_log, writes_lines_to_file_with_mode_0640) {
  temp_dir dir;
  const auto path = dir.path() / "access.log";
  std::string error;
  const mode_t old_mask = ::umask(0);
  auto log = access_log::open(path.string(), &error);
  ::umask(old_mask);
  ASSERT_TRUE(log) << error;
  EXPECT_TRUE(log->enabled());
  for (int i = 0; i < 3; ++i) {
    auto r = sample();
    r.status = 200 + i;
    log->write(std::move(r));
  }
  log->write_line(R"({"alert":"large_outbound","client":"10.0.0.7"})");
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(json::parse(lines[i])["status"], 200 + i);
  EXPECT_EQ(json::parse(lines[3])["alert"], "large_outbound");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(access_log, appends_to_existing_file) {
  temp_dir dir;
  const auto path = dir.path() / "access.log";
  std::ofstream(path) << "previous line\n";
  std::string error;
  {
    auto log = access_log::open(path.string(), &error);
    ASSERT_TRUE(log) << error;
    log->write(sample());
  }  // the destructor flushes
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "previous line");
  EXPECT_EQ(lines[1], to_json(sample()));
}

TEST(access_log, reopen_after_rename_like_logrotate) {
  temp_dir dir;
  const auto path = dir.path() / "access.log";
  const auto rotated = dir.path() / "access.log.1";
  std::string error;
  auto log = access_log::open(path.string(), &error);
  ASSERT_TRUE(log) << error;
  log->write(sample());
  log->flush();
  fs::rename(path, rotated);
  log->write(sample());  // before SIGUSR1: still goes to the renamed file
  log->flush();
  log->reopen();
  log->flush();  // waits for the reopen too
  EXPECT_TRUE(fs::exists(path));
  auto r = sample();
  r.host = "after.example";
  log->write(std::move(r));
  log->flush();
  EXPECT_EQ(read_lines(rotated).size(), 2u);
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(json::parse(lines[0])["host"], "after.example");
}

TEST(access_log, flush_waits_for_everything_queued) {
  temp_dir dir;
  const auto path = dir.path() / "access.log";
  std::string error;
  auto log = access_log::open(path.string(), &error);
  ASSERT_TRUE(log) << error;
  for (int i = 0; i < 20000; ++i) {
    auto r = sample();
    r.bytes_up = static_cast<uint64_t>(i);
    log->write(std::move(r));
  }
  log->flush();
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 20000u);
  for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(json::parse(lines[i])["bytes_up"], i);
  EXPECT_EQ(log->dropped(), 0u);
}

TEST(access_log, concurrent_writers_lines_intact) {
  temp_dir dir;
  const auto path = dir.path() / "access.log";
  std::string error;
  auto log = access_log::open(path.string(), &error);
  ASSERT_TRUE(log) << error;
  constexpr int threads = 4, per_thread = 10000;
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto r = sample();
        r.client = "10.0.0.";  // no operator+: GCC 12 -Wrestrict false positive
        r.client += std::to_string(t);
        r.client += ":1";
        r.path.assign(1 + static_cast<size_t>(i % 300), 'p');
        r.path[0] = '/';
        r.bytes_up = static_cast<uint64_t>(i);
        log->write(std::move(r));
      }
    });
  }
  for (auto& w : writers) w.join();
  log->flush();
  EXPECT_EQ(log->dropped(), 0u);
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), size_t{threads * per_thread});
  std::set<std::pair<std::string, uint64_t>> seen;
  for (const auto& line : lines) {
    const auto j = json::parse(line);  // throws on a torn or interleaved line
    const uint64_t i = j["bytes_up"];
    EXPECT_EQ(j["path"].get<std::string>().size(), 1 + i % 300);
    seen.emplace(j["client"], i);
  }
  EXPECT_EQ(seen.size(), size_t{threads * per_thread});
}

TEST(access_log, full_queue_drops_and_counts_instead_of_blocking) {
  temp_dir dir;
  const auto fifo = dir.path() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  std::string error;
  auto log = access_log::open(fifo.string(), &error, 100);
  ASSERT_TRUE(log) << error;
  // Nobody reads: the pipe fills (64 KiB), the writer blocks, the queue fills.
  const auto start = steady_clock::now();
  constexpr int total = 5000;
  for (int i = 0; i < total; ++i) log->write(sample());
  EXPECT_LT(steady_clock::now() - start, seconds{2});  // write() never waited on I/O
  EXPECT_GT(log->dropped(), 0u);
  // Drain: every record not dropped arrives intact.
  std::atomic<bool> done{false};
  std::string received;
  std::thread drain([&] {
    char buf[65536];
    while (true) {
      ssize_t n = ::read(reader, buf, sizeof buf);
      if (n > 0) {
        received.append(buf, static_cast<size_t>(n));
      } else if (done && n <= 0) {
        break;
      } else {
        std::this_thread::sleep_for(milliseconds{1});
      }
    }
  });
  log->flush();
  const uint64_t dropped = log->dropped();
  log.reset();
  done = true;
  drain.join();
  ::close(reader);
  size_t lines = 0;
  for (size_t pos = 0; (pos = received.find('\n', pos)) != std::string::npos; ++pos) ++lines;
  EXPECT_EQ(lines + dropped, size_t{total});
}

}  // namespace
}  // namespace egressd::monitor
