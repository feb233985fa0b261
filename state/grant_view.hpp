#pragma once
// The grants in force, compiled for the data path: an immutable view built
// by the control side (grant_store) on every change and published to every
// worker as a shared_ptr<const grant_view>, so a decision reads it with no
// lock. Lookup: hashed exact names and suffixes (one probe per label of the
// name) plus the regex grants. Expiry is checked at match time against the
// caller's clock, so a grant past its expiry is never honoured even if the
// sweeper has not removed it yet.

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "acl/client_id.hpp"
#include "acl/rule.hpp"
#include "state/grant.hpp"

namespace egressd::state {

class grant_view {
 public:
  // Patterns must be valid (parse_grant_request / grant_from_file_json
  // checked them); a grant whose regex does not compile is left out.
  static std::shared_ptr<const grant_view> build(std::vector<grant> grants);
  ~grant_view();

  // The most specific live grant whose pattern, port and scope fit, or
  // nullptr. name: normalised (acl::normalize_host). Scope: no agent and no
  // group = every client; agent= the named agent only; group= an agent
  // whose agent_groups hold it, or an address inside the config's group of
  // that name (address_groups: the snapshot's `group` lines). Specificity
  // as for allow rules: exact, longest suffix/wildcard, regex, then oldest.
  const grant* match(std::string_view name, uint16_t port, const acl::client_id& who,
                     const std::vector<acl::client_group>& address_groups, clock::time_point now) const;

  bool empty() const { return grants_.empty(); }
  const std::vector<grant>& grants() const { return grants_; }  // oldest first

 private:
  grant_view() = default;
  struct impl;
  std::vector<grant> grants_;
  std::unique_ptr<impl> impl_;
};

}  // namespace egressd::state
