#include "tools/squid_region.hpp"

#include <algorithm>

namespace egressd::tools {

namespace {

void add_unique(std::vector<const squid_acl*>& v, const squid_acl* a) {
  if (std::find(v.begin(), v.end(), a) == v.end()) v.push_back(a);
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

const std::vector<std::string>& standard_http_methods() {
  static const std::vector<std::string> m{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"};
  return m;
}

void squid_region::restrict_ports(bool connect, const port_set& ports, bool keep) {
  port_set& p = connect ? connect_ports : http_ports;
  p = keep ? p.intersect(ports) : p.subtract(ports);
}

void squid_region::apply(const squid_acl& a, bool negated) {
  switch (a.kind) {
    case squid_acl_kind::all:
      if (negated) {
        never = true;
        never_why = "it names !all";
      }
      return;
    case squid_acl_kind::manager:
      if (!negated) {
        never = true;
        never_why = "it concerns Squid's cache manager only";
      }
      return;
    case squid_acl_kind::unsupported:
      if (unsupported.empty())
        unsupported = "acl " + a.name + " (" + a.type + "): " + a.why;
      return;
    case squid_acl_kind::src:
      add_unique(negated ? src_neg : src_pos, &a);
      return;
    case squid_acl_kind::dst:
      add_unique(negated ? dst_neg : dst_pos, &a);
      return;
    case squid_acl_kind::domain:
      add_unique(negated ? dom_neg : dom_pos, &a);
      return;
    case squid_acl_kind::port:
      restrict_ports(true, a.ports, !negated);
      restrict_ports(false, a.ports, !negated);
      return;
    case squid_acl_kind::method: {
      bool connect = has(a.methods, "CONNECT");
      std::vector<std::string> plain;
      for (const auto& m : a.methods)
        if (m != "CONNECT") plain.push_back(m);
      if (!negated) {
        if (!connect) connect_ports = port_set{};
        std::vector<std::string> kept;
        for (const auto& m : plain)
          if (!methods || has(*methods, m)) kept.push_back(m);
        methods = std::move(kept);
      } else {
        if (connect) connect_ports = port_set{};
        if (!plain.empty()) {
          std::vector<std::string> kept;
          for (const auto& m : methods ? *methods : standard_http_methods())
            if (!has(plain, m)) kept.push_back(m);
          methods = std::move(kept);
        }
      }
      if (methods) std::sort(methods->begin(), methods->end());
      if (methods && methods->empty()) http_ports = port_set{};
      return;
    }
  }
}

}  // namespace egressd::tools
