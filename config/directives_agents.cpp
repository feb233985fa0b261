// The agent directives (SPEC "Agents by name"): agent, agents FILE, auth.
// Definitions are collected into the parse context and checked as a whole
// (duplicate names and token hashes, groups, agent= references) by the
// loader's finish_agents(). No message ever repeats a token= value: an
// operator who pasted a raw token instead of its hash must not find it in a
// log of `egressd --check`.
#include <string>

#include "acl/agents.hpp"
#include "config/directives.hpp"
#include "config/options.hpp"
#include "config/text_file.hpp"

namespace egressd::config {

namespace {

constexpr std::string_view bad_hash_hint =
    "must be sha256: followed by 64 hex digits, the SHA-256 of the token (print it with: "
    "egressd hash-token < token-file)";

// Splits "a,b,c" into group names (the agent-name alphabet, as group
// names); false with *bad on an invalid one.
bool parse_name_list(std::string_view v, std::vector<std::string>* out, std::string* bad) {
  size_t start = 0;
  while (true) {
    const size_t comma = v.find(',', start);
    std::string_view n = v.substr(start, comma == v.npos ? v.npos : comma - start);
    if (!acl::valid_agent_name(n)) {
      *bad = std::string(n);
      return false;
    }
    bool seen = false;
    for (const auto& o : *out) seen = seen || o == n;
    if (!seen) out->emplace_back(n);
    if (comma == v.npos) return true;
    start = comma + 1;
  }
}

// One agent definition from either form; `report` adds a message at its line.
template <class Report>
void add_agent(parse_context& ctx, std::string_view name, std::string_view hash,
               const std::optional<std::string_view>& groups, const location& where, Report&& report) {
  bool ok = true;
  if (!acl::valid_agent_name(name)) {
    // A name past 64 bytes is not repeated: it may be a token pasted into
    // the name's place (errors never echo a secret).
    if (name.size() > 64)
      report("invalid agent name (" + std::to_string(name.size()) +
             " characters; letters, digits, _ - .; at most 64)");
    else
      report("invalid agent name '" + std::string(name) + "' (letters, digits, _ - .; at most 64)");
    ok = false;
  }
  auto digest = acl::parse_token_hash(hash);
  if (!digest) {
    report("the token hash " + std::string(bad_hash_hint));
    ok = false;
  }
  agent_def d;
  if (groups) {
    std::string bad;
    if (!parse_name_list(*groups, &d.a.groups, &bad)) {
      report("invalid group '" + bad + "' in group= (letters, digits, _ - .; e.g. group=ci,build)");
      ok = false;
    }
  }
  if (!ok) return;
  d.a.name = std::string(name);
  d.a.digest = *digest;
  d.a.file = where.file;
  d.a.line = where.line;
  d.where = where;
  ctx.agents.push_back(std::move(d));
}

}  // namespace

void directive_agent(parse_context& ctx, const line_tokens& t) {
  std::optional<std::string_view> opt[2];
  take_options(ctx, "agent", t, {"token", "group"}, opt);
  if (!expect_args(ctx, t, 1, 1, "agent NAME token=sha256:HEX [group=G,...]")) return;
  if (!opt[0]) {
    ctx.error("agent " + std::string(t.args()[0]) + " needs token=sha256:HEX (print it with: egressd hash-token)");
    return;
  }
  add_agent(ctx, t.args()[0], *opt[0], opt[1], ctx.here(), [&](std::string m) { ctx.error(std::move(m)); });
}

void directive_agents(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "agents", t, {}, nullptr);
  if (!expect_args(ctx, t, 1, 1, "agents FILE")) return;
  if (!ctx.opts().file_access) {
    ctx.error("agents FILE is not allowed here (file access is disabled)");
    return;
  }
  const std::string path = ctx.resolve_path(t.args()[0]);
  std::string text, err;
  if (!read_text_file(path, &text, &err)) {
    ctx.error("cannot read agents file '" + path + "': " + err);
    return;
  }
  // The reload watchers and --check see it like an included file.
  ctx.snap->files.push_back(path);
  parse_agents_text(ctx, text, path);
}

void parse_agents_text(parse_context& ctx, std::string_view text, const std::string& path) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  line_tokens tok;
  int line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    const location where{path, line, ctx.seq()};
    auto report = [&](std::string m) { ctx.error_at(where, std::move(m)); };
    tok.split(l);
    if (tok.bad_char() >= 0) {
      report("control character in the line (is this a text file?)");
      continue;
    }
    if (tok.empty()) continue;
    std::optional<std::string_view> groups;
    bool ok = true;
    for (const option& o : tok.options()) {
      if (o.key == "group" && !groups && !o.value.empty()) {
        groups = o.value;
      } else {
        // Neither key nor value: a pasted token can look like key=value.
        report("unexpected KEY=VALUE word (the form is NAME sha256:HEX [group=G,...], group= once)");
        ok = false;
      }
    }
    if (tok.args().size() != 1) {
      report("expected NAME sha256:HEX [group=G,...]");
      continue;
    }
    if (ok) add_agent(ctx, tok.directive(), tok.args()[0], groups, where, report);
  }
}

void directive_auth(parse_context& ctx, const line_tokens& t) {
  take_options(ctx, "auth", t, {}, nullptr);
  if (!ctx.once("auth", "auth")) return;
  if (!expect_args(ctx, t, 1, 1, "auth off|optional|required")) return;
  const std::string_view v = t.args()[0];
  if (v == "off")
    ctx.auth = acl::auth_mode::off;
  else if (v == "optional")
    ctx.auth = acl::auth_mode::optional;
  else if (v == "required")
    ctx.auth = acl::auth_mode::required;
  else {
    ctx.error("invalid auth '" + std::string(v) + "' (write auth off, auth optional or auth required)");
    return;
  }
  ctx.auth_where = ctx.here();
}

}  // namespace egressd::config
