#pragma once
// The control side of grants: owns the mutable set, persists it (`state
// FILE`) and publishes an immutable grant_view after every change. Not
// thread-safe: after start-up it is used from one thread only (the admin
// endpoint's), and the only thing that crosses threads is the published
// view (shared_ptr<const grant_view>, handed to the publish callback, which
// posts it to every worker).
//
// With a shared backend (`state redis://`) Redis holds the set: add/remove
// change it there first (unavailable, and nothing changed, while it cannot
// be reached) and replace_all() installs the set read back from it; between
// the two, versions keep a stale read from undoing a newer change.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "state/grant.hpp"
#include "state/grant_view.hpp"

namespace egressd::state {

class grant_store {
 public:
  using publisher = std::function<void(std::shared_ptr<const grant_view>)>;
  // More live grants than this is refused (409): the view stays small.
  static constexpr size_t max_grants = 10000;

  // path: the `state FILE` (resolved), empty = memory only.
  explicit grant_store(std::string path = {});

  // Start-up: reads the file (missing = empty, expired grants dropped).
  // false with *error = "FILE: what is wrong" for an unreadable or corrupt one.
  bool load(clock::time_point now, std::string* error);
  // Called with the current view now and after every change.
  void set_publisher(publisher p);

  // The shared set (Redis). Versions are those of the shared set, > 0 after
  // a change; put: -1 unreachable, -2 full, -3 id taken; erase: -1
  // unreachable, 0 no such live grant.
  struct shared_backend {
    std::function<int64_t(const grant&, size_t max_live)> put;
    std::function<int64_t(const std::string& id)> erase;
  };
  void set_shared(shared_backend b) { shared_ = std::move(b); }
  // The set as the shared backend holds it at `version`; ignored when older
  // than a change made here already, unless `restart` (a new connection:
  // Redis may have started over).
  void replace_all(int64_t version, std::vector<grant> set, bool restart, clock::time_point now);

  bool persisted() const { return !path_.empty() || shared_.put != nullptr; }
  const std::string& path() const { return path_; }

  enum class result { ok, unknown, full, not_saved, unavailable };
  // Names the grant (a fresh random id) and adds it, written to the file
  // first: not_saved (and nothing added) when the file cannot be written;
  // full past max_grants. *error says what went wrong.
  result add(grant& g, clock::time_point now, std::string* error);
  // unknown when no live grant has that id. The grant is gone from memory
  // (and from decisions) even when the file could not be written
  // (not_saved): a revocation must never fail open.
  result remove(std::string_view id, clock::time_point now, std::string* error);
  // Drops expired grants; true when something was dropped (and republished).
  // A failed write is reported in *error, the set changes anyway.
  bool sweep(clock::time_point now, std::string* error);

  std::vector<grant> live(clock::time_point now) const;  // oldest first
  size_t size() const { return grants_.size(); }
  std::shared_ptr<const grant_view> view() const { return view_; }

 private:
  bool save(std::string* error) const;
  result add_shared(grant& g, clock::time_point now, std::string* error);
  result remove_shared(std::string_view id, clock::time_point now, std::string* error);
  void publish();

  std::string path_;
  std::vector<grant> grants_;  // oldest first
  shared_backend shared_;
  int64_t shared_version_ = 0;  // the newest version of the shared set known here
  std::shared_ptr<const grant_view> view_;
  publisher publish_;
};

}  // namespace egressd::state
