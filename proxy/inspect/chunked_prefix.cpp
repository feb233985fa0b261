#include "proxy/inspect/chunked_prefix.hpp"

#include <cstdint>

namespace egressd::proxy {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ext_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return c == '\t' || (u >= 0x20 && u != 0x7f);
}

}  // namespace

bool chunked_prefix_valid(std::string_view bytes) {
  enum class st { size, ext, size_lf, data, data_cr, data_lf, trailer_start, trailer, trailer_lf, end_lf };
  st s = st::size;
  uint64_t size = 0;
  int digits = 0;
  for (char c : bytes) {
    switch (s) {
      case st::size: {
        int v = hex_value(c);
        if (v >= 0) {
          // Leading zeros are any number (RFC 9112 7.1: 1*HEXDIG); what
          // counts is that the value fits 64 bits, as for Beast.
          if (size > (UINT64_MAX >> 4)) return false;
          ++digits;
          size = size * 16 + static_cast<uint64_t>(v);
        } else if (digits == 0) {
          return false;
        } else if (c == ';') {
          s = st::ext;
        } else if (c == '\r') {
          s = st::size_lf;
        } else {
          return false;
        }
        break;
      }
      case st::ext:
        if (c == '\r')
          s = st::size_lf;
        else if (!ext_char(c))
          return false;
        break;
      case st::size_lf:
        if (c != '\n') return false;
        s = size == 0 ? st::trailer_start : st::data;
        break;
      case st::data:
        if (--size == 0) s = st::data_cr;
        break;
      case st::data_cr:
        if (c != '\r') return false;
        s = st::data_lf;
        break;
      case st::data_lf:
        if (c != '\n') return false;
        s = st::size;
        digits = 0;
        size = 0;
        break;
      case st::trailer_start:
        if (c == '\r')
          s = st::end_lf;
        else if (c == ' ' || c == '\t' || c == ':' || !ext_char(c))
          return false;  // no obs-fold, no empty field name
        else
          s = st::trailer;
        break;
      case st::trailer:
        if (c == '\r')
          s = st::trailer_lf;
        else if (!ext_char(c))
          return false;
        break;
      case st::trailer_lf:
        if (c != '\n') return false;
        s = st::trailer_start;
        break;
      case st::end_lf:
        return c == '\n';  // body complete; what follows is the next request
    }
  }
  return true;
}

}  // namespace egressd::proxy
