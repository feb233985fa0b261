#include "proxy/config_watch.hpp"

#include <glob.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <functional>
#include <string_view>

#include "config/text_file.hpp"

namespace egressd::proxy {
namespace {

// Everything that can replace or rewrite a file in a directory. IN_MODIFY is
// left out on purpose: a writer's close (IN_CLOSE_WRITE) marks the end of an
// in-place edit, and the access log in the same directory modifies often.
constexpr uint32_t dir_events = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

std::string dir_of(const std::string& p) {
  const auto slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

std::vector<std::string> glob_matches(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) out.assign(g.gl_pathv, g.gl_pathv + g.gl_pathc);
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

config_watch::config_watch() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}

config_watch::~config_watch() {
  if (fd_ >= 0) ::close(fd_);
}

config_watch::tracked config_watch::probe(const std::string& path) {
  std::string text, err;
  if (!config::read_text_file(path, &text, &err)) return {path, 0, true};
  return {path, std::hash<std::string_view>{}(text), false};
}

void config_watch::track(const std::string& main, const config::load_result& r,
                         const std::vector<std::string>& extra) {
  files_.clear();
  auto known = [this](const std::string& p) {
    return std::any_of(files_.begin(), files_.end(), [&](const tracked& t) { return t.path == p; });
  };
  for (const auto& s : r.sources)
    if (!known(s.path)) files_.push_back({s.path, s.hash, s.missing});
  // A file read by a directive rather than the loader: hashed now (an edit
  // between its load and this call is seen at the next event, not lost for
  // good, since every later event compares again).
  for (const auto& p : extra)
    if (!known(p)) files_.push_back(probe(p));
  if (!known(main)) files_.push_back(probe(main));
  globs_ = r.globs;
  arm();
}

void config_watch::watch_dir(const std::string& dir, std::map<std::string, int>& next) {
  char real[PATH_MAX];
  if (!::realpath(dir.c_str(), real)) return;  // gone: its parent's watch sees it come back
  if (next.count(real)) return;
  const int wd = ::inotify_add_watch(fd_, real, dir_events);  // the same wd when already watched
  if (wd >= 0) next.emplace(real, wd);
}

void config_watch::arm() {
  if (fd_ < 0) return;
  std::map<std::string, int> next;
  auto follow = [&](std::string p) {
    // The directory of each link in the chain: the ConfigMap layout is
    // FILE -> ..data/FILE and ..data -> ..TIMESTAMP, swapped by a rename in
    // FILE's directory; the target's directory sees in-place edits.
    for (int hops = 0; hops < 16; ++hops) {
      watch_dir(dir_of(p), next);
      char buf[PATH_MAX];
      const ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
      if (n <= 0) break;
      std::string target(buf, size_t(n));
      p = target.front() == '/' ? target : dir_of(p) + "/" + target;
    }
  };
  for (const auto& f : files_) follow(f.path);
  for (const auto& [pattern, matches] : globs_) {
    const std::string d = dir_of(pattern);
    if (d.find_first_of("*?[") == std::string::npos) follow(pattern);
    for (const auto& m : matches) follow(m);
  }
  for (const auto& [path, wd] : dirs_) {
    const bool kept = std::any_of(next.begin(), next.end(), [wd = wd](const auto& e) { return e.second == wd; });
    if (!kept) ::inotify_rm_watch(fd_, wd);
  }
  dirs_ = std::move(next);
}

bool config_watch::drain() {
  bool any = false;
  alignas(struct inotify_event) char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      any = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return any;  // EAGAIN: drained
  }
}

bool config_watch::changed() {
  bool diff = false;
  for (const auto& f : files_) {
    const tracked now = probe(f.path);
    if (now.missing != f.missing || now.hash != f.hash) {
      diff = true;
      break;
    }
  }
  if (!diff) {
    for (const auto& [pattern, matches] : globs_) {
      if (glob_matches(pattern) != matches) {
        diff = true;
        break;
      }
    }
  }
  arm();
  return diff;
}

}  // namespace egressd::proxy
