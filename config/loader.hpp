#pragma once
// Reads one configuration (a file and its includes, or a string) into a
// snapshot: splits lines, follows includes (glob, cycle detection), runs
// the directive handlers, then resolves what needs the whole file (groups,
// the default hosts file) and compiles the acl::policy. One loader per
// load, used by one thread, discarded afterwards.

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/line_tokens.hpp"
#include "config/parse_context.hpp"

namespace egressd::config {

class loader {
 public:
  explicit loader(const load_options& opts);

  load_result load_file(const std::string& path);
  load_result load_string(std::string_view text, const std::string& name);

 private:
  // Reads and parses one file. from_include: errors go to the include line.
  void read_file(const std::string& path, bool from_include);
  void reserve_rules(std::string_view text);
  void parse_text(std::string_view text, const std::string& file, const std::string& dir);
  void include(const line_tokens& t);
  void include_one(const std::string& path);
  void finish_agents();
  void build_agent_table();
  void finish_groups();
  void finish_hosts();
  void finish_policy();
  load_result finish();

  parse_context ctx_;
  std::vector<source_file> sources_;  // for load_result::sources
  std::vector<std::pair<std::string, std::vector<std::string>>> globs_;
  line_tokens tokens_;
  std::deque<std::string> names_;    // stable storage: file names and their directories
  std::vector<std::string> stack_;   // canonical paths of the files being read
  std::string main_file_;
};

}  // namespace egressd::config
