#pragma once
// Translates Squid's ordered http_access rules into egressd's order-free
// allowlist, failing closed:
//  - an allow rule becomes allow lines (one per destination name) or an
//    allow_net line only when what they admit is a subset of what Squid
//    admitted there; otherwise it is left out as a comment (egressd then
//    denies what it allowed);
//  - a deny rule is never dropped: it becomes deny lines (destination names),
//    or a constraint carried into every later allow rule (`deny !Safe_ports`,
//    `deny CONNECT !SSL_ports`, `deny !localnet`), or is covered by egressd's
//    own refusals (loopback and other non-public destinations, the cache
//    manager); a deny that can be expressed only approximately is widened
//    (which narrows access) and said so;
//  - Squid's implicit last rule (the opposite of the last line) is applied.
// One translator per import, one thread.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "tools/squid_acl_table.hpp"
#include "tools/squid_config_reader.hpp"
#include "tools/squid_region.hpp"

namespace egressd::tools {

struct output_line {
  enum class kind_t : uint8_t { comment, allow, deny, group, other };
  std::string text;
  kind_t kind = kind_t::comment;
  std::string squid;  // the squid line it translates ("" if none)
};

class squid_access_translator {
 public:
  explicit squid_access_translator(const squid_acl_table& acls) : acls_(acls) {}

  // One `http_access` line, in file order. Errors (unknown ACL, syntax) go
  // to *errors as FILE:LINE.
  void add(const squid_line& l, std::vector<config::diagnostic>* errors);
  // Applies Squid's implicit rule after the last http_access line.
  void finish();

  const std::vector<output_line>& rules() const { return rules_; }
  std::vector<output_line> group_lines() const;  // `group` lines the rules use
  const std::vector<config::diagnostic>& warnings() const { return warnings_; }
  const std::set<std::string>& referenced_acls() const { return referenced_; }
  size_t allow_lines() const { return allow_lines_; }

 private:
  struct literal {
    const squid_acl* acl;
    bool negated;
  };
  struct port_plan {
    port_set admitted;   // what the egressd rule will admit (CONNECT and HTTP)
    std::string list;    // "80,443" ("" = any port, for allow_net)
    std::vector<std::string> notes;
  };

  void translate_allow(const squid_line& l, const std::vector<literal>& lits, const std::string& shown);
  void translate_deny(const squid_line& l, const std::vector<literal>& lits);
  bool resolve_group(const squid_region& r, std::string* group, std::string* why);
  port_plan plan_ports(const squid_region& r, bool for_net) const;
  bool overlaps_refused(const std::vector<acl::cidr>& nets) const;

  void comment(const std::string& text, const std::string& squid = "");
  void untranslated(const squid_line& l, const std::string& shown, const std::string& why, bool warn);
  void emit(output_line::kind_t k, const std::string& text, const std::string& squid);
  void warn(const squid_line& l, const std::string& message);

  const squid_acl_table& acls_;
  squid_region base_;  // what earlier deny rules leave to later allow rules
  std::vector<output_line> rules_;
  std::vector<const squid_acl*> groups_;  // in order of first use
  std::map<std::string, std::string> group_names_;  // acl name -> egressd group name
  std::set<std::string> emitted_;
  std::vector<acl::cidr> refused_nets_;  // denied nets egressd refuses by itself
  std::vector<config::diagnostic> warnings_;
  std::set<std::string> referenced_;
  size_t allow_lines_ = 0;
  bool any_rule_ = false;
  bool last_was_deny_ = false;
  std::vector<std::string> last_port_notes_;  // of the previous allow rule
  squid_line last_;  // the last http_access line
  std::vector<acl::cidr> allowed_nets_;  // every allow_net emitted
};

}  // namespace egressd::tools
