#include "dns/responder_codec.hpp"

#include "acl/ip_address.hpp"

namespace egressd::dns {
namespace {

constexpr uint16_t flag_qr = 0x8000;
constexpr uint16_t mask_opcode = 0x7800;
constexpr uint16_t flag_aa = 0x0400;
constexpr uint16_t flag_rd = 0x0100;
constexpr uint16_t flag_ra = 0x0080;
constexpr size_t header_size = 12;
constexpr size_t max_name_wire = 255;  // RFC 1035 §3.1, the terminating 0 included
constexpr uint8_t badvers_extended = 1;  // extended rcode 16 = 1 << 4 | header rcode 0

uint16_t get16(std::span<const uint8_t> m, size_t at) {
  return static_cast<uint16_t>(m[at] << 8 | m[at + 1]);
}

// Bounds-checked writer over the response buffer; a write past the end sets
// `overflow` instead (cannot happen with max_response_size, checked anyway).
struct writer {
  response_buffer& out;
  size_t n = 0;
  bool overflow = false;
  void u8(uint8_t v) {
    if (n >= out.size()) {
      overflow = true;
      return;
    }
    out[n++] = v;
  }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void bytes(std::span<const uint8_t> b) {
    for (uint8_t c : b) u8(c);
  }
};

// The question at offset 12: uncompressed labels (RFC 1035 §4.1.2), each
// 1..63 bytes, at most 255 bytes of name on the wire, then QTYPE QCLASS.
// Writes the dotted text into text/text_len; *plain is false when a label
// holds a byte that cannot be part of a host name ('.', NUL, ...), which the
// caller answers with NXDOMAIN rather than FORMERR (the message is sound).
bool parse_question(std::span<const uint8_t> m, size_t* pos, char (&text)[256], size_t* text_len,
                    bool* plain) {
  size_t p = *pos, wire = 0, t = 0;
  *plain = true;
  for (;;) {
    if (p >= m.size()) return false;
    const uint8_t len = m[p++];
    if (len & 0xC0) return false;  // compression pointer (or the obsolete 01/10 forms)
    if (len == 0) break;
    wire += len + 1u;
    if (wire + 1 > max_name_wire || p + len > m.size()) return false;
    if (t) text[t++] = '.';
    for (size_t i = 0; i < len; ++i) {
      const uint8_t c = m[p + i];
      if (c == '.' || c <= 0x20 || c >= 0x7F) *plain = false;
      text[t++] = static_cast<char>(c);
    }
    p += len;
  }
  if (m.size() - p < 4) return false;
  *pos = p + 4;
  *text_len = t;
  return true;
}

// One OPT pseudo-record (RFC 6891 §6.1.2): root owner, TYPE 41, its options
// a well-formed sequence of code/length/data filling RDLENGTH exactly.
enum class opt_status { ok, malformed, badvers };
opt_status parse_opt(std::span<const uint8_t> m, size_t* pos) {
  size_t p = *pos;
  if (m.size() - p < 11 || m[p] != 0 || get16(m, p + 1) != type_opt) return opt_status::malformed;
  const uint8_t version = m[p + 6];
  const uint16_t rdlen = get16(m, p + 9);
  p += 11;
  if (m.size() - p < rdlen) return opt_status::malformed;
  const size_t end = p + rdlen;
  while (p < end) {
    if (end - p < 4) return opt_status::malformed;
    const uint16_t olen = get16(m, p + 2);
    p += 4;
    if (end - p < olen) return opt_status::malformed;
    p += olen;
  }
  *pos = end;
  return version == 0 ? opt_status::ok : opt_status::badvers;
}

}  // namespace

const char* to_string(outcome o) {
  switch (o) {
    case outcome::address: return "address";
    case outcome::nodata: return "nodata";
    case outcome::nxdomain: return "nxdomain";
    case outcome::refused: return "refused";
    case outcome::formerr: return "formerr";
    case outcome::notimp: return "notimp";
    case outcome::badvers: return "badvers";
  }
  return "?";
}

std::optional<query> parse_query(std::span<const uint8_t> m, acl::host_buffer& name_buf) {
  if (m.size() < header_size || m.size() > max_query_size) return std::nullopt;
  query q;
  q.id = get16(m, 0);
  q.flags = get16(m, 2);
  if (q.flags & flag_qr) return std::nullopt;
  if (q.flags & mask_opcode) {
    q.error = rcode::notimp;
    return q;
  }
  const uint16_t qd = get16(m, 4), an = get16(m, 6), ns = get16(m, 8), ar = get16(m, 10);
  if (qd != 1 || an != 0 || ns != 0) {
    q.error = rcode::formerr;
    return q;
  }
  size_t pos = header_size;
  char text[256];
  size_t text_len = 0;
  bool plain = true;
  if (!parse_question(m, &pos, text, &text_len, &plain)) {
    q.error = rcode::formerr;
    return q;
  }
  q.question = m.subspan(header_size, pos - header_size);
  q.qtype = get16(m, pos - 4);
  q.qclass = get16(m, pos - 2);
  if (ar > 1) {
    q.error = rcode::formerr;  // at most one OPT; nothing else belongs in a query
    return q;
  }
  if (ar == 1) {
    const opt_status s = parse_opt(m, &pos);
    if (s == opt_status::malformed) {
      q.error = rcode::formerr;
      return q;
    }
    q.edns = true;
    q.badvers = s == opt_status::badvers;
  }
  if (pos != m.size()) {
    q.error = rcode::formerr;
    q.edns = false;
    q.badvers = false;
    return q;
  }
  if (plain && text_len > 0) {
    auto n = acl::normalize_host(std::string_view(text, text_len), name_buf);
    if (n && !acl::looks_like_ip_literal(*n)) q.name = *n;
  }
  return q;
}

response build_response(const query& q, bool allowed, const std::array<uint8_t, 4>& answer,
                        response_buffer& out) {
  response r;
  rcode rc = rcode::noerror;
  if (q.error == rcode::notimp) {
    r.what = outcome::notimp;
    rc = rcode::notimp;
  } else if (q.error != rcode::noerror) {
    r.what = outcome::formerr;
    rc = q.error;
  } else if (q.badvers) {
    r.what = outcome::badvers;  // header rcode 0, extended rcode in OPT
  } else if (q.qclass != class_in) {
    r.what = outcome::refused;
    rc = rcode::refused;
  } else if (q.name.empty() || !allowed) {
    r.what = outcome::nxdomain;
    rc = rcode::nxdomain;
  } else {
    r.what = q.qtype == type_a ? outcome::address : outcome::nodata;
  }
  const bool with_answer = r.what == outcome::address;

  writer w{out};
  w.u16(q.id);
  w.u16(static_cast<uint16_t>(flag_qr | (q.flags & mask_opcode) | flag_aa | (q.flags & flag_rd) | flag_ra |
                              static_cast<uint16_t>(rc)));
  w.u16(q.question.empty() ? 0 : 1);
  w.u16(with_answer ? 1 : 0);
  w.u16(0);
  w.u16(q.edns ? 1 : 0);
  w.bytes(q.question);
  if (with_answer) {
    w.u16(0xC000 | header_size);  // pointer to the echoed QNAME
    w.u16(type_a);
    w.u16(class_in);
    w.u32(answer_ttl);
    w.u16(4);
    w.bytes(answer);
  }
  if (q.edns) {
    w.u8(0);  // root
    w.u16(type_opt);
    w.u16(edns_payload);
    w.u8(r.what == outcome::badvers ? badvers_extended : 0);
    w.u8(0);   // version
    w.u16(0);  // flags (DO clear: nothing here is signed)
    w.u16(0);  // no options
  }
  r.size = w.overflow ? 0 : w.n;
  return r;
}

}  // namespace egressd::dns
