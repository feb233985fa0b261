#include "proxy/inspect/chunked.hpp"

#include <algorithm>

namespace egressd::proxy {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Extension and trailer bytes: no CTL but HTAB.
bool text_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return c == '\t' || (u >= 0x20 && u != 0x7f);
}

}  // namespace

// Whether the byte c, read in the current state, is forwarded. Framing goes
// out in framed mode only; extensions and trailer fields never do.
bool chunked_scanner::pass_of(char c) const {
  switch (s_) {
    case st::data:
      return true;
    case st::size:
      return !decoded_ && c != ';';
    case st::ext:
    case st::trailer_start:
      return !decoded_ && c == '\r';
    case st::trailer:
    case st::trailer_lf:
      return false;
    default:
      return !decoded_;
  }
}

// One byte of framing (data bytes are taken in bulk by next()).
bool chunked_scanner::advance(char c) {
  switch (s_) {
    case st::size: {
      if (++line_ > max_size_line) return false;
      const int v = hex_value(c);
      if (v >= 0) {
        // Leading zeros are any number (RFC 9112 7.1: 1*HEXDIG); what
        // counts is that the value fits 64 bits, as for Beast.
        if (left_ > (UINT64_MAX >> 4)) return false;
        ++digits_;
        left_ = left_ * 16 + static_cast<uint64_t>(v);
        return true;
      }
      if (digits_ == 0) return false;
      if (c == ';') s_ = st::ext;
      else if (c == '\r') s_ = st::size_lf;
      else return false;
      return true;
    }
    case st::ext:
      if (++line_ > max_size_line) return false;
      if (c == '\r') s_ = st::size_lf;
      else if (!text_char(c)) return false;
      return true;
    case st::size_lf:
      if (c != '\n') return false;
      size_ = left_;
      s_ = left_ == 0 ? st::trailer_start : st::data;
      return true;
    case st::data_cr:
      if (c != '\r') return false;
      s_ = st::data_lf;
      return true;
    case st::data_lf:
      if (c != '\n') return false;
      s_ = st::size;
      digits_ = 0;
      line_ = 0;
      return true;
    case st::trailer_start:
      if (c == '\r') {
        s_ = st::end_lf;
        return true;
      }
      if (c == ' ' || c == '\t' || c == ':' || !text_char(c)) return false;  // no obs-fold, no empty name
      s_ = st::trailer;
      return ++trailers_ <= max_trailers;
    case st::trailer:
      if (c == '\r') s_ = st::trailer_lf;
      else if (!text_char(c)) return false;
      return ++trailers_ <= max_trailers;
    case st::trailer_lf:
      if (c != '\n') return false;
      s_ = st::trailer_start;
      return ++trailers_ <= max_trailers;
    case st::end_lf:
      if (c != '\n') return false;
      s_ = st::done;
      return true;
    case st::data:
    case st::done:
      break;
  }
  return false;
}

chunked_scanner::run chunked_scanner::next(std::string_view in) {
  run r;
  size_t i = 0;
  bool started = false;
  while (i < in.size() && s_ != st::done) {
    const bool pass = pass_of(in[i]);
    if (started && pass != r.pass) break;
    r.pass = pass;
    started = true;
    if (s_ == st::data) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(left_, in.size() - i));
      i += k;
      scanned_ += k;
      left_ -= k;
      if (left_ == 0) s_ = st::data_cr;
      continue;
    }
    if (!advance(in[i])) {
      r.st = status::bad;
      return r;
    }
    ++i;
  }
  r.n = i;
  if (s_ == st::done) r.st = status::done;
  return r;
}

void chunked_scanner::skip_data(uint64_t n) {
  if (s_ != st::data) return;
  left_ -= std::min(n, left_);
  if (left_ == 0) s_ = st::data_cr;
}

bool chunked_prefix_valid(std::string_view bytes) {
  chunked_scanner sc(chunked_scanner::mode::framed);
  while (!bytes.empty()) {
    const auto r = sc.next(bytes);
    if (r.st == chunked_scanner::status::bad) return false;
    if (r.st == chunked_scanner::status::done) return true;
    bytes.remove_prefix(r.n);
  }
  return true;
}

}  // namespace egressd::proxy
