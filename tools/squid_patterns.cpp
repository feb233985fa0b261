#include "tools/squid_patterns.hpp"

#include <re2/re2.h>

#include <cctype>

#include "acl/pattern.hpp"

namespace egressd::tools {

namespace {

// True if `re` has a '|' outside every group and bracket expression.
bool top_level_alternation(std::string_view re) {
  int depth = 0;
  for (size_t i = 0; i < re.size(); ++i) {
    char c = re[i];
    if (c == '\\') {
      ++i;
    } else if (c == '[') {
      // Bracket expression: a leading ']' (after an optional '^') is literal;
      // [:class:] names may contain ']' only as their terminator.
      size_t j = i + 1;
      if (j < re.size() && re[j] == '^') ++j;
      if (j < re.size() && re[j] == ']') ++j;
      while (j < re.size() && re[j] != ']') {
        if (re[j] == '[' && j + 1 < re.size() && (re[j + 1] == ':' || re[j + 1] == '.' || re[j + 1] == '=')) {
          auto close = re.find(std::string{re[j + 1], ']'}, j + 2);
          j = close == std::string_view::npos ? re.size() : close + 2;
          continue;
        }
        ++j;
      }
      i = j;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (depth > 0) --depth;
    } else if (c == '|' && depth == 0) {
      return true;
    }
  }
  return false;
}

// True if the last character is an unescaped '$'.
bool ends_with_anchor(std::string_view re) {
  if (re.empty() || re.back() != '$') return false;
  size_t backslashes = 0;
  for (size_t i = re.size() - 1; i-- > 0 && re[i] == '\\';) ++backslashes;
  return backslashes % 2 == 0;
}

// True if an upper-case ASCII letter is matched literally (not `\S`, `\W`...
// and not a [:UPPER:] class name).
bool has_literal_upper(std::string_view re) {
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '\\') {
      ++i;
      continue;
    }
    if (re[i] == '[' && i + 1 < re.size() && re[i + 1] == ':') {
      auto close = re.find(":]", i + 2);
      if (close == std::string_view::npos) return false;
      i = close + 1;
      continue;
    }
    if (re[i] >= 'A' && re[i] <= 'Z') return true;
  }
  return false;
}

// Escapes whose meaning differs between glibc's POSIX regex (Squid) and RE2:
// GNU word anchors (\< \> \` \'), back-references, and letter escapes RE2
// reads as classes (\d) where glibc reads the letter; inside a bracket
// expression a backslash is literal in POSIX. \b \B \w \W \s \S agree.
bool posix_compatible(std::string_view re, std::string* why) {
  bool in_bracket = false;
  for (size_t i = 0; i < re.size(); ++i) {
    char c = re[i];
    if (in_bracket) {
      if (c == '[' && i + 1 < re.size() && (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
        auto close = re.find(std::string{re[i + 1], ']'}, i + 2);
        if (close == std::string_view::npos) break;
        i = close + 1;
      } else if (c == '\\' && i + 1 < re.size() && std::isalnum(static_cast<unsigned char>(re[i + 1]))) {
        *why = "a backslash inside [...] is literal in squid's regex but an escape in RE2";
        return false;
      } else if (c == ']') {
        in_bracket = false;
      }
      continue;
    }
    if (c == '[') {
      in_bracket = true;
      if (i + 1 < re.size() && re[i + 1] == '^') ++i;
      if (i + 1 < re.size() && re[i + 1] == ']') ++i;  // a leading ']' is literal
      continue;
    }
    if (c != '\\' || i + 1 >= re.size()) continue;
    char e = re[++i];
    if (std::string_view("bBwWsS").find(e) != std::string_view::npos) continue;
    if (std::isalnum(static_cast<unsigned char>(e)) || std::string_view("<>`'").find(e) != std::string_view::npos) {
      *why = std::string("the escape \\") + e + " means something else in RE2";
      return false;
    }
  }
  return true;
}

std::string quote(std::string_view v) {
  std::string s(1, '\'');
  s += v;
  s += '\'';
  return s;
}

}  // namespace

converted_pattern convert_dstdomain(std::string_view value) {
  converted_pattern r;
  std::string_view v = value;
  if (acl::looks_like_ip_literal(v)) {
    r.ip = acl::parse_ip_literal(v);
    if (!r.ip) r.why = quote(value) + " is not a valid IP address";
    return r;
  }
  bool suffix = !v.empty() && v[0] == '.';
  if (suffix) v.remove_prefix(1);
  if (v.find('*') != std::string_view::npos) {
    r.why = "squid's dstdomain has no wildcards ('*' matches only itself there); write .domain";
    return r;
  }
  auto norm = acl::normalize_host(v);
  if (!norm) {
    r.why = quote(value) + " is not a valid ASCII host name (write non-ASCII names as punycode)";
    return r;
  }
  std::string p = (suffix ? "." : "") + *norm;
  std::string err;
  if (!acl::parse_pattern(p, &err)) {
    r.why = err;
    return r;
  }
  r.pattern = std::move(p);
  return r;
}

converted_pattern convert_dstdom_regex(std::string_view regex, bool icase) {
  converted_pattern r;
  if (regex.empty()) {
    r.why = "empty regular expression";
    return r;
  }
  std::string body;
  if (!posix_compatible(regex, &r.why)) return r;
  if (top_level_alternation(regex)) {
    body = ".*(?:" + std::string(regex) + ").*";
  } else {
    std::string_view core = regex;
    bool head = !core.empty() && core[0] == '^';
    if (head) core.remove_prefix(1);
    bool tail = ends_with_anchor(core);
    if (tail) core.remove_suffix(1);
    size_t backslashes = 0;
    for (size_t i = core.size(); i-- > 0 && core[i] == '\\';) ++backslashes;
    if (backslashes % 2 == 1) {
      r.why = "the expression ends with a lone backslash";
      return r;
    }
    // No top-level '|': concatenation needs no group.
    if (!head) body += ".*";
    body += core;
    if (!tail) body += ".*";
  }
  if (body.empty()) body = "(?:)";  // `^$`: only the empty name
  if (icase) body = "(?i)" + body;
  RE2::Options o;
  o.set_log_errors(false);
  RE2 re(body, o);
  if (!re.ok()) {
    r.why = "not convertible to RE2 (" + re.error() + ")";
    return r;
  }
  std::string p = "~" + body;
  std::string err;
  if (!acl::parse_pattern(p, &err)) {
    r.why = err;
    return r;
  }
  if (!icase && has_literal_upper(regex))
    r.note = "upper-case letters never match: egressd matches the lower-case name (use -i in squid)";
  r.pattern = std::move(p);
  return r;
}

}  // namespace egressd::tools
