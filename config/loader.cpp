#include "config/loader.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "acl/policy.hpp"
#include "config/directives.hpp"
#include "config/hosts_file.hpp"
#include "config/options.hpp"
#include "config/text_file.hpp"

namespace egressd::config {

namespace {

constexpr size_t max_include_depth = 16;

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return {};
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf)) return buf;
  return path;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

loader::loader(const load_options& opts) : ctx_(opts) {}

load_result loader::load_file(const std::string& path) {
  main_file_ = path;
  read_file(path, false);
  return finish();
}

load_result loader::load_string(std::string_view text, const std::string& name) {
  main_file_ = name;
  names_.push_back(name);
  names_.push_back(std::string());  // includes relative to the current directory
  const std::string& file = names_[names_.size() - 2];
  const std::string& dir = names_.back();
  ctx_.snap->files.push_back(name);
  parse_text(text, file, dir);
  return finish();
}

void loader::read_file(const std::string& path, bool from_include) {
  std::string canon = canonical(path);
  if (std::find(stack_.begin(), stack_.end(), canon) != stack_.end()) {
    ctx_.error("include cycle: '" + path + "' is already being read (remove one of the includes)");
    return;
  }
  if (stack_.size() >= max_include_depth) {
    ctx_.error("includes nested deeper than " + std::to_string(max_include_depth) + " files");
    return;
  }
  std::string text, err;
  if (!read_text_file(path, &text, &err)) {
    sources_.push_back({path, 0, true});
    if (from_include)
      ctx_.error("cannot read included file '" + path + "': " + err);
    else
      ctx_.file_error(path, "cannot read the configuration: " + err);
    return;
  }
  names_.push_back(path);
  const std::string& file = names_.back();
  names_.push_back(dir_of(path));
  const std::string& dir = names_.back();
  ctx_.snap->files.push_back(path);
  sources_.push_back({path, std::hash<std::string_view>{}(text), false});

  stack_.push_back(std::move(canon));
  auto saved = ctx_.save();
  parse_text(text, file, dir);
  ctx_.restore(saved);
  stack_.pop_back();
}

// Upper bound on the allow/deny lines of a large text (lines starting with
// 'a' or 'd'), so the rule vectors grow once instead of doubling through
// hundreds of megabytes.
static size_t estimate_rules(std::string_view text) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    char c = text[pos];
    n += (c == 'a') | (c == 'd');
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    if (!nl) break;
    pos = size_t(static_cast<const char*>(nl) - text.data()) + 1;
  }
  return n;
}

void loader::reserve_rules(std::string_view text) {
  if (text.size() < (64u << 10)) return;
  size_t need = ctx_.rules.size() + estimate_rules(text);
  if (need <= ctx_.rules.capacity()) return;
  need = std::max(need, ctx_.rules.capacity() * 2);  // keep growth amortised across includes
  ctx_.rules.reserve(need);
  ctx_.rule_origins.reserve(need);
}

void loader::parse_text(std::string_view text, const std::string& file, const std::string& dir) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  reserve_rules(text);
  int line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const char* nl = static_cast<const char*>(std::memchr(text.data() + pos, '\n', text.size() - pos));
    size_t end = nl ? size_t(nl - text.data()) : text.size();
    std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ctx_.enter_line(file, dir, ++line);
    tokens_.split(l);
    if (tokens_.bad_char() >= 0) {
      static const char digits[] = "0123456789abcdef";
      int c = tokens_.bad_char();
      std::string msg = "control character 0x";
      msg += digits[(c >> 4) & 15];
      msg += digits[c & 15];
      ctx_.error(msg + " in the line (is this a text file?)");
      continue;
    }
    if (tokens_.empty()) continue;
    if (tokens_.directive() == "include")
      include(tokens_);
    else
      dispatch_directive(ctx_, tokens_);
  }
}

void loader::include(const line_tokens& t) {
  take_options(ctx_, "include", t, {}, nullptr);
  if (!expect_args(ctx_, t, 1, SIZE_MAX, "include GLOB")) return;
  if (!ctx_.opts().file_access) {
    ctx_.error("include is not allowed here (file access is disabled)");
    return;
  }
  // Copy: the nested files reuse tokens_, which `t` refers to.
  std::vector<std::string> paths;
  for (std::string_view a : t.args()) paths.push_back(ctx_.resolve_path(a));
  for (const std::string& p : paths) include_one(p);
}

void loader::include_one(const std::string& path) {
  if (path.find_first_of("*?[") == std::string::npos) {
    read_file(path, true);
    return;
  }
  glob_t g{};
  int rc = ::glob(path.c_str(), 0, nullptr, &g);
  if (rc == GLOB_NOMATCH) {
    ::globfree(&g);
    globs_.push_back({path, {}});
    return;  // an empty conf.d is fine
  }
  if (rc != 0) {
    ::globfree(&g);
    ctx_.error("cannot expand include '" + path + "'");
    return;
  }
  std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  ::globfree(&g);
  std::sort(matches.begin(), matches.end());
  globs_.push_back({path, matches});
  for (const std::string& m : matches)
    if (!is_directory(m)) read_file(m, true);
}

void loader::finish_hosts() {
  if (ctx_.hosts_given || !ctx_.opts().file_access) return;
  // The system file: missing is fine, malformed lines are skipped (as libc).
  std::string text, err;
  if (read_text_file(ctx_.snap->hosts_file, &text, &err))
    parse_hosts(text, ctx_.snap->hosts_file, &ctx_.snap->hosts, nullptr);
}

void loader::finish_agents() {
  std::map<std::string_view, const agent_def*> by_name;
  std::map<acl::token_digest, const agent_def*> by_digest;
  std::set<std::string> groups;  // every group name known so far
  for (const auto& g : ctx_.groups) groups.insert(g.group.name);
  std::vector<group_def> implicit;
  for (const auto& d : ctx_.agents) {
    if (auto [it, fresh] = by_name.emplace(d.a.name, &d); !fresh) {
      ctx_.error_at(d.where, "agent " + d.a.name + " is defined twice (first at " + it->second->where.str() + ")");
      continue;
    }
    if (auto [it, fresh] = by_digest.emplace(d.a.digest, &d); !fresh)
      ctx_.error_at(d.where, "agent " + d.a.name + " has the same token hash as agent " + it->second->a.name +
                                 " at " + it->second->where.str() + " (every agent needs its own token)");
    // A group named only on agent lines is a group of agents (no networks).
    for (const auto& g : d.a.groups) {
      if (groups.count(g)) continue;
      group_def def;
      def.group.name = g;
      def.where = d.where;
      implicit.push_back(std::move(def));
      groups.insert(g);
    }
  }
  for (auto& g : implicit) ctx_.groups.push_back(std::move(g));
  for (const auto& ref : ctx_.agent_refs)
    if (!by_name.count(ref.name))
      ctx_.error_at(ref.where, "agent '" + ref.name + "' is not defined (add a line: agent " + ref.name +
                                   " token=sha256:HEX, or list it in an agents FILE)");
  if (!ctx_.auth) {
    ctx_.snap->auth = ctx_.agents.empty() ? acl::auth_mode::off : acl::auth_mode::required;
  } else {
    ctx_.snap->auth = *ctx_.auth;
    if (*ctx_.auth != acl::auth_mode::off && ctx_.agents.empty())
      ctx_.error_at(ctx_.auth_where, std::string("auth ") + acl::to_string(*ctx_.auth) +
                                         " needs at least one agent (add: agent NAME token=sha256:HEX, or "
                                         "agents FILE; or write auth off)");
  }
}

// After finish_groups: each agent's groups as indices into the groups the
// policy is built with.
void loader::build_agent_table() {
  std::map<std::string_view, int32_t> index;
  for (size_t i = 0; i < ctx_.snap->groups.size(); ++i)
    index.emplace(ctx_.snap->groups[i].name, static_cast<int32_t>(i));
  std::vector<acl::agent> agents;
  agents.reserve(ctx_.agents.size());
  for (auto& d : ctx_.agents) {
    for (const auto& g : d.a.groups)
      if (auto it = index.find(g); it != index.end()) d.a.group_index.push_back(it->second);
    agents.push_back(std::move(d.a));
  }
  ctx_.agents.clear();
  ctx_.snap->agents = std::make_unique<const acl::agent_table>(std::move(agents));
}

void loader::finish_groups() {
  std::map<std::string_view, const group_def*> by_name;
  for (const auto& g : ctx_.groups) by_name.emplace(g.group.name, &g);
  for (const auto& ref : ctx_.group_refs) {
    if (by_name.count(ref.name)) continue;
    ctx_.error_at(ref.where, "group '" + ref.name + "' is not defined (add a line: group " + ref.name +
                                 " CIDR..., or group=" + ref.name + " on an agent line)");
    ctx_.rules[ref.rule_index].group.clear();  // reported once, here
  }
  for (const auto& g : ctx_.groups) ctx_.snap->groups.push_back(g.group);
}

void loader::finish_policy() {
  std::vector<acl::build_error> errors;
  auto origins = std::move(ctx_.rule_origins);
  auto policy = acl::policy::build(std::move(ctx_.rules), std::move(ctx_.nets), ctx_.snap->groups, &errors);
  for (const auto& e : errors) {
    if (e.rule_index >= 0 && size_t(e.rule_index) < origins.size()) {
      const rule_origin& o = origins[size_t(e.rule_index)];
      ctx_.error_at(location{*o.file, o.line, o.seq}, e.message);
    } else {
      ctx_.file_error(main_file_, e.message);
    }
  }
  if (!policy && errors.empty()) ctx_.file_error(main_file_, "the allowlist could not be compiled");
  ctx_.snap->policy = std::move(policy);
}

load_result loader::finish() {
  // Nothing more can be said about a file that could not be read.
  if (ctx_.snap->files.empty()) return {nullptr, ctx_.take_diagnostics(), std::move(sources_), std::move(globs_)};
  finish_hosts();
  finish_agents();
  finish_groups();
  build_agent_table();
  if (ctx_.snap->listens.empty() && ctx_.snap->forwards.empty())
    ctx_.file_error(main_file_,
                    "nothing to serve: add a listen line (e.g. listen 127.0.0.1:3128)");
  finish_policy();
  load_result r;
  r.errors = ctx_.take_diagnostics();
  r.sources = std::move(sources_);
  r.globs = std::move(globs_);
  if (r.errors.empty()) r.snap = std::shared_ptr<const snapshot>(std::move(ctx_.snap));
  return r;
}

}  // namespace egressd::config
