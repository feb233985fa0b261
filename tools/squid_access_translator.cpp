#include "tools/squid_access_translator.hpp"

#include <algorithm>

#include "tools/squid_nets.hpp"
#include "tools/squid_patterns.hpp"

namespace egressd::tools {

namespace {

// Ranges wider than this are not listed port by port in ports=.
constexpr uint32_t max_listed_range = 32;

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += sep;
    s += x;
  }
  return s;
}

std::string group_name_for(const std::string& acl_name) {
  std::string g;
  for (char c : acl_name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.';
    g += ok ? c : '_';
  }
  if (g.size() > 64) g.resize(64);
  return g.empty() ? "squid" : g;
}

std::string host_net(const acl::ip_address& ip) {
  return ip.to_string() + (ip.is_v4() ? "/32" : "/128");
}

std::string what_carried(const squid_acl& a, bool negated) {
  switch (a.kind) {
    case squid_acl_kind::domain:
      return negated ? "only destination names in acl " + a.name : "never names in acl " + a.name;
    case squid_acl_kind::src:
      return negated ? "only clients in acl " + a.name : "never clients in acl " + a.name;
    case squid_acl_kind::port:
      return (negated ? "only ports " : "never ports ") + a.ports.str() + " (acl " + a.name + ")";
    case squid_acl_kind::method:
      return (negated ? "only methods " : "never methods ") + join(a.methods, ",") + " (acl " + a.name + ")";
    default:
      return "acl " + a.name;
  }
}

}  // namespace

void squid_access_translator::comment(const std::string& text, const std::string& squid) {
  rules_.push_back({text, output_line::kind_t::comment, squid});
}

void squid_access_translator::emit(output_line::kind_t k, const std::string& text, const std::string& squid) {
  if (!emitted_.insert(text).second) return;
  rules_.push_back({text, k, squid});
  if (k == output_line::kind_t::allow) ++allow_lines_;
}

void squid_access_translator::warn(const squid_line& l, const std::string& message) {
  warnings_.push_back({l.file, l.line, "warning: " + message});
}

void squid_access_translator::untranslated(const squid_line& l, const std::string& shown, const std::string& why,
                                           bool warn_too) {
  comment("# squid: " + shown + " (not translated: " + why + ")", l.text);
  if (warn_too) warn(l, "'" + shown + "' not translated: " + why);
}

void squid_access_translator::add(const squid_line& l, std::vector<config::diagnostic>* errors) {
  auto fail = [&](std::string m) { errors->push_back({l.file, l.line, std::move(m)}); };
  if (l.words.size() < 2 || (l.words[1].text != "allow" && l.words[1].text != "deny")) {
    fail("http_access needs allow or deny: http_access allow|deny [!]ACL...");
    return;
  }
  if (l.words.size() < 3) {
    fail("http_access " + l.words[1].text + " needs at least one ACL (write 'all' for every request)");
    return;
  }
  std::vector<literal> lits;
  for (size_t i = 2; i < l.words.size(); ++i) {
    std::string name = l.words[i].text;
    bool neg = !name.empty() && name[0] == '!';
    if (neg) name.erase(0, 1);
    const squid_acl* a = name.empty() || l.words[i].quoted ? nullptr : acls_.find(name);
    if (!a) {
      fail("http_access names an undefined acl '" + l.words[i].text + "'");
      return;
    }
    referenced_.insert(name);
    lits.push_back({a, neg});
  }
  any_rule_ = true;
  last_ = l;
  last_was_deny_ = l.words[1].text == "deny";
  if (last_was_deny_)
    translate_deny(l, lits);
  else
    translate_allow(l, lits, l.text);
}

void squid_access_translator::finish() {
  if (!any_rule_) {
    comment("# squid.conf has no http_access rule: squid denies every request, and so does egressd");
    return;
  }
  if (!last_was_deny_ || base_.never) return;
  // Squid: when no line matches, the answer is the opposite of the last line.
  translate_allow(last_, {}, "(implicit) http_access allow all -- squid allows what no rule matched when its last rule is a deny");
}

bool squid_access_translator::resolve_group(const squid_region& r, std::string* group, std::string* why) {
  std::vector<const squid_acl*> pos;
  for (const auto* a : r.src_pos)
    if (!squid_acl_table::covers_everything(a->nets)) pos.push_back(a);
  const squid_acl* chosen = nullptr;
  for (const auto* x : pos) {
    bool inner = std::all_of(pos.begin(), pos.end(), [&](const squid_acl* y) { return nets_within(x->nets, y->nets); });
    if (inner) {
      chosen = x;
      break;
    }
  }
  if (!pos.empty() && !chosen) {
    *why = "it requires clients in acl " + pos[0]->name + " and in acl " + pos[1]->name +
           " at once (egressd takes one group per rule)";
    return false;
  }
  for (const auto* n : r.src_neg) {
    if (!chosen || nets_overlap(n->nets, chosen->nets)) {
      *why = "it excludes the clients of acl " + n->name + " (egressd groups cannot exclude clients)";
      return false;
    }
  }
  group->clear();
  if (!chosen) return true;
  auto it = group_names_.find(chosen->name);
  if (it == group_names_.end()) {
    std::string g = group_name_for(chosen->name);
    for (const auto& [k, v] : group_names_)
      if (v == g) g += "_" + std::to_string(group_names_.size());
    it = group_names_.emplace(chosen->name, g).first;
    groups_.push_back(chosen);
  }
  *group = it->second;
  return true;
}

squid_access_translator::port_plan squid_access_translator::plan_ports(const squid_region& r, bool for_net) const {
  port_plan pp;
  const bool http_ok = !r.http_ports.empty() && (!r.methods || !r.methods->empty());
  port_set wanted = r.connect_ports;
  if (http_ok && r.http_ports.contains(80)) wanted.add({80, 80});
  if (for_net && wanted.is_all()) {
    pp.admitted = wanted;
    return pp;
  }
  std::vector<std::string> unlisted;
  for (const auto& iv : wanted.intervals()) {
    if (uint32_t(iv.second) - iv.first + 1 <= max_listed_range) {
      pp.admitted.add(iv);
      continue;
    }
    for (uint16_t p : {uint16_t(80), uint16_t(443)})
      if (iv.first <= p && p <= iv.second) pp.admitted.add({p, p});
    unlisted.push_back(std::to_string(iv.first) + "-" + std::to_string(iv.second));
  }
  for (const auto& iv : pp.admitted.intervals())
    for (uint32_t p = iv.first; p <= iv.second; ++p) {
      if (!pp.list.empty()) pp.list += ',';
      pp.list += std::to_string(p);
    }
  if (!unlisted.empty())
    pp.notes.push_back("ports " + join(unlisted, ",") +
                       " are not listed (egressd's ports= is a list; add the ones you need)");
  if (http_ok) {
    port_set left = r.http_ports.subtract(pp.admitted);
    for (const auto& iv : wanted.intervals())
      if (uint32_t(iv.second) - iv.first + 1 > max_listed_range) left = left.subtract(port_set::range(iv.first, iv.second));
    if (!left.empty())
      pp.notes.push_back("plain HTTP to ports " + left.str() +
                         " is left out (egressd cannot open a port to plain HTTP without also admitting CONNECT to it)");
  }
  return pp;
}

bool squid_access_translator::overlaps_refused(const std::vector<acl::cidr>& nets) const {
  return nets_overlap(nets, refused_nets_);
}

void squid_access_translator::translate_allow(const squid_line& l, const std::vector<literal>& lits,
                                              const std::string& shown) {
  for (const auto& lit : lits)
    if (lit.acl->kind == squid_acl_kind::manager && !lit.negated)
      return untranslated(l, shown, "egressd has no cache manager (see the admin directive)", false);
  squid_region r = base_;
  for (const auto& lit : lits) r.apply(*lit.acl, lit.negated);
  if (r.never) return untranslated(l, shown, "it can never match: " + r.never_why, false);
  if (!r.unsupported.empty()) return untranslated(l, shown, r.unsupported, true);
  std::string group, why;
  if (!resolve_group(r, &group, &why)) return untranslated(l, shown, why, true);
  if (r.dom_pos.size() > 1)
    return untranslated(l, shown, "it requires names in acl " + r.dom_pos[0]->name + " and in acl " +
                                      r.dom_pos[1]->name + " at once", true);
  if (r.dst_pos.size() > 1 || (!r.dst_pos.empty() && !r.dom_pos.empty()))
    return untranslated(l, shown, "it combines several destination ACLs, which egressd cannot intersect", true);
  std::vector<acl::cidr> excluded;
  for (const auto* a : r.dst_neg) {
    if (!all_non_public(a->nets))
      return untranslated(l, shown, "egressd cannot exclude public destination addresses (acl " + a->name + ")", true);
    excluded.insert(excluded.end(), a->nets.begin(), a->nets.end());
  }
  // Names this rule excludes become deny lines (which apply to every rule).
  std::vector<std::string> denies, notes;
  for (const auto* a : r.dom_neg) {
    for (const auto& v : a->domains) {
      auto c = convert_dstdomain(v.value);
      if (!c.pattern.empty()) denies.push_back(c.pattern);
      else if (c.ip) refused_nets_.push_back(*acl::parse_cidr(host_net(*c.ip)));
    }
    for (const auto& re : a->regexes) {
      auto c = convert_dstdom_regex(re.text, re.icase);
      if (c.pattern.empty())
        return untranslated(l, shown, "its exclusion '" + re.text + "' (acl " + a->name + ") is " + c.why, true);
      denies.push_back(c.pattern);
    }
    notes.push_back("the names of acl " + a->name + " it excludes become deny lines, which apply to every rule");
  }
  const bool net_rule = !r.dst_pos.empty();
  port_plan pp = plan_ports(r, net_rule);
  if (pp.admitted.empty()) return untranslated(l, shown, "it admits no port egressd can list", true);
  std::string opts = pp.list.empty() ? "" : " ports=" + pp.list;
  std::string methods;
  if (r.methods) methods = " methods=" + (r.methods->empty() ? std::string("CONNECT") : join(*r.methods, ","));

  std::vector<std::pair<output_line::kind_t, std::string>> out;
  auto add_net = [&](const std::vector<acl::cidr>& nets, const std::string& what) {
    std::string why;
    if (!group.empty())
      why = "egressd's allow_net applies to every client, this rule only to group " + group;
    else if (!methods.empty())
      why = "allow_net takes no methods=";
    else if (overlaps_refused(nets) || nets_overlap(nets, excluded))
      why = "an earlier deny excludes part of it";
    if (!why.empty()) {
      notes.push_back(what + " left out: " + why);
      warn(l, what + " left out: " + why);
      return;
    }
    out.push_back({output_line::kind_t::allow, "allow_net " + nets_str(nets) + opts});
    allowed_nets_.insert(allowed_nets_.end(), nets.begin(), nets.end());
  };
  if (net_rule) {
    add_net(r.dst_pos[0]->nets, "acl " + r.dst_pos[0]->name);
    notes.push_back("squid's dst also matches names resolving into these networks; egressd admits those "
                    "names only with an allow line of their own");
  } else if (r.dom_pos.empty()) {
    out.push_back({output_line::kind_t::allow, "allow ~.*" + opts + methods + (group.empty() ? "" : " group=" + group)});
    notes.push_back("it names no destination, so every destination name is allowed");
    warn(l, "'" + shown + "' allows every destination name");
  } else {
    const squid_acl& a = *r.dom_pos[0];
    auto allow = [&](const std::string& p) {
      out.push_back({output_line::kind_t::allow, "allow " + p + opts + methods + (group.empty() ? "" : " group=" + group)});
    };
    for (const auto& v : a.domains) {
      auto c = convert_dstdomain(v.value);
      if (!c.pattern.empty()) {
        allow(c.pattern);
      } else if (c.ip) {
        add_net({*acl::parse_cidr(host_net(*c.ip))}, "IP literal " + v.value);
      } else {
        notes.push_back("'" + v.value + "' (" + v.where + ") left out: " + c.why);
        warn(l, "'" + v.value + "' (" + v.where + ") left out: " + c.why);
      }
    }
    for (const auto& re : a.regexes) {
      auto c = convert_dstdom_regex(re.text, re.icase);
      if (c.pattern.empty()) {
        notes.push_back("regex '" + re.text + "' (" + re.where + ") left out: " + c.why);
        warn(l, "regex '" + re.text + "' (" + re.where + ") left out: " + c.why);
        continue;
      }
      if (!c.note.empty()) notes.push_back("regex '" + re.text + "': " + c.note);
      allow(c.pattern);
    }
  }
  for (const auto& n : pp.notes) notes.push_back(n);
  comment("# squid: " + shown, l.text);
  for (const auto& n : notes)  // port notes are not repeated rule after rule
    if (std::find(last_port_notes_.begin(), last_port_notes_.end(), n) == last_port_notes_.end())
      comment("#   " + n, l.text);
  last_port_notes_ = pp.notes;
  for (const auto& d : denies) emit(output_line::kind_t::deny, "deny " + d, l.text);
  for (const auto& [k, text] : out) emit(k, text, l.text);
  if (out.empty()) comment("#   (nothing of it could be translated)", l.text);
}

void squid_access_translator::translate_deny(const squid_line& l, const std::vector<literal>& lits) {
  const std::string& shown = l.text;
  for (const auto& lit : lits) {
    if (lit.acl->kind == squid_acl_kind::all && lit.negated)
      return untranslated(l, shown, "it never matches (!all)", false);
    if (lit.acl->kind == squid_acl_kind::manager && !lit.negated)
      return untranslated(l, shown, "egressd has no cache manager (see the admin directive)", false);
  }
  for (const auto& lit : lits) {
    const auto& a = *lit.acl;
    if (a.kind == squid_acl_kind::dst && !lit.negated && all_non_public(a.nets) && !nets_overlap(a.nets, allowed_nets_)) {
      refused_nets_.insert(refused_nets_.end(), a.nets.begin(), a.nets.end());
      comment("# squid: " + shown, l.text);
      comment("#   egressd refuses these destinations by itself (non-public addresses need allow_net)", l.text);
      return;
    }
  }
  // Over-approximate: drop what egressd cannot test (the deny then matches
  // more, which only narrows access).
  std::vector<literal> kept;
  std::vector<std::string> dropped;
  for (const auto& lit : lits) {
    const auto& a = *lit.acl;
    if (a.kind == squid_acl_kind::all || a.kind == squid_acl_kind::manager) continue;
    if (a.kind == squid_acl_kind::unsupported)
      dropped.push_back("acl " + a.name + " (" + a.why + ")");
    else if (a.kind == squid_acl_kind::dst)
      dropped.push_back("acl " + a.name + " (egressd cannot deny by destination address)");
    else
      kept.push_back(lit);
  }
  auto narrowed = [&](std::vector<std::string> notes) {
    comment("# squid: " + shown, l.text);
    if (!dropped.empty()) {
      notes.push_back("narrowed: applied regardless of " + join(dropped, ", "));
      warn(l, "'" + shown + "' narrowed: applied regardless of " + join(dropped, ", "));
    }
    for (const auto& n : notes) comment("#   " + n, l.text);
  };
  // Destination names: deny lines.
  for (size_t i = 0; i < kept.size(); ++i) {
    const auto& a = *kept[i].acl;
    if (a.kind != squid_acl_kind::domain || kept[i].negated) continue;
    std::vector<std::string> pats, notes;
    std::string bad;
    for (const auto& v : a.domains) {
      auto c = convert_dstdomain(v.value);
      if (!c.pattern.empty()) pats.push_back(c.pattern);
      else if (c.ip) refused_nets_.push_back(*acl::parse_cidr(host_net(*c.ip)));
      else notes.push_back("'" + v.value + "' needs no deny line: " + c.why);
    }
    for (const auto& re : a.regexes) {
      auto c = convert_dstdom_regex(re.text, re.icase);
      if (c.pattern.empty() && bad.empty()) bad = "regex '" + re.text + "' is " + c.why;
      pats.push_back(c.pattern);
    }
    if (!bad.empty()) {
      dropped.push_back("acl " + a.name + " (" + bad + ")");
      continue;
    }
    for (size_t j = 0; j < kept.size(); ++j)
      if (j != i) dropped.push_back("acl " + kept[j].acl->name);
    if (allow_lines_ > 0) notes.push_back("egressd's deny lines also override the allow lines above");
    narrowed(notes);
    for (const auto& p : pats) emit(output_line::kind_t::deny, "deny " + p, l.text);
    return;
  }
  kept.erase(std::remove_if(kept.begin(), kept.end(),
                            [](const literal& x) { return x.acl->kind == squid_acl_kind::domain && !x.negated; }),
             kept.end());
  if (kept.empty()) {
    base_.never = true;
    base_.never_why = "an earlier rule (" + l.file + ":" + std::to_string(l.line) + ") denies everything";
    narrowed({dropped.empty() ? "egressd denies everything that no allow line admits"
                              : "approximated as denying every request: the allow rules below are left out"});
    return;
  }
  // `deny CONNECT !SSL_ports`: ports per method.
  if (kept.size() == 2) {
    const literal* m = nullptr;
    const literal* p = nullptr;
    for (const auto& k : kept) {
      if (k.acl->kind == squid_acl_kind::method && !k.negated) m = &k;
      if (k.acl->kind == squid_acl_kind::port) p = &k;
    }
    if (m && p) {
      bool connect = std::find(m->acl->methods.begin(), m->acl->methods.end(), "CONNECT") != m->acl->methods.end();
      bool plain = m->acl->methods.size() > (connect ? 1u : 0u);
      std::vector<std::string> notes;
      std::string what = (p->negated ? "only to ports " : "never to ports ") + p->acl->ports.str();
      if (connect) {
        base_.restrict_ports(true, p->acl->ports, p->negated);
        notes.push_back("applied to the allow rules below: CONNECT " + what);
      }
      if (plain) {
        base_.restrict_ports(false, p->acl->ports, p->negated);
        notes.push_back("applied to the allow rules below: plain HTTP (any method: egressd cannot tell "
                        "ports apart per method) " + what);
        if (!connect) warn(l, "'" + shown + "' narrowed to every plain-HTTP method");
      }
      return narrowed(notes);
    }
  }
  // One literal carried into the later allow rules; the others dropped.
  auto rank = [](const literal& x) {
    switch (x.acl->kind) {
      case squid_acl_kind::domain: return 0;
      case squid_acl_kind::src: return x.negated ? 1 : 4;
      case squid_acl_kind::port: return 2;
      default: return 3;
    }
  };
  auto best = std::min_element(kept.begin(), kept.end(),
                               [&](const literal& a, const literal& b) { return rank(a) < rank(b); });
  for (const auto& k : kept)
    if (&k != &*best) dropped.push_back("acl " + k.acl->name);
  base_.apply(*best->acl, !best->negated);
  narrowed({"applied to the allow rules below: " + what_carried(*best->acl, best->negated)});
}

std::vector<output_line> squid_access_translator::group_lines() const {
  std::vector<output_line> v;
  for (const auto* a : groups_)
    v.push_back({"group " + group_names_.at(a->name) + " " + nets_str(a->nets), output_line::kind_t::group,
                 "acl " + a->name + " src (" + a->first_where + ")"});
  return v;
}

}  // namespace egressd::tools
