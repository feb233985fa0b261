#include "tools/squid_acl_table.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "config/text_file.hpp"

namespace egressd::tools {

namespace {

std::string where_of(const squid_line& l) { return l.file + ":" + std::to_string(l.line); }

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  return s;
}

bool is_method_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Why an ACL type cannot be expressed in egressd.
std::string unsupported_why(const std::string& type) {
  auto in = [&](std::initializer_list<const char*> names) {
    return std::any_of(names.begin(), names.end(), [&](const char* n) { return type == n; });
  };
  if (in({"url_regex", "urlpath_regex", "urllogin", "path_regex"}))
    return "egressd decides by host name, never by URL or path (it cannot see HTTPS paths)";
  if (in({"browser", "req_header", "rep_header", "referer_regex", "req_mime_type", "rep_mime_type",
          "http_status", "has"}))
    return "egressd does not decide by headers or replies";
  if (in({"proxy_auth", "proxy_auth_regex", "ext_user", "ext_user_regex", "user_cert", "ca_cert",
          "external", "max_user_ip"}))
    return "egressd has no proxy authentication or external helpers";
  if (in({"time"})) return "egressd has no time-based rules";
  if (in({"srcdomain", "srcdom_regex"})) return "egressd does not reverse-resolve clients";
  if (in({"myport", "myportname", "localport", "myip", "localip"}))
    return "egressd does not decide by the address or port a client connected to";
  if (in({"maxconn"})) return "egressd limits connections per rule (allow ... conns=), not as an ACL";
  if (in({"proto"})) return "egressd proxies HTTP and HTTPS only";
  if (in({"ssl_error", "server_cert_fingerprint", "at_step", "ssl::server_name_regex_cert",
          "connections_encrypted", "server_ssl_cert_fingerprint"}))
    return "egressd never decrypts TLS";
  if (in({"any-of", "all-of"})) return "combined ACLs are not translated";
  return "egressd decides by client network, host name, port and method only";
}

std::optional<squid_acl_kind> kind_of(const std::string& type) {
  if (type == "src") return squid_acl_kind::src;
  if (type == "dst") return squid_acl_kind::dst;
  if (type == "dstdomain" || type == "dstdom_regex" || type == "ssl::server_name" ||
      type == "ssl::server_name_regex")
    return squid_acl_kind::domain;
  if (type == "port") return squid_acl_kind::port;
  if (type == "method") return squid_acl_kind::method;
  return std::nullopt;
}

bool is_regex_type(const std::string& type) {
  return type == "dstdom_regex" || type == "ssl::server_name_regex";
}

// Squid's "16.0.0.0/255.240.0.0" mask form: a prefix length if contiguous.
bool mask_prefix(const acl::ip_address& m, unsigned* prefix) {
  unsigned bits = m.is_v4() ? 32 : 128, n = 0;
  bool zero_seen = false;
  for (unsigned i = 0; i < bits; ++i) {
    bool one = (m.bytes[i / 8] >> (7 - i % 8)) & 1;
    if (one && zero_seen) return false;
    if (one) ++n; else zero_seen = true;
  }
  *prefix = n;
  return true;
}

using u128 = unsigned __int128;

u128 to_int(const acl::ip_address& a) {
  u128 v = 0;
  for (unsigned i = 0; i < (a.is_v4() ? 4u : 16u); ++i) v = (v << 8) | a.bytes[i];
  return v;
}

acl::ip_address from_int(u128 v, bool v4) {
  acl::ip_address a;
  a.family = v4 ? acl::ip_address::family_t::v4 : acl::ip_address::family_t::v6;
  unsigned n = v4 ? 4 : 16;
  for (unsigned i = n; i-- > 0; v >>= 8) a.bytes[i] = uint8_t(v & 0xff);
  return a;
}

// Squid's "FIRST-LAST" address range as the fewest networks covering it
// exactly. False when it is not a range of two addresses of one family.
bool range_to_nets(const std::string& v, std::vector<acl::cidr>* out) {
  auto dash = v.find('-');
  if (dash == std::string::npos || v.find('/') != std::string::npos) return false;
  auto a = acl::parse_ip_strict(v.substr(0, dash));
  auto b = acl::parse_ip_strict(v.substr(dash + 1));
  if (!a || !b || a->is_v4() != b->is_v4()) return false;
  const bool v4 = a->is_v4();
  const unsigned bits = v4 ? 32 : 128;
  const u128 max = v4 ? u128(0xffffffffu) : ~u128(0);
  u128 lo = to_int(*a), hi = to_int(*b);
  if (lo > hi) return false;
  while (true) {
    unsigned k = 0;  // block of 2^k addresses starting at lo
    while (k < bits && ((lo >> k) & 1) == 0) {
      u128 size = u128(1) << (k + 1);
      if (k + 1 == bits ? lo != 0 || hi != max : lo + size - 1 > hi) break;
      ++k;
    }
    acl::cidr c;
    c.network = from_int(lo, v4);
    c.prefix = uint8_t(bits - k);
    out->push_back(c);
    u128 last = k == bits ? max : lo + (u128(1) << k) - 1;
    if (last >= hi) return true;
    lo = last + 1;
  }
}

}  // namespace

squid_acl_table::squid_acl_table(bool file_access) : file_access_(file_access) {
  auto def = [&](const char* name, squid_acl_kind k, std::initializer_list<const char*> nets) {
    squid_acl a;
    a.name = name;
    a.type = k == squid_acl_kind::src ? "src" : k == squid_acl_kind::dst ? "dst" : "predefined";
    a.kind = k;
    a.predefined = true;
    a.first_where = "predefined";
    for (const char* n : nets) parse_net(n, &a.nets);
    acls_[name] = std::move(a);
  };
  def("all", squid_acl_kind::all, {});
  def("manager", squid_acl_kind::manager, {});
  def("localhost", squid_acl_kind::src, {"127.0.0.1/32", "::1/128"});
  def("to_localhost", squid_acl_kind::dst, {"127.0.0.0/8", "0.0.0.0/32", "::1/128"});
  def("to_linklocal", squid_acl_kind::dst, {"169.254.0.0/16", "fe80::/10"});
}

const squid_acl* squid_acl_table::find(const std::string& name) const {
  auto it = acls_.find(name);
  return it == acls_.end() ? nullptr : &it->second;
}

bool squid_acl_table::covers_everything(const std::vector<acl::cidr>& nets) {
  bool v4 = false, v6 = false;
  for (const auto& n : nets) {
    if (n.prefix != 0) continue;
    (n.network.is_v4() ? v4 : v6) = true;
  }
  return v4 && v6;
}

bool squid_acl_table::parse_net(const std::string& v, std::vector<acl::cidr>* out) {
  if (v.find('-') != std::string::npos) return range_to_nets(v, out);
  if (v == "all") {
    out->push_back(*acl::parse_cidr("0.0.0.0/0"));
    out->push_back(*acl::parse_cidr("::/0"));
    return true;
  }
  auto slash = v.find('/');
  std::string addr = v.substr(0, slash);
  if (addr.size() > 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  auto ip = acl::parse_ip_strict(addr);
  if (!ip) return false;
  unsigned bits = ip->is_v4() ? 32 : 128, prefix = bits;
  if (slash != std::string::npos) {
    std::string p = v.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size()) {
      auto m = acl::parse_ip_strict(p);
      if (!m || m->is_v4() != ip->is_v4() || !mask_prefix(*m, &prefix)) return false;
    }
    if (prefix > bits) return false;
  }
  acl::cidr c;
  c.network = *ip;
  c.prefix = uint8_t(prefix);
  for (unsigned bit = prefix; bit < bits; ++bit) c.network.bytes[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
  out->push_back(c);
  return true;
}

void squid_acl_table::add(const squid_line& l, std::vector<config::diagnostic>* errors) {
  auto fail = [&](std::string m) { errors->push_back({l.file, l.line, std::move(m)}); };
  if (l.words.size() < 3) {
    fail("acl needs a name and a type: acl NAME TYPE VALUE...");
    return;
  }
  const std::string& name = l.words[1].text;
  const std::string& type = l.words[2].text;
  auto k = kind_of(type);
  squid_acl_kind kind = k ? *k : squid_acl_kind::unsupported;
  // `acl manager proto cache_object` (Squid 3) names the cache manager.
  bool manager = name == "manager" && (type == "proto" || type == "url_regex");
  if (manager) kind = squid_acl_kind::manager;

  auto it = acls_.find(name);
  if (it != acls_.end() && it->second.predefined) {
    acls_.erase(it);  // an explicit definition replaces Squid's predefined one
    it = acls_.end();
  }
  if (it == acls_.end()) {
    squid_acl a;
    a.name = name;
    a.type = type;
    a.kind = kind;
    a.first_where = where_of(l);
    if (kind == squid_acl_kind::unsupported) a.why = unsupported_why(type);
    it = acls_.emplace(name, std::move(a)).first;
  } else if (it->second.type != type) {
    fail("acl " + name + " was defined with type " + it->second.type + " at " + it->second.first_where +
         ", not " + type);
    return;
  }
  squid_acl& a = it->second;
  if (kind == squid_acl_kind::manager || kind == squid_acl_kind::unsupported) return;
  if (l.words.size() < 4) {
    fail("acl " + name + " " + type + " needs at least one value");
    return;
  }
  add_values(a, l, 3, errors);
}

bool squid_acl_table::add_values(squid_acl& a, const squid_line& l, size_t first,
                                 std::vector<config::diagnostic>* errors) {
  bool icase = false, ok = true, flags_done = false;
  const std::string where = where_of(l);
  for (size_t i = first; i < l.words.size(); ++i) {
    const squid_word& w = l.words[i];
    if (!w.quoted && !flags_done && w.text.size() >= 2 && (w.text[0] == '-' || w.text[0] == '+') &&
        !(a.kind == squid_acl_kind::port && std::isdigit(static_cast<unsigned char>(w.text[1])))) {
      // Flags: -i/+i (regex case), -n (no DNS lookups), -- (end of flags).
      if (w.text == "--") flags_done = true;
      else if (w.text == "-i") icase = true;
      else if (w.text == "+i") icase = false;
      else if (w.text == "-n" || w.text.rfind("-m", 0) == 0) {}
      else {
        errors->push_back({l.file, l.line, "unknown acl flag '" + w.text + "'"});
        ok = false;
      }
      continue;
    }
    if (w.quoted) {
      if (!file_access_) {
        errors->push_back({l.file, l.line, "acl value files are not allowed here"});
        ok = false;
        continue;
      }
      std::string path = !w.text.empty() && w.text[0] == '/' ? w.text : l.dir + "/" + w.text;
      std::string text, err;
      if (!config::read_text_file(path, &text, &err)) {
        errors->push_back({l.file, l.line, "cannot read " + path + ": " + err});
        ok = false;
        continue;
      }
      int n = 0;
      size_t pos = 0;
      while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        ++n;
        std::vector<squid_word> words;
        squid_config_reader::split_words(line, &words);
        for (const auto& fw : words) {
          std::string e;
          if (!add_value(a, fw.text, icase, path + ":" + std::to_string(n), &e)) {
            errors->push_back({path, n, e});
            ok = false;
          }
        }
      }
      continue;
    }
    std::string e;
    if (!add_value(a, w.text, icase, where, &e)) {
      errors->push_back({l.file, l.line, e});
      ok = false;
    }
  }
  return ok;
}

bool squid_acl_table::add_value(squid_acl& a, const std::string& v, bool icase, const std::string& where,
                                std::string* err) {
  switch (a.kind) {
    case squid_acl_kind::src:
    case squid_acl_kind::dst:
      if (!parse_net(v, &a.nets)) {
        auto dash = v.find('-');
        bool ip_range = dash != std::string::npos && acl::parse_ip_strict(v.substr(0, dash));
        if (!ip_range && v.find('/') == std::string::npos && !acl::looks_like_ip_literal(v)) {
          // A host name: Squid resolves it once at start-up; egressd groups
          // and allow_net take networks only.
          a.kind = squid_acl_kind::unsupported;
          a.why = "'" + v + "' is a host name; egressd takes networks (CIDR) only";
          return true;
        }
        *err = "invalid address '" + v + "' in acl " + a.name;
        return false;
      }
      return true;
    case squid_acl_kind::domain:
      if (is_regex_type(a.type))
        a.regexes.push_back({v, icase, where});
      else
        a.domains.push_back({v, where});
      return true;
    case squid_acl_kind::port: {
      port_set::interval iv;
      if (!port_set::parse_item(v, &iv)) {
        *err = "invalid port '" + v + "' in acl " + a.name + " (write N or N-M, 1..65535)";
        return false;
      }
      a.ports.add(iv);
      return true;
    }
    case squid_acl_kind::method: {
      std::string m = upper(v);
      if (m.empty() || !std::all_of(m.begin(), m.end(), is_method_char)) {
        *err = "invalid method '" + v + "' in acl " + a.name;
        return false;
      }
      if (std::find(a.methods.begin(), a.methods.end(), m) == a.methods.end()) a.methods.push_back(m);
      return true;
    }
    default:
      return true;
  }
}

}  // namespace egressd::tools
