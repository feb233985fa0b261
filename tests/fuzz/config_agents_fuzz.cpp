// libFuzzer target: the text of an `agents FILE`. Must never crash; every
// diagnostic is "agents.txt:LINE: ..." with LINE inside the text; every
// agent kept has a valid name and valid group names, and no diagnostic
// repeats the hash word (or an option value) of its line when that word is
// not a valid hash: it could be a pasted token.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "acl/agents.hpp"
#include "config/directives.hpp"
#include "config/line_tokens.hpp"
#include "config/parse_context.hpp"

using namespace egressd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  config::load_options opts;
  opts.file_access = false;
  config::parse_context ctx(opts);
  static const std::string file = "egressd.conf", dir;
  ctx.enter_line(file, dir, 1);
  config::parse_agents_text(ctx, text, "agents.txt");

  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& d : ctx.agents) {
    if (!acl::valid_agent_name(d.a.name)) std::abort();
    for (const auto& g : d.a.groups)
      if (!acl::valid_agent_name(g)) std::abort();
    if (d.where.line < 1 || size_t(d.where.line) > lines) std::abort();
  }
  config::line_tokens tok;
  // Secret-looking words: a positional word or an option value (not group=)
  // that is not a hash, 12+ letters and digits (the fixed wording of the
  // messages has no such run, so any hit is an echo).
  // (The line's first word, the agent name, is echoed when invalid: a word
  // it contains is no evidence.)
  auto secret_like = [&tok](std::string_view w) {
    if (w.size() < 12 || acl::parse_token_hash(w)) return false;
    if (tok.directive().find(w) != std::string_view::npos) return false;
    for (char c : w)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    return true;
  };
  std::vector<std::pair<int, std::string>> secrets;  // line, word
  // Split the lines as the parser does: after a UTF-8 BOM.
  const std::string_view body = text.substr(0, 3) == "\xEF\xBB\xBF" ? text.substr(3) : text;
  size_t pos = 0;
  int line = 0;
  while (pos <= body.size()) {
    ++line;
    size_t end = body.find('\n', pos);
    if (end == std::string_view::npos) end = body.size();
    tok.split(body.substr(pos, end - pos));
    for (auto a : tok.args())
      if (secret_like(a)) secrets.emplace_back(line, a);
    for (const auto& o : tok.options())
      if (o.key != "group" && secret_like(o.value)) secrets.emplace_back(line, o.value);
    pos = end + 1;
  }
  for (const auto& d : ctx.take_diagnostics()) {
    if (d.file != "agents.txt" || d.line < 1 || size_t(d.line) > lines || d.message.empty()) std::abort();
    // Not repeated in the diagnostics of its own line (another line may
    // legitimately echo the same letters as, say, an invalid agent name).
    for (const auto& [l, w] : secrets)
      if (l == d.line && d.message.find(w) != std::string::npos) std::abort();
  }
  return 0;
}
