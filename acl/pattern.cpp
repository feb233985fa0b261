// Host-name normalisation and pattern parsing (see pattern.hpp).
// Pure functions; no shared state, safe from any thread.

#include "acl/pattern.hpp"

#include "acl/ip_address.hpp"

namespace egressd::acl {
namespace {

constexpr size_t max_name = 253;
constexpr size_t max_label = 63;

enum class name_error : uint8_t {
  ok,
  empty,
  empty_label,
  label_too_long,
  name_too_long,
  non_ascii,
  star,
  bad_char,
};

// Lower-cases `in` into out (capacity >= max_name) after dropping one
// trailing dot, and checks the DNS-name shape. *len receives the length.
name_error check_name(std::string_view in, char* out, size_t* len, char* bad) {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);
  if (in.empty()) return name_error::empty;
  // Report non-ASCII and '*' before length so the operator gets the message
  // that tells them what to write instead.
  for (char c : in) {
    if (static_cast<unsigned char>(c) >= 0x80) return name_error::non_ascii;
    if (c == '*') return name_error::star;
  }
  if (in.size() > max_name) return name_error::name_too_long;
  size_t label = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '.') {
      if (label == 0) return name_error::empty_label;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
      if (++label > max_label) return name_error::label_too_long;
    } else {
      if (bad) *bad = c;
      return name_error::bad_char;
    }
    out[i] = c;
  }
  if (label == 0) return name_error::empty_label;  // "a.." after the one dot
  *len = in.size();
  return name_error::ok;
}

std::string describe(name_error e, char bad) {
  switch (e) {
    case name_error::ok:
      return "";
    case name_error::empty:
      return "empty name";
    case name_error::empty_label:
      return "empty label (two dots in a row, a leading dot or more than one trailing dot)";
    case name_error::label_too_long:
      return "label longer than 63 characters";
    case name_error::name_too_long:
      return "name longer than 253 characters";
    case name_error::non_ascii:
      return "non-ASCII pattern: write it as punycode (xn--...)";
    case name_error::star:
      return "'*' is only allowed as a leading '*.'";
    case name_error::bad_char: {
      unsigned char u = static_cast<unsigned char>(bad);
      if (u < 0x20 || u == 0x7f) return "invalid control character in name";
      return std::string("invalid character '") + bad +
             "' in name (letters, digits, '-', '_' and '.' only)";
    }
  }
  return "invalid name";
}

}  // namespace

std::optional<std::string> normalize_host(std::string_view host) {
  host_buffer buf;
  auto v = normalize_host(host, buf);
  if (!v) return std::nullopt;
  return std::string(*v);
}

std::optional<std::string_view> normalize_host(std::string_view host, host_buffer& buf) {
  size_t len = 0;
  if (check_name(host, buf.data(), &len, nullptr) != name_error::ok) return std::nullopt;
  return std::string_view(buf.data(), len);
}

std::optional<pattern> parse_pattern(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<pattern> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  if (text.empty()) return fail("empty pattern");
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80)
      return fail(describe(name_error::non_ascii, c));

  pattern p;
  std::string_view name = text;
  if (text.front() == '~') {
    if (text.size() == 1) return fail("empty regular expression after '~'");
    p.kind = pattern_kind::regex;
    p.text = std::string(text.substr(1));
    return p;
  }
  if (text.starts_with("*.")) {
    p.kind = pattern_kind::wildcard;
    name = text.substr(2);
  } else if (text.front() == '.') {
    p.kind = pattern_kind::suffix;
    name = text.substr(1);
  } else {
    p.kind = pattern_kind::exact;
  }
  if (name.empty() || name == ".") return fail("pattern names no domain");

  host_buffer buf;
  size_t len = 0;
  char bad = 0;
  name_error e = check_name(name, buf.data(), &len, &bad);
  if (e != name_error::ok) return fail(describe(e, bad));
  p.text.assign(buf.data(), len);
  // An IP address written as a name would never match: the proxy refuses IP
  // literals unless allow_net covers them, so say where it belongs.
  if (p.kind == pattern_kind::exact && looks_like_ip_literal(p.text))
    return fail("'" + p.text + "' is an IP address, not a name: use allow_net");
  return p;
}

}  // namespace egressd::acl
