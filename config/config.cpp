// Entry points and the small members of the config types.
#include "config/config.hpp"

#include <algorithm>
#include <exception>

#include "config/loader.hpp"

namespace egressd::config {

const char* to_string(listen_mode m) {
  switch (m) {
    case listen_mode::proxy: return "proxy";
    case listen_mode::sni: return "sni";
    case listen_mode::http: return "http";
  }
  return "?";
}

std::string endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool snapshot::is_tls_port(uint16_t p) const {
  return std::find(tls_ports.begin(), tls_ports.end(), p) != tls_ports.end();
}

std::string diagnostic::str() const {
  if (line > 0) return file + ":" + std::to_string(line) + ": " + message;
  return file + ": " + message;
}

// Exceptions (allocation failure, RE2 internals) never escape a load: they
// become one diagnostic about the file as a whole.
template <typename F>
static load_result guarded(const std::string& name, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return {nullptr, {diagnostic{name, 0, std::string("internal error while loading: ") + e.what()}}, {}, {}};
  } catch (...) {
    return {nullptr, {diagnostic{name, 0, "internal error while loading"}}, {}, {}};
  }
}

load_result load_file(const std::string& path, const load_options& opts) {
  return guarded(path, [&] { return loader(opts).load_file(path); });
}

load_result load_string(std::string_view text, const std::string& name, const load_options& opts) {
  return guarded(name, [&] { return loader(opts).load_string(text, name); });
}

}  // namespace egressd::config
