#pragma once
// `egressd learn`: builds a reviewable allowlist from access-log lines (SPEC
// "Access log"). Every request line counts for its destination, whatever
// its decision (allow, deny, report: report mode is the usual source), grouped
// by host name: ports, plain-HTTP methods, decisions, reasons, clients and
// first/last time seen. IP-literal destinations are never turned into
// patterns: they are listed as networks, with commented allow_net lines.
// Alert lines and lines that are not access-log objects are counted and
// skipped. Output is deterministic (names sorted by their labels from the
// right, so a domain's names stay together). One learner per run, one
// thread; memory grows with the number of distinct hosts, not lines.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace egressd::tools {

class allowlist_learner {
 public:
  // One line of an access log (without the newline). Blank lines are ignored.
  void add_line(std::string_view line);
  void add_file_name(const std::string& name) { files_.push_back(name); }

  // {"rules":[...], "networks":[...], "invalid_hosts":[...], "config":[...],
  //  "files", "lines", "requests", "alert_lines", "forward_lines",
  //  "skipped_lines", "first_seen", "last_seen"}
  nlohmann::ordered_json result() const;

 private:
  struct host_stats {
    std::set<uint16_t> ports;
    std::set<std::string> methods;  // as logged; CONNECT for tunnels
    std::set<std::string> groups;
    std::set<std::string> clients;  // client addresses (bounded)
    std::map<std::string, uint64_t> reasons;
    uint64_t requests = 0, allowed = 0, denied = 0, reported = 0;
    bool plain_http = false;  // a plain-HTTP request was seen (kind http/host)
    std::string first_seen, last_seen;
  };

  static void count(host_stats& h, const nlohmann::json& j, const std::string& ts, const std::string& decision);
  nlohmann::ordered_json host_json(const std::string& key, const host_stats& h, bool network) const;
  static std::vector<std::string> config_lines(const std::string& name, const host_stats& h);

  std::vector<std::string> files_;
  std::map<std::string, host_stats> names_;     // key: labels reversed ("com.github.api")
  std::map<std::string, std::string> name_of_;  // key -> name
  std::map<std::string, host_stats> networks_;  // key: sortable address bytes
  std::map<std::string, std::string> address_of_;
  std::map<std::string, uint64_t> invalid_;     // raw host (truncated) -> lines
  uint64_t lines_ = 0, requests_ = 0, alerts_ = 0, forwards_ = 0, skipped_ = 0;
  std::string first_seen_, last_seen_;
};

}  // namespace egressd::tools
