#pragma once
// The control side of grants: owns the mutable set, persists it (`state
// FILE`) and publishes an immutable grant_view after every change. Not
// thread-safe: after start-up it is used from one thread only (the admin
// endpoint's), and the only thing that crosses threads is the published
// view (shared_ptr<const grant_view>, handed to the publish callback, which
// posts it to every worker).

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

  bool persisted() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  enum class result { ok, unknown, full, not_saved };
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
  void publish();

  std::string path_;
  std::vector<grant> grants_;  // oldest first
  std::shared_ptr<const grant_view> view_;
  publisher publish_;
};

}  // namespace egressd::state
