#pragma once
// `reload auto`: notices that the configuration on disk is no longer the one
// loaded. Owned and driven by the main (control) thread only; no worker ever
// sees it. inotify watches the *directories* along every file's symlink chain
// (not the files), so an editor's write-temp-and-rename, an in-place write and
// a Kubernetes ConfigMap's `..data` symlink swap all raise an event; the
// decision to reload is then taken by comparing content hashes (and include
// glob matches) with what the last load parsed, so directory noise (the
// access log next to the config, editor swap files) never reloads.
//
// Use: poll fd() for POLLIN, call drain(); when events stopped for the
// debounce time call changed(); after every load (ok or not) call track()
// with what it read.

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace egressd::proxy {

class config_watch {
 public:
  config_watch();
  ~config_watch();
  config_watch(const config_watch&) = delete;
  config_watch& operator=(const config_watch&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // What the last load read: `main` (always watched, even when unreadable),
  // the load's sources and include globs, and any further files the snapshot
  // lists (files read by directives, not by the loader). Re-arms the watches.
  void track(const std::string& main, const config::load_result& r, const std::vector<std::string>& extra);
  // Reads every pending event; true when at least one arrived.
  bool drain();
  // Does the disk differ from what was tracked? Also re-arms the watches (a
  // swapped ConfigMap directory is a new inode to watch).
  bool changed();

 private:
  struct tracked {
    std::string path;
    size_t hash = 0;
    bool missing = false;
  };
  static tracked probe(const std::string& path);
  void arm();
  void watch_dir(const std::string& dir, std::map<std::string, int>& next);

  int fd_ = -1;
  std::vector<tracked> files_;
  std::vector<std::pair<std::string, std::vector<std::string>>> globs_;
  std::map<std::string, int> dirs_;  // real path of a watched directory -> watch descriptor
};

}  // namespace egressd::proxy
