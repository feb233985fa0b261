#pragma once
// Everything one load accumulates while reading lines: the snapshot under
// construction, the rules, the diagnostics, and what each once-only setting
// and listening address was first given by. Owned by one loader for the
// duration of one load_file/load_string call; not thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "acl/agents.hpp"
#include "acl/rule.hpp"
#include "config/config.hpp"
#include "config/features.hpp"

namespace egressd::config {

struct location {
  std::string file;
  int line = 0;
  uint32_t seq = 0;  // reading order of the line; diagnostics sort by it
  std::string str() const;
};

// A `group NAME CIDR...` line, kept until the end so `group=` may refer to
// a group defined further down.
struct group_def {
  acl::client_group group;
  location where;
};

// Where a rule was written. `file` points into the loader's stable list of
// file names, so 1M rules cost no string copies here.
struct rule_origin {
  const std::string* file;
  int line;
  uint32_t seq;
};

// A `group=NAME` reference, checked at the end.
struct group_ref {
  std::string name;
  size_t rule_index;  // into parse_context::rules
  location where;
};

// An `agent` line or a line of an `agents FILE`.
struct agent_def {
  acl::agent a;
  location where;
};

// An `agent=NAME` reference on an allow rule, checked at the end.
struct agent_ref {
  std::string name;
  location where;
};

class parse_context {
 public:
  explicit parse_context(const load_options& opts);

  const load_options& opts() const { return opts_; }

  // Called by the loader for every line; `file` must outlive the line.
  void enter_line(const std::string& file, const std::string& dir, int line) {
    file_ = &file;
    dir_ = &dir;
    line_ = line;
    ++seq_;
  }
  // Saved around an include, which moves the current line elsewhere.
  struct cursor {
    const std::string* file;
    const std::string* dir;
    int line;
  };
  cursor save() const { return {file_, dir_, line_}; }
  void restore(const cursor& c) {
    file_ = c.file;
    dir_ = c.dir;
    line_ = c.line;
  }
  const std::string& file() const { return *file_; }
  rule_origin origin() const { return {file_, line_, seq_}; }
  int line() const { return line_; }
  uint32_t seq() const { return seq_; }
  location here() const { return {*file_, line_, seq_}; }
  // A path written in the current file: relative to that file's directory.
  std::string resolve_path(std::string_view p) const;

  void error(std::string msg);  // at the current line
  void error_at(const location& where, std::string msg);
  void file_error(const std::string& file, std::string msg);  // "FILE: msg", now
  void add(diagnostic d);  // about another file (hosts), ordered as now
  // Reports a feature this build does not implement (unless allowed).
  void use(feature f);
  // A setting that can be given only once: true the first time; the second
  // time reports "<what> given twice (first at F:L)" and returns false.
  bool once(std::string_view key, std::string_view what);
  // Listening addresses: an error when two overlap (same port, and the same
  // address or a wildcard that covers the other). udp: dns_listen.
  void claim_address(const endpoint& e, bool udp, std::string_view what);

  bool has_errors() const { return !diags_.empty(); }
  // Diagnostics in reading order.
  std::vector<diagnostic> take_diagnostics();

  std::unique_ptr<snapshot> snap = std::make_unique<snapshot>();
  std::vector<acl::rule> rules;
  std::vector<rule_origin> rule_origins;  // parallel to rules
  std::vector<acl::net_rule> nets;
  std::vector<group_def> groups;
  std::vector<group_ref> group_refs;
  std::vector<agent_def> agents;
  std::vector<agent_ref> agent_refs;
  std::optional<acl::auth_mode> auth;  // `auth`, when given
  location auth_where;
  bool hosts_given = false;

 private:
  struct claimed {
    endpoint addr;
    bool udp;
    std::string what;
    location where;
  };

  load_options opts_;
  const std::string* file_ = nullptr;
  const std::string* dir_ = nullptr;
  int line_ = 0;
  uint32_t seq_ = 0;
  std::vector<std::pair<uint32_t, diagnostic>> diags_;
  std::unordered_map<std::string, location> once_;
  std::vector<claimed> claimed_;
  static const std::string empty_;
};

}  // namespace egressd::config
