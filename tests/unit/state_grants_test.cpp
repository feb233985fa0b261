// Grants: request validation (every field's bad forms), the compiled view
// (pattern kinds, ports, scope, expiry at match time), the state file
// (round trip, corrupt files, atomic replacement) and the denial feed.

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "state/denial_feed.hpp"
#include "state/grant.hpp"
#include "state/grant_file.hpp"
#include "state/grant_store.hpp"
#include "state/grant_view.hpp"

using namespace egressd;
using namespace egressd::state;
using namespace std::chrono_literals;

namespace {

const clock::time_point t0 = clock::time_point{} + std::chrono::hours(24 * 20000);

std::string fmt_id(int n) {
  char b[16];
  std::snprintf(b, sizeof b, "%012x", n);
  return b;
}

grant make(std::string pattern, std::vector<uint16_t> ports = {80, 443}, std::string agent = {},
           std::string group = {}, clock::duration ttl = 1h, clock::duration age = 0s) {
  grant g;
  static int n = 0;
  g.id = fmt_id(++n);
  g.pattern = std::move(pattern);
  g.ports = std::move(ports);
  g.agent = std::move(agent);
  g.group = std::move(group);
  g.created = std::chrono::time_point_cast<std::chrono::milliseconds>(t0 - age);
  g.expires = std::chrono::time_point_cast<std::chrono::milliseconds>(t0 + ttl);
  return g;
}

acl::client_id addr(const char* ip) { return acl::client_id{*acl::parse_ip_literal(ip), {}, nullptr}; }

struct bad_case {
  const char* body;
  const char* error_part;
};

class GrantRequestBad : public ::testing::TestWithParam<bad_case> {};

TEST_P(GrantRequestBad, IsRefusedWithOneLine) {
  std::string err;
  auto g = parse_grant_request(GetParam().body, t0, &err);
  EXPECT_FALSE(g) << GetParam().body;
  EXPECT_NE(err.find(GetParam().error_part), std::string::npos) << GetParam().body << " -> " << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Table, GrantRequestBad,
    ::testing::Values(
        bad_case{"", "not valid JSON"}, bad_case{"pattern=x", "not valid JSON"},
        bad_case{"{\"pattern\": \"a.test\"", "not valid JSON"}, bad_case{"[]", "JSON object"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": [65E336]}", "not valid JSON"},
        bad_case{"\"a.test\"", "JSON object"}, bad_case{"{}", "pattern is missing"},
        bad_case{"{\"pattern\": 5}", "pattern must be a string"},
        bad_case{"{\"pattern\": \"\"}", "pattern:"}, bad_case{"{\"pattern\": \"a.*.test\"}", "pattern:"},
        bad_case{"{\"pattern\": \"b\\u00fccher.de\"}", "punycode"},
        bad_case{"{\"pattern\": \"~(unclosed\"}", "invalid regular expression"},
        bad_case{"{\"pattern\": \"10.0.0.5\"}", "is an IP address"},
        bad_case{"{\"pattern\": \"127.1\"}", "is an IP address"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": 443}", "ports must be an array"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": []}", "must not be empty"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": [0]}", "not a port"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": [65536]}", "not a port"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": [-1]}", "not a port"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": [\"443\"]}", "integers"},
        bad_case{"{\"pattern\": \"a.test\", \"ports\": [443.5]}", "integers"},
        bad_case{"{\"pattern\": \"a.test\", \"ttl\": 60}", "ttl must be a duration string"},
        bad_case{"{\"pattern\": \"a.test\", \"ttl\": \"3d\"}", "ttl is not a duration"},
        bad_case{"{\"pattern\": \"a.test\", \"ttl\": \"\"}", "ttl is not a duration"},
        bad_case{"{\"pattern\": \"a.test\", \"ttl\": \"0s\"}", "more than 0"},
        bad_case{"{\"pattern\": \"a.test\", \"ttl\": \"721h\"}", "maximum of 720h"},
        bad_case{"{\"pattern\": \"a.test\", \"note\": 1}", "note must be a string"},
        bad_case{"{\"pattern\": \"a.test\", \"note\": \"a\\nb\"}", "control characters"},
        bad_case{"{\"pattern\": \"a.test\", \"agent\": \"\"}", "not a valid agent name"},
        bad_case{"{\"pattern\": \"a.test\", \"agent\": \"a b\"}", "not a valid agent name"},
        bad_case{"{\"pattern\": \"a.test\", \"agent\": 7}", "agent must be a string"},
        bad_case{"{\"pattern\": \"a.test\", \"group\": \"x/y\"}", "not a valid group name"},
        bad_case{"{\"pattern\": \"a.test\", \"agent\": \"a\", \"group\": \"g\"}", "not both"},
        bad_case{"{\"pattern\": \"a.test\", \"extra\": true}", "unknown field 'extra'"},
        bad_case{"{\"pattern\": \"a.test\", \"id\": \"abc\"}", "unknown field 'id'"},
        bad_case{"{\"pattern\": \"a.test\", \"pattern\": \"b.test\"}", "field 'pattern' is given twice"},
        bad_case{"{\"pattern\": \"a.test\", \"ttl\": \"1h\", \"ttl\": \"720h\"}", "given twice"}));

TEST(GrantRequest, LongNoteAndNamesAreRefused) {
  std::string err;
  const std::string note(257, 'n');
  EXPECT_FALSE(parse_grant_request("{\"pattern\":\"a.test\",\"note\":\"" + note + "\"}", t0, &err));
  EXPECT_NE(err.find("longer than 256"), std::string::npos);
  const std::string agent(65, 'a');
  EXPECT_FALSE(parse_grant_request("{\"pattern\":\"a.test\",\"agent\":\"" + agent + "\"}", t0, &err));
  EXPECT_TRUE(parse_grant_request("{\"pattern\":\"a.test\",\"agent\":\"" + agent.substr(1) + "\"}", t0, &err));
  // Invalid UTF-8 never passes the JSON parser.
  EXPECT_FALSE(parse_grant_request("{\"pattern\":\"a.test\",\"note\":\"\xff\"}", t0, &err));
}

TEST(GrantRequest, DefaultsAndValues) {
  std::string err;
  auto g = parse_grant_request("{\"pattern\": \"Files.Example.org\"}", t0, &err);
  ASSERT_TRUE(g) << err;
  EXPECT_EQ(g->pattern, "Files.Example.org");
  EXPECT_EQ(g->ports, (std::vector<uint16_t>{80, 443}));
  EXPECT_EQ(g->expires - g->created, std::chrono::hours(1));
  EXPECT_TRUE(g->agent.empty() && g->group.empty() && g->note.empty() && g->id.empty());

  g = parse_grant_request(
      "{\"pattern\": \"~^[a-z]+\\\\.pypi\\\\.org$\", \"ports\": [8443, 443, 443], \"agent\": \"build-7\", "
      "\"ttl\": \"720h\", \"note\": \"ticket 42 \\u00e9\", \"group\": null}",
      t0, &err);
  ASSERT_TRUE(g) << err;
  EXPECT_EQ(g->ports, (std::vector<uint16_t>{443, 8443}));
  EXPECT_EQ(g->agent, "build-7");
  EXPECT_EQ(g->expires - g->created, std::chrono::hours(720));
  EXPECT_EQ(g->note, "ticket 42 \xc3\xa9");
}

TEST(GrantIds, RandomHexAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const auto id = random_grant_id();
    EXPECT_TRUE(valid_grant_id(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(GrantTime, FormatAndParse) {
  const auto t = std::chrono::time_point_cast<std::chrono::milliseconds>(t0 + 1234ms);
  EXPECT_EQ(parse_time(format_time(t)), t);
  EXPECT_EQ(parse_time("2026-12-03T12:00:00Z"), parse_time("2026-12-03T13:00:00+01:00"));
  EXPECT_EQ(parse_time("2026-12-03T12:00:00.5Z"), *parse_time("2026-12-03T12:00:00Z") + 500ms);
  for (const char* bad : {"", "2026-12-03", "2026-12-03T12:00:00", "2026-13-03T12:00:00Z", "2026-02-30T12:00:00Z",
                          "2026-12-03T25:00:00Z", "2026-12-03T12:00:00.Z", "2026-12-03T12:00:00Zjunk", "yesterday"})
    EXPECT_FALSE(parse_time(bad)) << bad;
}

// --- the compiled view ---------------------------------------------------------

TEST(GrantView, PatternKinds) {
  auto v = grant_view::build({make("api.example.com"), make(".suffix.test"), make("*.wild.test"),
                              make("~[a-z]+[0-9]\\.regex\\.test")});
  const auto who = addr("10.0.0.1");
  EXPECT_EQ(v->match("api.example.com", 443, who, {}, t0)->pattern, "api.example.com");
  EXPECT_FALSE(v->match("x.api.example.com", 443, who, {}, t0));
  EXPECT_TRUE(v->match("suffix.test", 443, who, {}, t0));
  EXPECT_TRUE(v->match("a.b.suffix.test", 443, who, {}, t0));
  EXPECT_FALSE(v->match("wild.test", 443, who, {}, t0));
  EXPECT_TRUE(v->match("a.wild.test", 443, who, {}, t0));
  EXPECT_TRUE(v->match("abc1.regex.test", 443, who, {}, t0));
  EXPECT_FALSE(v->match("abc.regex.test", 443, who, {}, t0));
  EXPECT_FALSE(v->match("other.test", 443, who, {}, t0));
}

TEST(GrantView, PortsAndSpecificity) {
  auto v = grant_view::build({make(".example.com", {443}), make("api.example.com", {8443}), make("~.*", {22})});
  const auto who = addr("10.0.0.1");
  EXPECT_EQ(v->match("api.example.com", 8443, who, {}, t0)->pattern, "api.example.com");
  EXPECT_EQ(v->match("api.example.com", 443, who, {}, t0)->pattern, ".example.com");
  EXPECT_FALSE(v->match("api.example.com", 80, who, {}, t0));
  EXPECT_EQ(v->match("anything.test", 22, who, {}, t0)->pattern, "~.*");
}

TEST(GrantView, ScopeAgentGroupEveryone) {
  std::vector<acl::client_group> groups{{"ci", {*acl::parse_cidr("10.1.0.0/16")}}};
  auto v = grant_view::build({make("agent.test", {443}, "build-7"), make("group.test", {443}, {}, "ci"),
                              make("all.test", {443})});
  const std::vector<std::string> agent_groups{"ci"};
  const acl::client_id build7{*acl::parse_ip_literal("192.0.2.1"), "build-7", nullptr};
  const acl::client_id other{*acl::parse_ip_literal("192.0.2.1"), "other", nullptr};
  const acl::client_id member{*acl::parse_ip_literal("192.0.2.1"), "m", &agent_groups};
  EXPECT_TRUE(v->match("agent.test", 443, build7, groups, t0));
  EXPECT_FALSE(v->match("agent.test", 443, other, groups, t0));
  EXPECT_FALSE(v->match("agent.test", 443, addr("10.1.0.5"), groups, t0));
  EXPECT_TRUE(v->match("group.test", 443, addr("10.1.0.5"), groups, t0));   // address in the group
  EXPECT_TRUE(v->match("group.test", 443, member, groups, t0));             // agent in the group
  EXPECT_FALSE(v->match("group.test", 443, addr("10.2.0.5"), groups, t0));  // outside
  EXPECT_FALSE(v->match("group.test", 443, build7, groups, t0));
  EXPECT_FALSE(v->match("group.test", 443, addr("10.1.0.5"), {}, t0));  // group unknown to the config
  EXPECT_TRUE(v->match("all.test", 443, other, groups, t0));
  EXPECT_TRUE(v->match("all.test", 443, addr("10.2.0.5"), groups, t0));
}

TEST(GrantView, ExpiryIsCheckedAtMatchTime) {
  auto v = grant_view::build({make("exp.test", {443}, {}, {}, 2s), make(".test", {443}, {}, {}, 1h, 1h)});
  const auto who = addr("10.0.0.1");
  EXPECT_EQ(v->match("exp.test", 443, who, {}, t0 + 1999ms)->pattern, "exp.test");
  // Past its expiry the exact grant is never honoured, and the next one fits.
  EXPECT_EQ(v->match("exp.test", 443, who, {}, t0 + 2s)->pattern, ".test");
  EXPECT_FALSE(v->match("exp.test", 443, who, {}, t0 + 2h));
}

// --- the store and the state file -----------------------------------------------

class StateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("egressd-grants-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "state.json").string();
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& text) { std::ofstream(path_) << text; }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(StateFile, MissingIsEmptyAndRoundTrip) {
  grant_store s(path_);
  std::string err;
  ASSERT_TRUE(s.load(t0, &err)) << err;
  EXPECT_EQ(s.size(), 0u);
  EXPECT_FALSE(std::filesystem::exists(path_));
  int published = 0;
  s.set_publisher([&](std::shared_ptr<const grant_view>) { ++published; });
  grant g = make("a.test", {443}, "build-7");
  g.id.clear();
  g.note = "why \"quoted\"";
  ASSERT_EQ(s.add(g, t0, &err), grant_store::result::ok) << err;
  EXPECT_TRUE(valid_grant_id(g.id));
  EXPECT_EQ(published, 2);
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temporary file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);

  grant_store again(path_);
  ASSERT_TRUE(again.load(t0, &err)) << err;
  ASSERT_EQ(again.size(), 1u);
  const auto live = again.live(t0);
  const grant& back = live[0];
  EXPECT_EQ(back.id, g.id);
  EXPECT_EQ(back.pattern, "a.test");
  EXPECT_EQ(back.ports, std::vector<uint16_t>{443});
  EXPECT_EQ(back.agent, "build-7");
  EXPECT_EQ(back.note, g.note);
  EXPECT_EQ(back.expires, g.expires);
  EXPECT_EQ(back.created, g.created);
  EXPECT_TRUE(again.view()->match("a.test", 443, acl::client_id{{}, "build-7", nullptr}, {}, t0));

  // Expired grants are dropped on load; revocation is written through.
  grant_store later(path_);
  ASSERT_TRUE(later.load(t0 + 2h, &err));
  EXPECT_EQ(later.size(), 0u);
  EXPECT_EQ(again.remove(g.id, t0, &err), grant_store::result::ok);
  EXPECT_EQ(again.remove(g.id, t0, &err), grant_store::result::unknown);
  grant_store after(path_);
  ASSERT_TRUE(after.load(t0, &err));
  EXPECT_EQ(after.size(), 0u);
}

TEST_F(StateFile, CorruptOrUnreadableIsAnError) {
  for (const char* text : {"", "{", "[]", "{\"version\": 2, \"grants\": []}", "{\"grants\": []}",
                           "{\"version\": 1, \"grants\": [{\"id\": \"xyz\"}]}",
                           "{\"version\": 1, \"grants\": [{\"id\": \"0123456789ab\", \"pattern\": \"a.*.b\", "
                           "\"ports\": [443], \"expires\": \"2099-01-01T00:00:00.000Z\", \"note\": \"\", "
                           "\"created\": \"2020-01-01T00:00:00.000Z\"}]}"}) {
    write(text);
    grant_store s(path_);
    std::string err;
    EXPECT_FALSE(s.load(t0, &err)) << text;
    EXPECT_EQ(err.rfind(path_ + ": ", 0), 0u) << err;
  }
  std::filesystem::remove(path_);
  std::filesystem::create_directory(path_);  // a directory: unreadable as a file
  grant_store s(path_);
  std::string err;
  EXPECT_FALSE(s.load(t0, &err));
  EXPECT_NE(err.find("cannot read"), std::string::npos) << err;
}

TEST_F(StateFile, FailedWriteLeavesOldFileAndAddsNothing) {
  grant_store s(path_);
  std::string err;
  ASSERT_TRUE(s.load(t0, &err));
  grant g = make("a.test");
  g.id.clear();
  ASSERT_EQ(s.add(g, t0, &err), grant_store::result::ok);
  const auto before = std::filesystem::file_size(path_);
  // Make the directory unwritable (as root, chmod does not stop us: use a
  // path whose directory does not exist instead).
  grant_store broken((dir_ / "missing" / "state.json").string());
  ASSERT_TRUE(broken.load(t0, &err));
  grant h = make("b.test");
  h.id.clear();
  EXPECT_EQ(broken.add(h, t0, &err), grant_store::result::not_saved);
  EXPECT_NE(err.find("not added"), std::string::npos) << err;
  EXPECT_EQ(broken.size(), 0u);
  EXPECT_FALSE(broken.view()->match("b.test", 443, addr("10.0.0.1"), {}, t0));
  EXPECT_EQ(std::filesystem::file_size(path_), before);
}

TEST(GrantStore, SweepAndMemoryOnly) {
  grant_store s;
  std::string err;
  ASSERT_TRUE(s.load(t0, &err));
  EXPECT_FALSE(s.persisted());
  grant g = make("a.test", {443}, {}, {}, 2s);
  g.id.clear();
  ASSERT_EQ(s.add(g, t0, &err), grant_store::result::ok);
  EXPECT_FALSE(s.sweep(t0 + 1s, &err));
  EXPECT_TRUE(s.sweep(t0 + 2s, &err));
  EXPECT_EQ(s.size(), 0u);
  EXPECT_TRUE(s.view()->empty());
}

// The shared set (state redis://): changes go to the backend first, a stale
// read-back never undoes a newer change, an unreachable backend changes nothing.
TEST(GrantStore, SharedBackendVersions) {
  grant_store s;
  std::string err;
  ASSERT_TRUE(s.load(t0, &err));
  int64_t version = 0;
  bool reachable = true;
  std::vector<std::string> stored;
  s.set_shared({[&](const grant& g, size_t) -> int64_t {
                  if (!reachable) return -1;
                  stored.push_back(g.id);
                  return ++version;
                },
                [&](const std::string& id) -> int64_t {
                  if (!reachable) return -1;
                  auto n = std::erase(stored, id);
                  return n ? ++version : 0;
                }});
  EXPECT_TRUE(s.persisted());
  const grant a = make("a.test", {443}, {}, {}, 60s);
  grant g = a;
  ASSERT_EQ(s.add(g, t0, &err), grant_store::result::ok) << err;
  ASSERT_EQ(stored, std::vector<std::string>{g.id});
  EXPECT_EQ(s.live(t0).size(), 1u);
  // A read made before the add (version 0, empty) arrives late: ignored.
  s.replace_all(0, {}, false, t0);
  EXPECT_EQ(s.live(t0).size(), 1u);
  // ... unless it follows a reconnection (Redis may have started over).
  s.replace_all(0, {}, true, t0);
  EXPECT_EQ(s.live(t0).size(), 0u);
  // The set read back: installed, expired ones dropped.
  grant other = make("b.test", {443}, {}, {}, 1s);
  other.id = "0123456789ab";
  s.replace_all(5, {g, other}, false, t0 + 2s);
  ASSERT_EQ(s.live(t0 + 2s).size(), 1u);
  EXPECT_EQ(s.live(t0 + 2s)[0].id, g.id);
  // Unreachable: 503-worthy, nothing changes here either.
  reachable = false;
  grant h = a;
  EXPECT_EQ(s.add(h, t0, &err), grant_store::result::unavailable);
  EXPECT_EQ(err, "the shared state (Redis) is unreachable: grants cannot be changed now");
  EXPECT_EQ(s.remove(g.id, t0, &err), grant_store::result::unavailable);
  EXPECT_EQ(s.live(t0).size(), 1u);
  reachable = true;
  EXPECT_EQ(s.remove(g.id, t0, &err), grant_store::result::ok);
  EXPECT_EQ(s.live(t0).size(), 0u);
  EXPECT_TRUE(s.view()->empty());
  EXPECT_EQ(s.remove(g.id, t0, &err), grant_store::result::unknown);
}

// --- the denial feed -------------------------------------------------------------

TEST(DenialFeed, GroupsMergesAndFilters) {
  denial_feed f(2);
  const auto r = acl::reason::not_allowed;
  f.record(0, "", "10.0.0.1", "a.test", 443, r, t0);
  f.record(1, "", "10.0.0.1", "a.test", 443, r, t0 + 1s);  // another worker, same group
  f.record(0, "", "10.0.0.1", "a.test", 80, r, t0 + 2s);
  f.record(0, "build-7", "10.0.0.9", "a.test", 443, r, t0 + 3s);
  f.record(1, "build-7", "10.0.0.8", "a.test", 443, r, t0 + 4s);
  auto all = f.read(std::nullopt);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].agent, "build-7");  // newest first
  EXPECT_EQ(all[0].count, 2u);
  EXPECT_EQ(all[0].client, "10.0.0.8");
  EXPECT_EQ(all[0].first, t0 + 3s);
  EXPECT_EQ(all[0].last, t0 + 4s);
  EXPECT_EQ(all[2].client, "10.0.0.1");
  EXPECT_EQ(all[2].count, 2u);
  EXPECT_EQ(all[2].first, t0);
  EXPECT_EQ(all[2].last, t0 + 1s);
  EXPECT_EQ(f.read(t0 + 2s).size(), 2u);
  EXPECT_EQ(f.read(t0 + 5s).size(), 0u);
}

TEST(DenialFeed, BoundedOldestDropped) {
  denial_feed f(1);
  for (int i = 0; i < 1500; ++i) {
    char host[32];
    std::snprintf(host, sizeof host, "h%d.test", i);
    f.record(0, "", "10.0.0.1", host, 443, acl::reason::not_allowed, t0 + std::chrono::milliseconds(i));
  }
  auto all = f.read(std::nullopt);
  ASSERT_EQ(all.size(), denial_feed::max_groups);
  EXPECT_EQ(all.front().host, "h1499.test");
  EXPECT_EQ(all.back().host, "h500.test");
}

}  // namespace

TEST(DenialFeed, TakeChangesHandsOutEachDenialOnce) {
  denial_feed f(2);
  const auto now = denial_feed::clock::now();
  f.record(0, "", "10.0.0.1", "a.test", 443, acl::reason::not_allowed, now);
  f.record(0, "", "10.0.0.1", "a.test", 443, acl::reason::not_allowed, now + 1s);
  f.record(1, "", "10.0.0.1", "a.test", 443, acl::reason::not_allowed, now + 2s);
  f.record(1, "bot", "10.0.0.2", "b.test", 80, acl::reason::port, now);
  auto c = f.take_changes();
  uint64_t total = 0;
  for (const auto& g : c) total += g.count;
  EXPECT_EQ(c.size(), 3u);  // one per shard and key
  EXPECT_EQ(total, 4u);
  EXPECT_TRUE(f.take_changes().empty());
  f.record(0, "", "10.0.0.1", "a.test", 443, acl::reason::not_allowed, now + 3s);
  c = f.take_changes();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].count, 1u);
  EXPECT_EQ(c[0].last, now + 3s);
  // The feed itself still counts everything.
  EXPECT_EQ(f.read(std::nullopt).front().count, 4u);
}
