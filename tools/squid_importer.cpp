#include "tools/squid_importer.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "tools/squid_access_translator.hpp"
#include "tools/squid_acl_table.hpp"
#include "tools/squid_config_reader.hpp"
#include "tools/squid_server_translator.hpp"

namespace egressd::tools {

namespace {

using kind_t = output_line::kind_t;

constexpr const char* header_text =
    "# Review it before use. Squid lines with no egressd equivalent are kept below as\n"
    "# \"# squid: LINE (not translated: WHY)\". The translation fails closed: an\n"
    "# http_access rule that cannot be expressed exactly is left out (egressd then\n"
    "# denies what it allowed) and a deny rule is never dropped (when it can only be\n"
    "# approximated, the approximation denies more).\n"
    "#\n"
    "# Squid evaluates http_access top-down, first match wins; egressd's deny lines\n"
    "# win over allow lines wherever they are. Earlier denies such as\n"
    "# `deny !Safe_ports` and `deny CONNECT !SSL_ports` are folded into the allow\n"
    "# lines below them. Ports: each rule lists the ports where squid allowed\n"
    "# CONNECT, plus 80 where it allowed plain HTTP (egressd cannot open a port to\n"
    "# plain HTTP only, so a CONNECT to port 80 of that name is admitted too).\n";

class importer {
 public:
  explicit importer(const import_options& opts) : opts_(opts), acls_(opts.file_access), access_(acls_) {}

  import_result run(squid_config_reader& reader, const std::string& name) {
    import_result res;
    res.errors = reader.errors();
    std::vector<const squid_line*> acl_lines;
    for (const auto& l : reader.lines()) {
      const std::string& d = l.words[0].text;
      if (d == "acl") {
        acls_.add(l, &res.errors);
        acl_lines.push_back(&l);
      } else if (d == "http_access") {
        access_.add(l, &res.errors);
      } else {
        server_.add(l, &res.errors);
      }
    }
    if (!res.errors.empty()) return res;
    access_.finish();

    std::vector<output_line> out;
    auto c = [&](std::string t) { out.push_back({std::move(t), kind_t::comment, ""}); };
    c("# egressd configuration translated from " + name + " by `egressd import-squid`.");
    for (size_t pos = 0, nl; (nl = std::string_view(header_text).find('\n', pos)) != std::string_view::npos;
         pos = nl + 1)
      c(std::string(std::string_view(header_text).substr(pos, nl - pos)));
    c("");
    for (auto& l : server_.server_lines()) out.push_back(std::move(l));
    auto groups = access_.group_lines();
    if (!groups.empty()) {
      c("");
      c("# --- Clients: the squid src ACLs the rules below use");
      for (auto& g : groups) {
        c("# squid: " + g.squid);
        out.push_back(std::move(g));
      }
    }
    c("");
    c("# --- Access rules: squid's http_access lines, in order");
    for (const auto& l : access_.rules()) out.push_back(l);

    std::vector<output_line> skipped = server_.untranslated();
    for (const auto* l : acl_lines) {
      const squid_acl* a = acls_.find(l->words[1].text);
      if (!a) continue;
      if (a->kind == squid_acl_kind::unsupported)
        skipped.push_back({"# squid: " + l->text + " (not translated: " + a->why + ")", kind_t::comment, l->text});
      else if (!access_.referenced_acls().count(a->name))
        skipped.push_back({"# squid: " + l->text + " (not translated: no http_access rule uses it)", kind_t::comment,
                           l->text});
    }
    if (!skipped.empty()) {
      c("");
      c("# --- Squid lines not translated");
      for (auto& l : skipped) out.push_back(std::move(l));
    }
    res.warnings = server_.warnings();
    for (const auto& w : access_.warnings()) res.warnings.push_back(w);
    validate(out, name, &res);
    if (!res.errors.empty()) return res;
    for (const auto& l : out) {
      res.text += l.text;
      res.text += '\n';
      if (l.kind == kind_t::allow) ++res.allow_lines;
    }
    return res;
  }

 private:
  // Loads the result with egressd's parser; every line it refuses becomes a
  // comment (a deny line or a line-less error fails the import).
  void validate(std::vector<output_line>& out, const std::string& name, import_result* res) {
    config::load_options lo;
    lo.file_access = opts_.file_access;
    for (int round = 0; round < 64; ++round) {
      std::string text;
      for (const auto& l : out) text += l.text + "\n";
      auto r = config::load_string(text, name + " (translated)", lo);
      if (r.snap) return;
      std::map<size_t, std::string> bad;  // line index -> first message
      for (const auto& e : r.errors) {
        if (e.line <= 0 || size_t(e.line) > out.size()) {
          res->errors.push_back({name, 0, "the translated configuration is refused: " + e.message});
          return;
        }
        bad.emplace(size_t(e.line) - 1, e.message);
      }
      for (const auto& [i, msg] : bad) {
        output_line& l = out[i];
        if (l.kind == kind_t::deny || l.kind == kind_t::comment) {
          res->errors.push_back({name, 0, "egressd refuses the translated line '" + l.text + "': " + msg});
          return;
        }
        std::string what = l.squid.empty() ? l.text : l.squid;
        res->warnings.push_back({name, 0, "warning: '" + l.text + "' left out: " + msg});
        l.text = "# squid: " + what + " (not translated: egressd refuses '" + l.text + "': " + msg + ")";
        l.kind = kind_t::comment;
      }
    }
    res->errors.push_back({name, 0, "the translated configuration could not be made valid"});
  }

  import_options opts_;
  squid_acl_table acls_;
  squid_access_translator access_;
  squid_server_translator server_;
};

}  // namespace

import_result import_squid_file(const std::string& path, const import_options& opts) {
  squid_config_reader reader(opts.file_access);
  if (!reader.read_file(path)) {
    import_result r;
    r.errors = reader.errors();
    return r;
  }
  return importer(opts).run(reader, path);
}

import_result import_squid_string(std::string_view text, const std::string& name, const std::string& dir,
                                  const import_options& opts) {
  squid_config_reader reader(opts.file_access);
  reader.read_string(text, name, dir);
  return importer(opts).run(reader, name);
}

}  // namespace egressd::tools
