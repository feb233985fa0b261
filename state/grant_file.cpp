// Grant persistence (see grant_file.hpp).

#include "state/grant_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "config/text_file.hpp"

namespace egressd::state {
namespace {

constexpr size_t max_file_bytes = 64u << 20;

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool read_grant_file(const std::string& path, clock::time_point now, std::vector<grant>* out, std::string* error) {
  out->clear();
  std::string text, why;
  int e = 0;
  if (!config::read_text_file(path, &text, &why, max_file_bytes, &e)) {
    if (e == ENOENT) return true;  // created on the first write
    *error = e == EFBIG ? fmt::format("{}: the state file is larger than 64M (not a grant file?)", path)
                        : fmt::format("{}: cannot read the state file: {}", path, why);
    return false;
  }

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    *error = fmt::format("{}: not valid JSON (at byte {}); fix or remove the state file", path, e.byte);
    return false;
  } catch (const nlohmann::json::exception&) {
    *error = fmt::format("{}: not valid JSON (a number out of range); fix or remove the state file", path);
    return false;
  }
  auto version = j.is_object() ? j.find("version") : j.end();
  auto list = j.is_object() ? j.find("grants") : j.end();
  if (!j.is_object() || version == j.end() || *version != 1 || list == j.end() || !list->is_array()) {
    *error = fmt::format("{}: not an egressd state file (expected {{\"version\": 1, \"grants\": [...]}})", path);
    return false;
  }
  std::set<std::string> ids;
  for (const auto& e : *list) {
    std::string why;
    auto g = grant_from_file_json(e, &why);
    if (!g) {
      *error = fmt::format("{}: {}", path, why);
      return false;
    }
    if (!ids.insert(g->id).second) {
      *error = fmt::format("{}: grant {} appears twice", path, g->id);
      return false;
    }
    if (g->expires > now) out->push_back(std::move(*g));
  }
  return true;
}

bool write_grant_file(const std::string& path, const std::vector<grant>& grants, std::string* error) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& g : grants) list.push_back(to_file_json(g));
  const std::string text = nlohmann::ordered_json{{"version", 1}, {"grants", std::move(list)}}.dump(1) + "\n";

  std::string tmp = path + ".tmpXXXXXX";
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    *error = fmt::format("{}: cannot create a temporary file next to it: {}", path, std::strerror(errno));
    return false;
  }
  auto fail = [&](const char* what) {
    *error = fmt::format("{}: {}: {}", path, what, std::strerror(errno));
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  };
  if (::fchmod(fd, 0600) != 0) return fail("cannot set mode 0600");
  if (!write_all(fd, text)) return fail("cannot write");
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    *error = fmt::format("{}: cannot write: {}", path, std::strerror(errno));
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = fmt::format("{}: cannot rename the temporary file over it: {}", path, std::strerror(errno));
    ::unlink(tmp.c_str());
    return false;
  }
  const int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    if (rc != 0) {
      *error = fmt::format("{}: written, but its directory could not be fsync'd: {}", path, std::strerror(e));
      return false;
    }
  }
  return true;
}

}  // namespace egressd::state
