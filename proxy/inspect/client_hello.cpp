// ClientHello parser (RFC 8446 §4.1.2, §5.1; RFC 6066 §3). See the header
// for the contract. Every call re-parses from byte 0: the ClientHello is
// capped at ~16 KiB and the parser holds no state between calls, so a caller
// cannot desynchronise it, and monotonic verdicts follow from reading the
// bytes strictly in order (see hs_stream::need).
#include "proxy/inspect/client_hello.hpp"

#include <algorithm>
#include <cstring>

namespace egressd::proxy {

const char* to_string(hello_status s) {
  switch (s) {
    case hello_status::need_more: return "need_more";
    case hello_status::ok: return "ok";
    case hello_status::not_tls: return "not_tls";
    case hello_status::malformed: return "malformed";
    case hello_status::bad_sni: return "bad_sni";
    case hello_status::too_large: return "too_large";
  }
  return "unknown";
}

namespace {

constexpr uint8_t content_handshake = 22;
constexpr uint8_t handshake_client_hello = 1;
constexpr uint16_t ext_server_name = 0;
constexpr uint8_t name_type_host_name = 0;
constexpr size_t record_header_size = 5;
constexpr size_t max_record_payload = 16 * 1024;  // 2^14, RFC 8446 §5.1
constexpr size_t handshake_header_size = 4;
constexpr size_t max_session_id = 32;
constexpr size_t random_size = 32;

// The handshake byte stream carried by consecutive handshake records of
// `data`. Offsets: pos_/rec_end_ are wire offsets into data; hs_off_ counts
// handshake-stream bytes consumed. Every read names the end (in handshake
// offsets) of the innermost vector being read, so a length that escapes its
// enclosing vector is malformed before any byte past it is looked at.
class hs_stream {
 public:
  hs_stream(const uint8_t* data, size_t size, size_t cap)
      : data_(data), size_(size), cap_(cap) {}

  hello_status error() const { return err_; }
  size_t offset() const { return hs_off_; }
  // True when the current record holds no handshake bytes past offset().
  bool record_exhausted() const { return pos_ == rec_end_; }
  size_t wire_offset() const { return pos_; }

  // Reads n bytes (copied to out unless null) of the vector ending at end.
  bool read(uint8_t* out, size_t n, size_t end) {
    if (n > end - hs_off_) return fail(hello_status::malformed);
    while (n > 0) {
      if (pos_ == rec_end_ && !next_record()) return false;
      const size_t chunk = std::min(n, rec_end_ - pos_);
      if (!need(pos_ + chunk)) return false;
      if (out != nullptr) {
        std::memcpy(out, data_ + pos_, chunk);
        out += chunk;
      }
      pos_ += chunk;
      hs_off_ += chunk;
      n -= chunk;
    }
    return true;
  }
  bool skip(size_t n, size_t end) { return read(nullptr, n, end); }
  bool read_u8(uint8_t& v, size_t end) { return read(&v, 1, end); }
  bool read_u16(uint16_t& v, size_t end) {
    uint8_t b[2];
    if (!read(b, 2, end)) return false;
    v = static_cast<uint16_t>(b[0] << 8 | b[1]);
    return true;
  }
  bool read_u24(uint32_t& v, size_t end) {
    uint8_t b[3];
    if (!read(b, 3, end)) return false;
    v = static_cast<uint32_t>(b[0]) << 16 | static_cast<uint32_t>(b[1]) << 8 | b[2];
    return true;
  }

 private:
  bool fail(hello_status s) {
    err_ = s;
    return false;
  }
  // Wire bytes [0, wire_end) must be readable. The cap is checked first and
  // size second, so the verdict never depends on how much has arrived.
  bool need(size_t wire_end) {
    if (wire_end > cap_) return fail(hello_status::too_large);
    if (wire_end > size_) return fail(hello_status::need_more);
    return true;
  }
  // Consumes the next record header. The first record decides not_tls
  // byte by byte (type 22, version major 3, minor 0..4), so plain HTTP or
  // an SSLv2 hello is recognised from its first byte.
  bool next_record() {
    const hello_status bad = first_record_ ? hello_status::not_tls : hello_status::malformed;
    if (!need(pos_ + 1)) return false;
    if (data_[pos_] != content_handshake) return fail(bad);
    if (!need(pos_ + 2)) return false;
    if (data_[pos_ + 1] != 3) return fail(bad);
    if (!need(pos_ + 3)) return false;
    if (data_[pos_ + 2] > 4) return fail(bad);
    if (!need(pos_ + record_header_size)) return false;
    const size_t len = static_cast<size_t>(data_[pos_ + 3]) << 8 | data_[pos_ + 4];
    // Zero-length handshake fragments are forbidden (RFC 8446 §5.1).
    if (len == 0 || len > max_record_payload) return fail(hello_status::malformed);
    pos_ += record_header_size;
    rec_end_ = pos_ + len;
    first_record_ = false;
    return true;
  }

  const uint8_t* data_;
  size_t size_;
  size_t cap_;
  size_t pos_ = 0;
  size_t rec_end_ = 0;
  size_t hs_off_ = 0;
  bool first_record_ = true;
  hello_status err_ = hello_status::need_more;
};

bool sni_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

// A name a DNS lookup could take: labels of 1..63 bytes from sni_char,
// separated by single dots, one trailing dot allowed, at most 253 bytes
// without it (RFC 1035 §2.3.4). An IDN travels as its A-label (xn--...).
bool sni_name_ok(const uint8_t* name, size_t n) {
  if (n > 0 && name[n - 1] == '.') --n;
  if (n == 0 || n > max_dns_name) return false;
  size_t label = 0;
  for (size_t i = 0; i < n; ++i) {
    if (name[i] == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (!sni_char(name[i]) || ++label > max_dns_label) {
      return false;
    }
  }
  return label != 0;
}

// End offset of a vector of `len` bytes starting at in.offset(), or false if
// it does not fit inside the enclosing vector ending at `end`.
bool sub_end(const hs_stream& in, size_t len, size_t end, size_t& out) {
  if (len > end - in.offset()) return false;
  out = in.offset() + len;
  return true;
}

// RFC 8446 §4.2 / the ECH drafts: extensions that carry an encrypted inner
// ClientHello (or name), so the outer SNI says nothing about the real one.
bool is_ech_extension(uint16_t type) {
  return type == 0xfe0d                          // encrypted_client_hello (RFC 9849)
         || (type >= 0xfe08 && type <= 0xfe0c)   // ECH drafts -08 .. -12
         || (type >= 0xff02 && type <= 0xff0d)   // ECH / ESNI drafts' private code points
         || type == 0xffce;                      // encrypted_server_name (ESNI drafts)
}

// server_name extension data (RFC 6066 §3): a ServerNameList holding exactly
// one host_name. Returns ok, bad_sni (the content is malformed or ambiguous:
// an empty extension or list, a list length that is not the rest of the
// extension, two entries, a name type other than host_name, an empty name or
// one no DNS lookup could take), or the stream's own error (need_more,
// too_large). On bad_sni the stream stands somewhere inside the extension.
hello_status parse_server_name(hs_stream& in, size_t ext_end, hello_result& r) {
  auto left = [&] { return ext_end - in.offset(); };
  uint16_t list_len = 0;
  uint8_t name_type = 0;
  uint16_t name_len = 0;
  if (left() < 2) return hello_status::bad_sni;
  if (!in.read_u16(list_len, ext_end)) return in.error();
  if (list_len != left() || list_len < 3) return hello_status::bad_sni;
  if (!in.read_u8(name_type, ext_end)) return in.error();
  if (name_type != name_type_host_name) return hello_status::bad_sni;
  if (!in.read_u16(name_len, ext_end)) return in.error();
  // Shorter than the list: a second entry follows (BoringSSL is as strict).
  if (name_len == 0 || name_len > max_sni_length || name_len != left()) return hello_status::bad_sni;
  auto* dst = reinterpret_cast<uint8_t*>(r.sni_bytes.data());
  if (!in.read(dst, name_len, ext_end)) return in.error();
  if (!sni_name_ok(dst, name_len)) return hello_status::bad_sni;
  r.sni_size = static_cast<uint8_t>(name_len);
  r.has_sni = true;
  return hello_status::ok;
}

// Extensions block of the ClientHello ending at `end`. A bad server_name is
// remembered and skipped, so that bad_sni is only the verdict of a
// ClientHello whose framing is sound (else it is malformed).
hello_status parse_extensions(hs_stream& in, size_t end, hello_result& r) {
  uint16_t total = 0;
  if (!in.read_u16(total, end)) return in.error();
  if (total != end - in.offset()) return hello_status::malformed;
  bool seen_sni = false;
  bool bad_sni = false;
  while (in.offset() < end) {
    uint16_t type = 0;
    uint16_t len = 0;
    size_t ext_end = 0;
    if (!in.read_u16(type, end) || !in.read_u16(len, end)) return in.error();
    if (!sub_end(in, len, end, ext_end)) return hello_status::malformed;
    if (is_ech_extension(type) && !r.ech) {
      r.ech = true;
      r.ech_type = type;
    }
    if (type == ext_server_name && !bad_sni) {
      // A second server_name extension could name another host.
      const hello_status s = seen_sni ? hello_status::bad_sni : parse_server_name(in, ext_end, r);
      seen_sni = true;
      if (s == hello_status::bad_sni) {
        bad_sni = true;
        r.has_sni = false;
      } else if (s != hello_status::ok) {
        return s;
      }
    }
    if (!in.skip(ext_end - in.offset(), ext_end)) return in.error();
  }
  return bad_sni ? hello_status::bad_sni : hello_status::ok;
}

hello_status parse(hs_stream& in, size_t cap, hello_result& r) {
  constexpr size_t unbounded = static_cast<size_t>(-1);
  uint8_t type = 0;
  uint32_t body_len = 0;
  if (!in.read_u8(type, unbounded)) return in.error();
  if (type != handshake_client_hello) return hello_status::not_tls;
  if (!in.read_u24(body_len, unbounded)) return in.error();

  // Fail fast on a declared length the cap cannot hold even in full records.
  const size_t hs_total = handshake_header_size + body_len;
  const size_t min_records = (hs_total + max_record_payload - 1) / max_record_payload;
  if (hs_total + min_records * record_header_size > cap) return hello_status::too_large;
  const size_t end = hs_total;

  uint16_t legacy_version = 0;
  if (!in.read_u16(legacy_version, end)) return in.error();
  if (legacy_version >> 8 != 3) return hello_status::malformed;
  if (!in.skip(random_size, end)) return in.error();

  uint8_t session_id_len = 0;
  if (!in.read_u8(session_id_len, end)) return in.error();
  if (session_id_len > max_session_id) return hello_status::malformed;
  if (!in.skip(session_id_len, end)) return in.error();

  uint16_t suites_len = 0;
  if (!in.read_u16(suites_len, end)) return in.error();
  if (suites_len == 0 || suites_len % 2 != 0) return hello_status::malformed;
  if (!in.skip(suites_len, end)) return in.error();

  uint8_t compression_len = 0;
  if (!in.read_u8(compression_len, end)) return in.error();
  if (compression_len == 0) return hello_status::malformed;
  if (!in.skip(compression_len, end)) return in.error();

  // Pre-TLS-1.2 clients may omit the extensions block entirely.
  hello_status verdict = hello_status::ok;
  if (in.offset() != end) {
    verdict = parse_extensions(in, end, r);
    if (verdict != hello_status::ok && verdict != hello_status::bad_sni) return verdict;
  }
  // The ClientHello must be the last handshake message of its record: a
  // client sends nothing else before the server's reply.
  if (!in.record_exhausted()) return hello_status::malformed;
  return verdict;
}

}  // namespace

hello_result parse_client_hello(const uint8_t* data, size_t size, size_t cap) {
  hello_result r;
  if (data == nullptr) size = 0;
  hs_stream in(data, size, cap);
  r.status = parse(in, cap, r);
  if (r.status != hello_status::ok) {
    r.has_sni = false;
    r.sni_size = 0;
  }
  if (r.status == hello_status::ok || r.status == hello_status::bad_sni) {
    r.wire_size = static_cast<uint32_t>(in.wire_offset());
  } else {
    r.ech = false;
    r.ech_type = 0;
  }
  return r;
}

}  // namespace egressd::proxy
