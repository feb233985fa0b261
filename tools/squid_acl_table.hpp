#pragma once
// The `acl` definitions of a squid.conf: Squid's predefined ACLs (all,
// manager, localhost, to_localhost, to_linklocal), then every `acl NAME TYPE
// VALUE...` line, values from quoted files included (relative to the
// squid.conf that names them). Lines of one name accumulate values; a name
// redefined with another type is an error, as in Squid. Types egressd cannot
// evaluate are kept as `unsupported` with the reason, so that rules naming
// them can be judged. Built once per import by one thread, then read-only.

#include <map>
#include <string>
#include <vector>

#include "acl/ip_address.hpp"
#include "config/config.hpp"
#include "tools/port_set.hpp"
#include "tools/squid_config_reader.hpp"

namespace egressd::tools {

enum class squid_acl_kind : uint8_t {
  all,          // predefined `all` (every request)
  src,          // client networks
  dst,          // destination networks
  domain,       // dstdomain / dstdom_regex / ssl::server_name(_regex)
  port,         // destination ports
  method,       // request methods
  manager,      // Squid's cache manager requests (egressd has none)
  unsupported,  // anything else: why says what
};

struct squid_regex {
  std::string text;
  bool icase = false;
  std::string where;  // FILE:LINE
};

struct squid_value_where {
  std::string value;
  std::string where;  // FILE:LINE
};

struct squid_acl {
  std::string name;
  std::string type;  // as written (dstdomain, src, ...)
  squid_acl_kind kind = squid_acl_kind::unsupported;
  std::vector<squid_value_where> domains;  // dstdomain values
  std::vector<squid_regex> regexes;        // dstdom_regex values
  std::vector<acl::cidr> nets;             // src / dst
  port_set ports;                          // port
  std::vector<std::string> methods;        // method, upper-case
  std::string why;                         // unsupported: the reason
  bool predefined = false;
  std::string first_where;                 // FILE:LINE of the first definition
};

class squid_acl_table {
 public:
  explicit squid_acl_table(bool file_access = true);

  // `acl NAME TYPE [flags] VALUE...`. Errors go to *errors as FILE:LINE.
  void add(const squid_line& l, std::vector<config::diagnostic>* errors);
  const squid_acl* find(const std::string& name) const;

  // True when the nets cover every IPv4 and IPv6 address.
  static bool covers_everything(const std::vector<acl::cidr>& nets);
  // Squid's address syntax: IP, IP/PREFIX, IP/DOTTED-MASK (host bits are
  // cleared, as Squid does), or `all`. Appends to *out.
  static bool parse_net(const std::string& v, std::vector<acl::cidr>* out);

 private:
  bool add_values(squid_acl& a, const squid_line& l, size_t first, std::vector<config::diagnostic>* errors);
  bool add_value(squid_acl& a, const std::string& v, bool icase, const std::string& where,
                 std::string* err);

  bool file_access_;
  std::map<std::string, squid_acl> acls_;
};

}  // namespace egressd::tools
