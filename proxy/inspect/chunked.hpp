#pragma once
// The chunked transfer coding (RFC 9112 7.1), checked as the bytes go by.
// Pure; no allocation; any split of the input gives the same result.
//
// chunked_scanner walks a chunked body and sorts its bytes into runs to
// forward and runs to drop, so that a proxy relays the body as it came —
// chunk sizes (leading zeros and all), data and CRLFs — without a decode
// and re-frame, and without what it will not forward: chunk extensions and
// trailer fields are dropped (the last chunk goes out as its size, CRLF,
// CRLF). The grammar it accepts:
//   chunk-size (1*HEXDIG, any number of leading zeros, the value within
//   64 bits) [";" ext] CRLF data CRLF ..., last chunk ("0"s) [";" ext]
//   CRLF, trailer fields, CRLF
// where ext is any bytes but CTLs other than HTAB, and a trailer field is a
// line that does not start with SP, HTAB or ":" (no obs-fold, no empty
// name) and holds no CTL but HTAB. A size line (size and extension) is at
// most 64 KiB, the trailer fields 64 KiB in all. Nothing else is accepted:
// no bare LF, no bare CR, no space around the size.
//
// chunked_prefix_valid is the same check over the body bytes that arrived
// with a request head, so a malformed chunk size is refused (400) before
// egressd contacts the upstream at all.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace egressd::proxy {

class chunked_scanner {
 public:
  enum class mode {
    framed,   // forward the framing (sizes, CRLFs, last chunk) and the data
    decoded,  // forward the data alone (for an HTTP/1.0 peer)
  };
  enum class status { more, done, bad };
  struct run {
    size_t n = 0;       // bytes of the input this run covers
    bool pass = false;  // forward them (else they are dropped)
    status st = status::more;
  };

  static constexpr size_t max_size_line = 64 * 1024;
  static constexpr size_t max_trailers = 64 * 1024;

  explicit chunked_scanner(mode m) : decoded_(m == mode::decoded) {}

  // The longest run at the front of `in` whose bytes all pass or all drop.
  // st is done once the body's last byte is in the run (what follows it is
  // not the body's and is not looked at), bad on a framing error (n is
  // then meaningless). An empty `in` gives an empty run.
  run next(std::string_view in);

  // Inside a chunk's data: how many of its bytes are still to come (0
  // elsewhere). The caller may move up to that many without scanning them
  // (splice) and then say so with skip_data.
  uint64_t data_left() const { return s_ == st::data ? left_ : 0; }
  void skip_data(uint64_t n);

  // The size of the chunk being read, or of the last one.
  uint64_t chunk_size() const { return size_; }

  // Data bytes the scanner has passed over (skip_data not included).
  uint64_t data_scanned() const { return scanned_; }

 private:
  enum class st : uint8_t { size, ext, size_lf, data, data_cr, data_lf, trailer_start, trailer, trailer_lf, end_lf, done };
  bool pass_of(char c) const;
  bool advance(char c);

  bool decoded_;
  st s_ = st::size;
  int digits_ = 0;
  uint64_t left_ = 0;     // size being read, then data bytes left
  uint64_t size_ = 0;
  size_t line_ = 0;       // bytes of the size line so far
  size_t trailers_ = 0;   // bytes of trailer fields so far
  uint64_t scanned_ = 0;
};

// True when `bytes` is a valid prefix of a chunked body, as chunked_scanner
// judges it. Bytes after the end of the body (a pipelined request) are not
// examined.
bool chunked_prefix_valid(std::string_view bytes);

}  // namespace egressd::proxy
