#pragma once
// Internal to proxy/: moves one plain-HTTP message body (request or
// response) from one socket to the other for session::forward_http.
//
// Runs on the worker thread that owns both sockets, inside the session's
// coroutine. The bytes move in large pieces: whatever the parser left in
// the connection's small buffer (cbuf_/ubuf_) first (with the head, in one
// sendmsg), then — bounded by the remaining Content-Length, or until EOF
// for a close-delimited response — splice(2) through a pipe from the
// worker's pipe_pool as in a tunnel (both sockets are switched to
// O_NONBLOCK for it), or, when no pipe is to be had, recv(2) into a 64 KiB
// pool buffer and sendmsg(2) out; no Beast read operation and no per-read
// timer either way. A chunked body is relayed as it came, checked by
// chunked_scanner as it goes by (64 KiB reads into a pool buffer, one
// sendmsg per read for the runs to forward; chunk extensions and trailer
// fields are dropped), and the data of a large chunk is spliced once its
// size line has been read. Pipe and buffers are taken when a body starts
// and given back when it ends: an idle keep-alive connection holds none.
//
// The idle timeout is one steady_timer per body, armed when a wait begins
// and re-armed only when it fires early (the deadline moves with the last
// byte moved, read from the clock, not pushed into the timer per read): a
// body that keeps moving costs one timerfd_settime per `idle`, not one per
// read.

#include <chrono>
#include <cstdint>
#include <string_view>

#include "acl/bandwidth_limiter.hpp"
#include "proxy/asio.hpp"

namespace egressd::proxy {

class worker;

enum class body_end { ok, read_error, write_error, bad_framing };

struct body_route {
  tcp::socket& in;
  beast::flat_buffer& in_buf;  // bytes read past the head; what follows the body stays here
  tcp::socket& out;
  // Sent together with the first piece, or alone at once when no body byte
  // is here yet (so a streaming peer sees it). May be empty.
  std::string_view head;
  bool keep_chunks;  // chunked input: forward its framing (else the data alone, for HTTP/1.0)
  std::chrono::milliseconds idle;
  uint64_t* moved;  // body bytes (decoded), added to
  acl::bandwidth_limiter* bw;
};

// Streams the body `p` announces (Content-Length, chunked or to EOF) from
// route.in to route.out: whatever arrives is written at once, so a
// server-sent-event stream reaches the client as it is produced. A message
// without a body (p.is_done()) just sends the head. The parser is bypassed
// for the body and is not done afterwards: the caller reads nothing from
// it but the head. Counts the socket reads it made in
// egressd_http_body_reads_total.
template <bool isRequest>
awaitable<body_end> relay_body(worker& w, http::parser<isRequest, http::buffer_body>& p, const body_route& route);

}  // namespace egressd::proxy
