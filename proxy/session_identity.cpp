// Who a forward-proxy request is made for (SPEC "Agents by name"): the
// session's per-request credential check, its 407/429 answers, and the
// identity fields of the access record. Runs on the session's worker thread;
// the credential logic itself is pure (acl/credentials.hpp) and the failure
// throttle is the server's (thread-safe).

#include "acl/credentials.hpp"
#include "proxy/server.hpp"
#include "proxy/session_impl.hpp"

namespace egressd::proxy {

using acl::reason;

void session::fill_identity(monitor::access_record& rec) const {
  if (rec.client.empty()) rec.client = client_str_;
  if (rec.group.empty()) {
    // The address's group, else the named agent's first group.
    if (!group_.empty())
      rec.group = group_;
    else if (who_.agent_groups && !who_.agent_groups->empty())
      rec.group = who_.agent_groups->front();
  }
  if (rec.agent.empty()) rec.agent = who_.agent;
}

void session::set_agent(const acl::agent* a) {
  if (!a) {
    who_.agent = {};
    who_.agent_groups = nullptr;
    who_.agent_group_index = {};
    who_.agent_index = -1;
    return;
  }
  constexpr std::string_view prefix = "agent:";
  if (std::string_view(agent_key_).substr(std::min(agent_key_.size(), prefix.size())) != a->name)
    agent_key_.assign(prefix).append(a->name);  // only when the agent changes
  who_.agent = a->name;
  who_.agent_groups = &a->groups;
  who_.agent_group_index = a->group_index;
  who_.agent_index = snap_->agents->index_of(a);
}

reason session::identify(const http::request_header<>& req, uint64_t* retry_after) {
  set_agent(nullptr);
  // Transparent listeners carry no credentials: the address decides there.
  if (snap_->auth == acl::auth_mode::off || info_.mode != config::listen_mode::proxy) return reason::none;
  acl::presented_credentials c;
  for (auto [it, end] = req.equal_range(http::field::proxy_authorization); it != end; ++it)
    if (c.fields++ == 0) c.value = it->value();
  const acl::auth_outcome out = acl::authenticate(snap_->auth, *snap_->agents, w_.srv().auth_throttle(),
                                                  client_ip_, c, acl::auth_throttle::clock::now(), &credentials_);
  set_agent(out.who);
  *retry_after = out.retry_after;
  return out.why;
}

// 407 (auth_required / auth_failed) or 429 (auth_throttled). The connection
// stays open after a 407 when no request body is pending, so a client that
// retries with credentials on the same connection can; a throttled client's
// connection is closed.
awaitable<bool> session::refuse_auth(request_parser& p, reason why, uint64_t retry_after,
                                     monitor::access_record& rec) {
  const auto& req = p.get();
  target t;
  if (req.method() == http::verb::connect) {
    rec.kind = monitor::request_kind::connect;
    if (parse_authority_form(req.target(), &t)) rec.port = t.port;
  } else if (parse_absolute_form(req.target(), &t)) {
    rec.port = t.port;
    rec.path = std::string(path_without_query(t.path));
  }
  rec.host = std::string(t.host);
  refusal_detail d;
  d.retry_after = retry_after;
  const bool ka = why != reason::auth_throttled && req.keep_alive() && p.is_done() && !w_.draining();
  co_await refuse(why, d, ka, rec);
  co_return ka;
}

}  // namespace egressd::proxy
