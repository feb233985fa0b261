// Request-head framing checks (RFC 9112 §2-§3, §5-§6.3, §11.2). See the
// header for the contract. Two passes: a byte pass over the whole head for
// line endings and control characters, then a line pass for syntax and the
// framing fields. Everything works on views into `head`.
#include "proxy/inspect/http_framing.hpp"

#include <array>
#include <cstddef>

namespace egressd::proxy {

const char* to_string(framing_error e) {
  switch (e) {
    case framing_error::none: return "none";
    case framing_error::bare_cr: return "bare_cr";
    case framing_error::bare_lf: return "bare_lf";
    case framing_error::obs_fold: return "obs_fold";
    case framing_error::invalid_field: return "invalid_field";
    case framing_error::cl_and_te: return "cl_and_te";
    case framing_error::duplicate_cl: return "duplicate_cl";
    case framing_error::invalid_cl: return "invalid_cl";
    case framing_error::te_not_chunked_last: return "te_not_chunked_last";
    case framing_error::te_in_http10: return "te_in_http10";
    case framing_error::invalid_request_line: return "invalid_request_line";
    case framing_error::nul_byte: return "nul_byte";
    case framing_error::duplicate_host: return "duplicate_host";
    case framing_error::incomplete_head: return "incomplete_head";
  }
  return "unknown";
}

namespace {

enum char_class : uint8_t {
  cc_ctl = 1,    // CTL other than HTAB, CR, LF; and DEL
  cc_tchar = 2,  // RFC 9110 §5.6.2 token character
  cc_vchar = 4,  // visible ASCII 0x21..0x7E
  cc_stop = 8,   // bytes pass 1 must look at: CTL, DEL, CR, LF
};

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c)
    if (c != '\t' && c != '\r' && c != '\n') t[c] = cc_ctl;
  t[0x7F] = cc_ctl;
  for (int c = 0; c < 0x20; ++c)
    if (c != '\t') t[c] |= cc_stop;
  t[0x7F] |= cc_stop;
  for (int c = 0x21; c < 0x7F; ++c) t[c] = cc_vchar;
  constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  for (int c = '0'; c <= '9'; ++c) t[c] |= cc_tchar;
  for (int c = 'a'; c <= 'z'; ++c) t[c] |= cc_tchar;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] |= cc_tchar;
  for (char c : extra) t[static_cast<uint8_t>(c)] |= cc_tchar;
  return t;
}
constexpr std::array<uint8_t, 256> char_table = make_table();

bool is(char c, char_class k) { return (char_table[static_cast<uint8_t>(c)] & k) != 0; }
bool is_ows(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Case-insensitive equality with a lower-case literal.
bool iequals(std::string_view s, std::string_view lower_lit) {
  if (s.size() != lower_lit.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != lower_lit[i]) return false;
  return true;
}

// As iequals, but also matching '_' in s against '-' in the literal.
bool iequals_underscore(std::string_view s, std::string_view lower_lit) {
  if (s.size() != lower_lit.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i] == '_' ? '-' : lower(s[i]);
    if (c != lower_lit[i]) return false;
  }
  return true;
}

bool is_token(std::string_view s) {
  for (char c : s)
    if (!is(c, cc_tchar)) return false;
  return !s.empty();
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && is_ows(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_ows(v.back())) v.remove_suffix(1);
  return v;
}

// Pass 1: every LF preceded by CR, every CR followed by LF, no control bytes.
framing_error check_bytes(std::string_view head) {
  for (size_t i = 0; i < head.size(); ++i) {
    const char c = head[i];
    if (!is(c, cc_stop)) continue;
    if (c == '\r') {
      if (i + 1 >= head.size() || head[i + 1] != '\n') return framing_error::bare_cr;
      ++i;  // the LF of this CRLF
    } else if (c == '\n') {
      return framing_error::bare_lf;
    } else if (is(c, cc_ctl)) {
      return framing_error::nul_byte;
    }
  }
  return framing_error::none;
}

// method SP request-target SP HTTP/1.DIGIT; sets http10 for HTTP/1.0.
framing_error check_request_line(std::string_view line, bool& http10) {
  size_t i = 0;
  while (i < line.size() && is(line[i], cc_tchar)) ++i;
  if (i == 0 || i >= line.size() || line[i] != ' ') return framing_error::invalid_request_line;
  const size_t target = ++i;
  while (i < line.size() && is(line[i], cc_vchar)) ++i;
  if (i == target || i >= line.size() || line[i] != ' ')
    return framing_error::invalid_request_line;
  const std::string_view version = line.substr(i + 1);
  constexpr std::string_view prefix = "HTTP/1.";
  if (version.size() != prefix.size() + 1 || version.substr(0, prefix.size()) != prefix ||
      version.back() < '0' || version.back() > '9')
    return framing_error::invalid_request_line;
  http10 = version.back() == '0';
  return framing_error::none;
}

// Content-Length value as it follows the colon: OWS, 1*DIGIT fitting uint64,
// OWS (RFC 9112 5: "field-name ":" OWS field-value OWS"; Beast trims both
// sides too), and nothing else.
framing_error check_content_length(std::string_view v) {
  v = trim_ows(v);
  if (v.find(',') != std::string_view::npos) return framing_error::duplicate_cl;
  if (v.empty()) return framing_error::invalid_cl;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return framing_error::invalid_cl;
    const auto d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return framing_error::invalid_cl;
    n = n * 10 + d;
  }
  return framing_error::none;
}

// Framing state accumulated over the field lines.
struct framing_state {
  bool has_cl = false;
  bool has_te = false;
  bool has_host = false;
  bool te_bad = false;          // empty element, or chunked not last
  bool te_last_chunked = false; // last coding seen so far is chunked
};

// Adds one Transfer-Encoding line's codings, in order, to the state.
void add_transfer_codings(std::string_view v, framing_state& st) {
  st.has_te = true;
  for (;;) {
    const size_t comma = v.find(',');
    const std::string_view coding = trim_ows(v.substr(0, comma));
    // Each coding must be a bare token: Beast 1.74 stops understanding the
    // list at a non-token byte (found by fuzzing: "\xe2,chunked" is chunked
    // to a naive reader, not to Beast), and transfer parameters are never
    // sent in practice ("chunked;x=1" is chunked to Beast).
    if (coding.empty() || st.te_last_chunked || !is_token(coding)) st.te_bad = true;
    st.te_last_chunked = iequals(coding, "chunked");
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

framing_error check_field_line(std::string_view line, framing_state& st) {
  if (is_ows(line.front())) return framing_error::obs_fold;
  size_t i = 0;
  while (i < line.size() && is(line[i], cc_tchar)) ++i;
  if (i == 0 || i >= line.size() || line[i] != ':') return framing_error::invalid_field;
  const std::string_view name = line.substr(0, i);
  const std::string_view value = line.substr(i + 1);
  // The rest of the value is VCHAR / obs-text / SP / HTAB: pass 1 excluded
  // control bytes, CR and LF.
  switch (name.size()) {
    case 4:
      if (iequals(name, "host")) {
        if (st.has_host) return framing_error::duplicate_host;
        st.has_host = true;
      }
      break;
    case 14:
      if (iequals(name, "content-length")) {
        if (st.has_cl) return framing_error::duplicate_cl;
        st.has_cl = true;
        return check_content_length(value);
      }
      if (iequals_underscore(name, "content-length")) return framing_error::invalid_field;
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        add_transfer_codings(value, st);
        return framing_error::none;
      }
      if (iequals_underscore(name, "transfer-encoding")) return framing_error::invalid_field;
      break;
    default:
      break;
  }
  return framing_error::none;
}

}  // namespace

framing_error check_request_head(std::string_view head) {
  if (const framing_error e = check_bytes(head); e != framing_error::none) return e;

  // Pass 2: lines. Pass 1 guarantees every CR starts a CRLF.
  bool http10 = false;
  framing_state st;
  size_t pos = 0;
  bool request_line = true;
  for (;;) {
    const size_t cr = head.find('\r', pos);
    if (cr == std::string_view::npos) return framing_error::incomplete_head;
    const std::string_view line = head.substr(pos, cr - pos);
    pos = cr + 2;
    if (request_line) {
      if (const framing_error e = check_request_line(line, http10); e != framing_error::none)
        return e;
      request_line = false;
      continue;
    }
    if (line.empty()) break;  // the blank line ending the head
    if (const framing_error e = check_field_line(line, st); e != framing_error::none) return e;
  }
  if (pos != head.size()) return framing_error::incomplete_head;

  if (st.has_te) {
    if (st.has_cl) return framing_error::cl_and_te;
    if (http10) return framing_error::te_in_http10;
    if (st.te_bad || !st.te_last_chunked) return framing_error::te_not_chunked_last;
  }
  return framing_error::none;
}

}  // namespace egressd::proxy
