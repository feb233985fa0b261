// Grant validation and JSON forms (see grant.hpp). Control path only:
// nlohmann-json may throw inside, nothing escapes.

#include "state/grant.hpp"

#include <openssl/rand.h>
#include <re2/re2.h>

#include <algorithm>
#include <cstdio>
#include <iterator>

#include <fmt/format.h>

#include "acl/pattern.hpp"
#include "config/config.hpp"
#include "monitor/access_log.hpp"

namespace egressd::state {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "nothing";
    default: return "a number";
  }
}

// Errors are one line whatever the request held: a control byte echoed
// from a pattern (RE2 quotes the offending text) is written as \xNN.
bool fail(std::string* error, std::string msg) {
  if (!error) return false;
  error->clear();
  for (const char c : msg) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      fmt::format_to(std::back_inserter(*error), "\\x{:02x}", u);
    else
      error->push_back(c);
  }
  return false;
}

// A pattern as `allow` takes it; regexes must compile (as policy::build
// requires) and stay small.
bool check_pattern(const json& v, std::string* out, std::string* error) {
  if (!v.is_string()) return fail(error, fmt::format("pattern must be a string, not {}", type_name(v)));
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_pattern_bytes)
    return fail(error, fmt::format("pattern is longer than {} bytes", max_pattern_bytes));
  std::string why;
  auto p = acl::parse_pattern(s, &why);
  if (!p) return fail(error, "pattern: " + why);
  if (p->kind == acl::pattern_kind::regex) {
    RE2::Options o;
    o.set_log_errors(false);
    RE2 re(p->text, o);
    if (!re.ok()) return fail(error, "pattern: invalid regular expression: " + re.error());
  }
  *out = s;
  return true;
}

bool check_ports(const json& v, std::vector<uint16_t>* out, std::string* error) {
  if (!v.is_array()) return fail(error, fmt::format("ports must be an array of port numbers, not {}", type_name(v)));
  if (v.empty()) return fail(error, "ports must not be empty (leave it out for 80,443)");
  if (v.size() > max_ports) return fail(error, fmt::format("ports has more than {} entries", max_ports));
  std::vector<uint16_t> ports;
  for (const auto& p : v) {
    if (!p.is_number_integer())
      return fail(error, fmt::format("ports must hold integers (1..65535), not {}", type_name(p)));
    const auto n = p.get<int64_t>();
    if (n < 1 || n > 65535) return fail(error, fmt::format("ports: {} is not a port (1..65535)", n));
    ports.push_back(static_cast<uint16_t>(n));
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  *out = std::move(ports);
  return true;
}

bool check_ttl(const json& v, milliseconds* out, std::string* error) {
  if (!v.is_string())
    return fail(error, fmt::format("ttl must be a duration string such as \"1h\", not {}", type_name(v)));
  const auto& s = v.get_ref<const std::string&>();
  milliseconds d{0};
  if (s.size() > 32 || !config::parse_duration(s, &d))
    return fail(error, "ttl is not a duration (a number with ms, s, m or h, e.g. \"30m\")");
  if (d.count() <= 0) return fail(error, "ttl must be more than 0");
  if (d > max_ttl) return fail(error, "ttl is more than the maximum of 720h");
  *out = d;
  return true;
}

// nlohmann has already checked the UTF-8; a note stays one line.
bool check_note(const json& v, std::string* out, std::string* error) {
  if (!v.is_string()) return fail(error, fmt::format("note must be a string, not {}", type_name(v)));
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_note_bytes) return fail(error, fmt::format("note is longer than {} bytes", max_note_bytes));
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return fail(error, "note must not contain control characters");
  *out = s;
  return true;
}

bool check_scope(const json& v, const char* key, std::string* out, std::string* error) {
  if (v.is_null()) return true;
  if (!v.is_string()) return fail(error, fmt::format("{} must be a string, not {}", key, type_name(v)));
  const auto& s = v.get_ref<const std::string&>();
  if (!valid_scope_name(s))
    return fail(error, fmt::format("{} is not a valid {} name (letters, digits, _ - .; 1 to 64)", key, key));
  *out = s;
  return true;
}

clock::time_point to_ms(clock::time_point t) { return std::chrono::time_point_cast<milliseconds>(t); }

// Digits at s[i..i+n): their value, or -1.
int digits(std::string_view s, size_t i, size_t n) {
  if (i + n > s.size()) return -1;
  int v = 0;
  for (size_t k = i; k < i + n; ++k) {
    if (s[k] < '0' || s[k] > '9') return -1;
    v = v * 10 + (s[k] - '0');
  }
  return v;
}

}  // namespace

bool valid_scope_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          c == '-'))
      return false;
  return true;
}

bool valid_grant_id(std::string_view id) {
  if (id.size() != 12) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string random_grant_id() {
  unsigned char b[6];
  if (RAND_bytes(b, sizeof b) != 1) return {};  // caller treats "" as a failure
  return fmt::format("{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]);
}

std::optional<grant> parse_grant_request(std::string_view body, clock::time_point now, std::string* error) {
  json j;
  // Strict: a key given twice is an error, not "the last one wins".
  std::vector<std::vector<std::string>> keys;
  std::string duplicate;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == json::parse_event_t::key && !keys.empty() && parsed.is_string()) {
      auto& seen = keys.back();
      const auto& k = parsed.get_ref<const std::string&>();
      if (std::find(seen.begin(), seen.end(), k) != seen.end() && duplicate.empty())
        duplicate = k.size() <= 32 ? k : k.substr(0, 32);
      else if (seen.size() < 64)
        seen.push_back(k);
    }
    return true;
  };
  try {
    j = json::parse(body.begin(), body.end(), cb);
  } catch (const json::parse_error& e) {
    fail(error, fmt::format("the body is not valid JSON (at byte {})", e.byte));
    return std::nullopt;
  } catch (const json::exception&) {  // e.g. a number too large for a double
    fail(error, "the body is not valid JSON (a number out of range)");
    return std::nullopt;
  }
  if (!duplicate.empty()) {
    bool plain = true;
    for (unsigned char c : duplicate) plain = plain && c >= 0x20 && c < 0x7f;
    fail(error, plain ? fmt::format("field '{}' is given twice", duplicate) : "a field is given twice");
    return std::nullopt;
  }
  if (!j.is_object()) {
    fail(error, fmt::format("the body must be a JSON object, not {}", type_name(j)));
    return std::nullopt;
  }
  grant g;
  g.ports = {80, 443};
  milliseconds ttl = default_ttl;
  bool has_pattern = false;
  for (const auto& [key, v] : j.items()) {
    bool ok;
    if (key == "pattern") {
      ok = check_pattern(v, &g.pattern, error);
      has_pattern = true;
    } else if (key == "ports") {
      ok = check_ports(v, &g.ports, error);
    } else if (key == "agent") {
      ok = check_scope(v, "agent", &g.agent, error);
    } else if (key == "group") {
      ok = check_scope(v, "group", &g.group, error);
    } else if (key == "ttl") {
      ok = check_ttl(v, &ttl, error);
    } else if (key == "note") {
      ok = check_note(v, &g.note, error);
    } else {
      // The key came from the client: quote it only when short and printable.
      bool plain = key.size() <= 32;
      for (unsigned char c : key) plain = plain && c >= 0x20 && c < 0x7f;
      ok = fail(error, plain ? fmt::format("unknown field '{}' (known: pattern, ports, agent, group, ttl, note)", key)
                             : "unknown field (known: pattern, ports, agent, group, ttl, note)");
    }
    if (!ok) return std::nullopt;
  }
  if (!has_pattern) {
    fail(error, "pattern is missing (e.g. {\"pattern\": \"files.example.org\"})");
    return std::nullopt;
  }
  if (!g.agent.empty() && !g.group.empty()) {
    fail(error, "give agent or group, not both");
    return std::nullopt;
  }
  g.created = to_ms(now);
  g.expires = g.created + ttl;
  return g;
}

nlohmann::ordered_json to_file_json(const grant& g) {
  auto scope_json = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s); };
  return nlohmann::ordered_json{{"id", g.id},
              {"pattern", g.pattern},
              {"ports", g.ports},
              {"agent", scope_json(g.agent)},
              {"group", scope_json(g.group)},
              {"expires", format_time(g.expires)},
              {"note", g.note},
              {"created", format_time(g.created)}};
}

nlohmann::ordered_json to_json(const grant& g, bool persisted) {
  nlohmann::ordered_json j = to_file_json(g);
  j["persisted"] = persisted;
  return j;
}

std::optional<grant> grant_from_file_json(const json& j, std::string* error) {
  if (!j.is_object()) {
    fail(error, "a grant is not a JSON object");
    return std::nullopt;
  }
  grant g;
  auto str = [&](const char* key, std::string* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return fail(error, fmt::format("a grant has no string '{}'", key));
    *out = it->get<std::string>();
    return true;
  };
  auto when = [&](const char* key, clock::time_point* out) {
    std::string s;
    if (!str(key, &s)) return false;
    auto t = parse_time(s);
    if (!t) return fail(error, fmt::format("a grant's '{}' is not an RFC 3339 time", key));
    *out = to_ms(*t);
    return true;
  };
  if (!str("id", &g.id) || !when("expires", &g.expires) || !when("created", &g.created) || !str("note", &g.note))
    return std::nullopt;
  if (!valid_grant_id(g.id)) {
    fail(error, "a grant's id is not 12 hex digits");
    return std::nullopt;
  }
  std::string why;
  auto bad = [&](const std::string& m) {
    fail(error, fmt::format("grant {}: {}", g.id, m));
    return std::nullopt;
  };
  auto it = j.find("pattern");
  if (it == j.end() || !check_pattern(*it, &g.pattern, &why)) return bad(it == j.end() ? "no pattern" : why);
  it = j.find("ports");
  if (it == j.end() || !check_ports(*it, &g.ports, &why)) return bad(it == j.end() ? "no ports" : why);
  for (const char* key : {"agent", "group"}) {
    it = j.find(key);
    if (it == j.end()) continue;
    if (!check_scope(*it, key, key[0] == 'a' ? &g.agent : &g.group, &why)) return bad(why);
  }
  if (!g.agent.empty() && !g.group.empty()) return bad("both agent and group");
  if (g.note.size() > max_note_bytes) return bad("note too long");
  return g;
}

std::string format_time(clock::time_point t) {
  std::string out;
  monitor::append_rfc3339_ms(out, t);
  return out;
}

// YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); 't'/'z' and a space for 'T'
// are accepted as RFC 3339 allows.
std::optional<clock::time_point> parse_time(std::string_view s) {
  using namespace std::chrono;
  if (s.size() < 20 || s.size() > 40) return std::nullopt;
  const int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
  const int h = digits(s, 11, 2), mi = digits(s, 14, 2), se = digits(s, 17, 2);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (h > 23 || mi > 59 || se > 60) return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  size_t i = 19;
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    size_t n = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++n)
      if (n < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
    if (n == 0) return std::nullopt;
    for (; n < 3; ++n) frac_ms *= 10;
  }
  if (i >= s.size()) return std::nullopt;
  int64_t offset_min = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    const int oh = digits(s, i + 1, 2), om = digits(s, i + 4, 2);
    if (oh < 0 || om < 0 || s[i + 3] != ':' || oh > 23 || om > 59) return std::nullopt;
    offset_min = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{std::min(se, 59)} + milliseconds{frac_ms} -
                 minutes{offset_min};
  return clock::time_point{duration_cast<clock::duration>(t.time_since_epoch())};
}

}  // namespace egressd::state
