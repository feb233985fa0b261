#pragma once
// Internal to proxy/: the state of one forward-proxy connection, shared by
// session.cpp (request loop, judging, CONNECT) and http_forward.cpp (plain
// HTTP forwarding). Lives in run_session's coroutine frame; used only on its
// worker's thread.

#include <chrono>
#include <optional>
#include <string>

#include "acl/agents.hpp"
#include "acl/client_id.hpp"
#include "acl/concurrency_limiter.hpp"
#include "acl/credentials.hpp"
#include "acl/ip_address.hpp"
#include "acl/policy.hpp"
#include "monitor/access_log.hpp"
#include "proxy/asio.hpp"
#include "proxy/request_target.hpp"
#include "proxy/responses.hpp"
#include "proxy/rule_limits.hpp"
#include "proxy/upstream.hpp"
#include "proxy/worker.hpp"

namespace egressd::proxy {

struct hello_result;

using request_parser = http::request_parser<http::buffer_body>;

// The outcome of judging a destination (name or IP literal).
struct verdict {
  acl::reason why = acl::reason::none;  // none: allowed
  const acl::rule* rule = nullptr;
  int rule_index = -1;
  std::string host;                          // normalised name, or the literal as written
  std::optional<acl::ip_address> literal;    // set for IP-literal destinations
  // mode report: the allowlist reason it would have been denied for; the
  // request goes on and is logged with decision "report".
  acl::reason reported = acl::reason::none;
  // Allowed by a run-time grant (rule stays null, rule_index -1: no limits):
  // the log's rule, "grant:ID".
  std::string grant_rule;
};

// Keeps the connection registry from pointing at an upstream socket of a
// coroutine frame that is gone.
struct upstream_guard {
  upstream_guard(conn_entry& r, beast::tcp_stream& up) : reg(r) { reg.upstream = &up.socket(); }
  ~upstream_guard() { reg.upstream = nullptr; }
  conn_entry& reg;
};

// The reasons a tunnel's ClientHello checks refuse with (decision deny);
// the others (client_closed, upstream_*) end an allowed tunnel.
inline bool is_hello_refusal(acl::reason r) {
  using acl::reason;
  return r == reason::sni_mismatch || r == reason::no_sni || r == reason::not_tls || r == reason::bad_sni ||
         r == reason::ech;
}

// The TLS checks of a tunnel (proxy/tls_check.cpp) over one client stream,
// its read buffers and the snapshot they run under: the session's own while
// it lasts (listen mode=sni), or those a tunnel job lays out after the
// client's first bytes arrived (CONNECT to a tls_port: the session is gone by
// then, so a tunnel waiting for its ClientHello holds only the job).
class tls_gate {
 public:
  tls_gate(beast::tcp_stream& client, beast::flat_buffer& cbuf, beast::flat_buffer& ubuf,
           const config::snapshot& snap, worker& w)
      : client_(client), cbuf_(cbuf), ubuf_(ubuf), snap_(&snap), w_(w) {}

  struct hello {
    acl::reason why = acl::reason::none;  // not_tls / bad_sni / client_closed, else none
    bool has_sni = false;
    bool ech = false;  // an ECH/ESNI extension (why none or bad_sni)
    std::string sni;   // normalised when valid
    size_t size = 0;   // wire bytes of the ClientHello (why none or bad_sni)
  };
  static hello hello_of(const hello_result& r);
  // Reads from the client into cbuf_ until a whole ClientHello is there.
  awaitable<hello> read_client_hello();
  // SPEC "TLS privacy extensions" for one ClientHello: its framing
  // (not_tls), server_name (bad_sni), the ech rule, then the name: none
  // without SNI unless need_sni (no_sni), else it must equal `expected`
  // when that is given (sni_mismatch). reason::none when it passes.
  acl::reason judge_hello(const hello& h, std::string_view expected, bool need_sni) const;
  // The first-flight watch (proxy/tls_check.cpp), between a judged first
  // ClientHello at the start of cbuf_ and the tunnel relay: sends it up,
  // waits for the server's first handshake record, refuses a handshake
  // record the client sent before that answer, and after a
  // HelloRetryRequest reads and judges the second ClientHello before it goes
  // up. Leaves in cbuf_ only client bytes that may be relayed, and nothing
  // in ubuf_; counts what it moved in rec. reason::none: hand off.
  awaitable<acl::reason> watch_first_flight(beast::tcp_stream& up, const hello& first,
                                            monitor::access_record& rec);
 private:
  // Its last step: reads the second ClientHello (after ChangeCipherSpec /
  // early-data records) into cbuf_, judges it against the first, sends it up.
  awaitable<acl::reason> relay_second_hello(beast::tcp_stream& up, const hello& first,
                                            monitor::access_record& rec);
  // The watch's client side while the server has not answered.
  struct held_watch {
    bool running = false;
    bool stop = false;
    acl::reason verdict = acl::reason::none;  // set: refused, upstream closed
    std::optional<net::steady_timer> done;    // signalled when the watcher ends
  };
  awaitable<void> watch_held(held_watch& hw, const hello& first, tcp::socket& upstream);
  // The client's bytes the kernel already holds, into cbuf_ (up to cap),
  // without waiting. False on a socket error; *eof set on EOF.
  bool drain_client(size_t cap, bool* eof = nullptr);
  // Client bytes in cbuf_ from `from` on, held before the server answered:
  // only ChangeCipherSpec, alerts and early data may be there. Not final: a
  // ClientHello still arriving is waited for (none), to name the reason.
  acl::reason check_held(size_t from, const hello& first, bool final = true) const;
  beast::tcp_stream& client_;
  beast::flat_buffer& cbuf_;
  beast::flat_buffer& ubuf_;
  const config::snapshot* snap_;
  worker& w_;
};

// A tunnel that passed the session's checks, handed from the session to a
// compact coroutine for its (possibly hours-long) life: the session's
// frames, parser and buffers are gone by then, so an idle tunnel holds only
// this, the relay's state and the kernel's socket buffers. On a tls_port
// the ClientHello checks still run in it first (`check`).
struct tunnel_job {
  tunnel_job(tcp::socket c, tcp::socket u) : client(std::move(c)), upstream(std::move(u)) {}
  tcp::socket client;
  tcp::socket upstream;
  std::string first_up, first_down;  // bytes read ahead, written first
  monitor::access_record rec;
  std::chrono::steady_clock::time_point start;
  acl::concurrency_limiter::slot slot;        // conns=, held for the tunnel's life
  std::shared_ptr<const rule_limits> limits;  // keeps the bandwidth limiter alive
  int rule_index = -1;
  acl::bandwidth_limiter* bw = nullptr;
  std::chrono::milliseconds idle{0};
  std::string client_key;  // anomaly detector key (session::client_key())
  int agent_index = -1;
  monitor::metrics::kind kind = monitor::metrics::kind::connect;
  // Set: the ClientHello checks (tls_gate) are still to run, under this
  // snapshot, against rec.host, before the relay (a CONNECT to a tls_port).
  std::shared_ptr<const config::snapshot> check;
};

// What one plain-HTTP forward carries between its phases (http_forward.cpp).
struct forward_state;

// The end of every request or tunnel: metrics, anomaly detection, log line.
// agent_index: into the snapshot's agent table (-1: none). client_key: the
// anomaly detector's key (session::client_key()).
void record_end(worker& w, const rule_limits* limits, int rule_index, int agent_index, std::string_view client_key,
                std::chrono::steady_clock::time_point start, monitor::access_record& rec);

// Relays a handed-off tunnel until it ends, then records it.
awaitable<void> run_tunnel_job(tunnel_job& job, worker& w);
// The job's ClientHello checks (proxy/tls_check.cpp): waits for the client's
// first bytes within the header timeout holding nothing but the job, then
// reads and judges the ClientHello and runs the first-flight watch. True:
// relay (the sockets and the bytes still to write are back in the job);
// false: refused or gone, rec says why.
awaitable<bool> check_tunnel(tunnel_job& job, conn_entry& reg, worker& w);

class session {
 public:
  session(tcp::socket s, const tcp::endpoint& peer, listener_info info, worker& w);
  ~session();
  awaitable<void> run();
  // The tunnel this session handed off, if it ended in one.
  std::optional<tunnel_job> take_job() { return std::move(job_); }

 private:
  enum class head_status { ok, closed, too_large, uri_too_long };
  awaitable<head_status> read_head(size_t* head_len, bool first);
  // Returns true to keep the client connection for another request.
  awaitable<bool> handle(request_parser& p, monitor::access_record& rec);
  // Proxy credentials of one request (SPEC "Agents by name"): sets who_ to
  // the agent named, or to the bare address; reason::none when the request
  // may go on, else auth_required / auth_failed / auth_throttled.
  acl::reason identify(const http::request_header<>& req, uint64_t* retry_after);
  awaitable<bool> refuse_auth(request_parser& p, acl::reason why, uint64_t retry_after,
                              monitor::access_record& rec);
  void set_agent(const acl::agent* a);
  // Key of per=client buckets, the anomaly detector and action=block: the
  // agent ("agent:NAME", never an address) when one is named, else the
  // source address.
  std::string_view client_key() const { return who_.agent.empty() ? std::string_view(client_ip_str_) : agent_key_; }
  // The log's client, group and agent fields.
  void fill_identity(monitor::access_record& rec) const;
  awaitable<void> handle_connect(request_parser& p, monitor::access_record& rec);
  awaitable<bool> forward_http(request_parser& p, monitor::access_record& rec);
  // forward_http's phases (http_forward.cpp). std::optional<bool>: set when
  // the request ended there (the keep-alive answer), nullopt to go on.
  enum class head_read { got, retry, ended };
  bool resolve_forward_target(forward_state& fs);
  awaitable<std::optional<bool>> admit_forward(forward_state& fs);
  awaitable<std::optional<bool>> build_forward_head(forward_state& fs);
  awaitable<std::optional<bool>> get_upstream(forward_state& fs, int attempt);
  awaitable<std::optional<bool>> send_request(forward_state& fs);
  awaitable<head_read> read_response_head(forward_state& fs, int attempt);
  awaitable<bool> read_final_head(forward_state& fs);
  awaitable<bool> relay_response(forward_state& fs);
  awaitable<bool> switch_protocols(forward_state& fs);
  verdict judge(std::string_view raw_host, bool bracketed, uint16_t port, std::string_view method) const;
  // A live grant for this client that allows name:port (the allowlist
  // denied it for not_allowed, port or method), or nullptr.
  const state::grant* find_grant(std::string_view name, uint16_t port) const;
  awaitable<void> refuse(acl::reason r, const refusal_detail& d, bool keep_alive,
                         monitor::access_record& rec);
  void close_upstream();
  // Parks a kept-alive upstream (idle, nothing read ahead) in the worker's
  // pool for other connections to the same host:port, else closes it.
  void release_upstream();
  void find_group();
  void refresh_config();
  // The TLS checks over this session's client, buffers and snapshot.
  tls_gate gate() { return {client_, cbuf_, ubuf_, *snap_, w_}; }
  // dial() plus, through a parent proxy, its CONNECT exchange.
  awaitable<dial_result> dial_tunnel(const verdict& v, uint16_t port, beast::tcp_stream& up,
                                     monitor::access_record& rec);
  // Moves both sockets, the bytes read ahead (cbuf_/ubuf_), the record and
  // the conns= slot into job_; the caller then returns, ending the session.
  void hand_off(beast::tcp_stream& up, acl::bandwidth_limiter* bw, monitor::access_record& rec);
  // Transparent listeners and plain forwards (proxy/transparent.cpp).
  awaitable<void> run_sni();
  awaitable<void> run_forward();
  uint16_t destination_port(uint16_t fallback) const;
  void finish(monitor::access_record& rec);
  void note_verdict(const verdict& v, monitor::access_record& rec);
  // Rule limits for an allowed destination: conns= slot (held in slot_ for
  // the request or tunnel), then rate=. reason::none when admitted.
  acl::reason admit(const verdict& v, uint64_t* retry_after);
  // action=block: is this client refused right now?
  bool blocked() const;
  acl::bandwidth_limiter* bandwidth(const verdict& v) const;

  worker& w_;
  std::shared_ptr<const config::snapshot> snap_;
  std::shared_ptr<const rule_limits> limits_;
  acl::concurrency_limiter::slot slot_;  // conns= of the current request/tunnel
  int rule_index_ = -1;                  // rule of the current request (metrics)
  listener_info info_;
  uint16_t dest_port_ = 0;  // transparent http: destination_port(80), looked up once
  beast::tcp_stream client_;
  beast::flat_buffer cbuf_;
  conn_entry reg_;
  std::string client_str_;
  acl::ip_address client_ip_;
  std::string client_ip_str_;  // without port: anomaly and per-client keys
  acl::client_id who_;         // the current request's identity (judge(), admit())
  std::string agent_key_;      // "agent:" + who_.agent
  acl::credential_cache credentials_;  // last accepted on this connection (reset with snap_)
  monitor::metrics::kind kind_ = monitor::metrics::kind::http;
  std::string group_;  // first `group` containing the client, for the log
  std::chrono::steady_clock::time_point start_;

  // The upstream connection kept while the client keeps asking the same
  // host:port (HTTP keep-alive), and bytes read past its last response.
  std::optional<beast::tcp_stream> up_;
  beast::flat_buffer ubuf_;
  std::string up_key_;
  std::string up_addr_;
  std::shared_ptr<const config::snapshot> up_snap_;  // the snapshot its addresses were checked under
  std::optional<tunnel_job> job_;
  // Scratch strings reused for every request of the connection.
  std::string head_, host_field_, target_buf_, key_buf_;
};

}  // namespace egressd::proxy
