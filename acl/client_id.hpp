#pragma once
// Who is asking: the identity a decision is made for. Built by the session
// once per request (credentials are judged per request) and passed by
// reference into the policy and the grant set; it borrows from the config
// snapshot the request runs under, so it must not outlive that snapshot.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "acl/ip_address.hpp"

namespace egressd::acl {

struct client_id {
  ip_address addr;                                        // source address (IPv4-mapped unmapped)
  std::string_view agent;                                 // agent name; empty when none was named
  const std::vector<std::string>* agent_groups = nullptr; // groups on the agent's line (null: none)
  // The same groups as indices into policy::groups() (what decide() tests;
  // no string compares on the data path). Empty when no agent is named.
  std::span<const int32_t> agent_group_index{};
  int32_t agent_index = -1;  // into the snapshot's agent_table, -1 = none
};

}  // namespace egressd::acl
