#pragma once
// Translates the squid.conf directives that are not about access: where to
// listen (http_port), DNS (dns_nameservers, hosts_file), the access log, a
// parent proxy (cache_peer ... parent), timeouts and the header size limit.
// Every other directive is kept as `# squid: LINE (not translated: WHY)`.
// One translator per import, one thread.

#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "tools/squid_access_translator.hpp"
#include "tools/squid_config_reader.hpp"

namespace egressd::tools {

class squid_server_translator {
 public:
  // Any directive but acl and http_access. Errors (values Squid itself
  // would refuse) go to *errors as FILE:LINE.
  void add(const squid_line& l, std::vector<config::diagnostic>* errors);

  // The egressd lines, each after a `# squid: LINE` comment; a default
  // listener when squid.conf has no http_port.
  std::vector<output_line> server_lines() const;
  const std::vector<output_line>& untranslated() const { return untranslated_; }
  const std::vector<config::diagnostic>& warnings() const { return warnings_; }

 private:
  void http_port(const squid_line& l, std::vector<config::diagnostic>* errors);
  void cache_peer(const squid_line& l);
  void access_log(const squid_line& l);
  void duration(const squid_line& l, const char* key, std::vector<config::diagnostic>* errors);
  void header_size(const squid_line& l, std::vector<config::diagnostic>* errors);
  void skip(const squid_line& l, const std::string& why, bool warn = false);
  void add_line(const squid_line& l, std::string text, std::string note = "");

  std::vector<output_line> lines_;
  std::vector<output_line> untranslated_;
  std::vector<config::diagnostic> warnings_;
  std::vector<std::string> listens_;
  std::vector<std::string> resolvers_;
  std::string resolver_squid_;
  std::vector<std::pair<std::string, std::string>> timeouts_;  // key, value
  std::string timeout_squid_;
  bool access_log_seen_ = false;
  bool parent_seen_ = false;
  bool hosts_seen_ = false;
};

}  // namespace egressd::tools
