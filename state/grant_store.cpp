// The grant set's owner (see grant_store.hpp).

#include "state/grant_store.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "state/grant_file.hpp"

namespace egressd::state {

grant_store::grant_store(std::string path) : path_(std::move(path)), view_(grant_view::build({})) {}

bool grant_store::load(clock::time_point now, std::string* error) {
  std::vector<grant> loaded;
  if (!path_.empty() && !read_grant_file(path_, now, &loaded, error)) return false;
  grants_ = std::move(loaded);
  std::stable_sort(grants_.begin(), grants_.end(), [](const grant& a, const grant& b) { return a.created < b.created; });
  publish();
  return true;
}

void grant_store::set_publisher(publisher p) {
  publish_ = std::move(p);
  if (publish_) publish_(view_);
}

void grant_store::publish() {
  view_ = grant_view::build(grants_);
  if (publish_) publish_(view_);
}

bool grant_store::save(std::string* error) const {
  if (path_.empty()) return true;
  return write_grant_file(path_, grants_, error);
}

grant_store::result grant_store::add(grant& g, clock::time_point now, std::string* error) {
  if (shared_.put) return add_shared(g, now, error);
  // Expired ones do not count against the bound.
  std::erase_if(grants_, [&](const grant& x) { return x.expires <= now; });
  if (grants_.size() >= max_grants) {
    *error = fmt::format("too many grants in force ({}); revoke some or let them expire", max_grants);
    return result::full;
  }
  for (int attempt = 0; g.id.empty() || std::any_of(grants_.begin(), grants_.end(),
                                                     [&](const grant& x) { return x.id == g.id; });
       ++attempt) {
    if (attempt == 8) {
      *error = "could not draw a random grant id";
      return result::not_saved;
    }
    g.id = random_grant_id();
  }
  grants_.push_back(g);
  std::string why;
  if (!save(&why)) {
    grants_.pop_back();
    *error = "the grant was not added: " + why;
    return result::not_saved;
  }
  publish();
  return result::ok;
}

grant_store::result grant_store::remove(std::string_view id, clock::time_point now, std::string* error) {
  if (shared_.erase) return remove_shared(id, now, error);
  auto it = std::find_if(grants_.begin(), grants_.end(), [&](const grant& x) { return x.id == id; });
  if (it == grants_.end() || it->expires <= now) {
    *error = fmt::format("no grant with id '{}'", valid_grant_id(id) ? id : "...");
    return result::unknown;
  }
  grants_.erase(it);
  std::erase_if(grants_, [&](const grant& x) { return x.expires <= now; });
  publish();
  std::string why;
  if (!save(&why)) {
    *error = "revoked, but the state file was not updated (the grant would come back after a restart): " + why;
    return result::not_saved;
  }
  return result::ok;
}

bool grant_store::sweep(clock::time_point now, std::string* error) {
  const size_t before = grants_.size();
  std::erase_if(grants_, [&](const grant& x) { return x.expires <= now; });
  if (grants_.size() == before) return false;
  publish();
  std::string why;
  if (!save(&why) && error) *error = why;
  return true;
}

std::vector<grant> grant_store::live(clock::time_point now) const {
  std::vector<grant> out;
  for (const auto& g : grants_)
    if (g.expires > now) out.push_back(g);
  return out;
}

namespace {
constexpr const char* unreachable = "the shared state (Redis) is unreachable: grants cannot be changed now";
}

grant_store::result grant_store::add_shared(grant& g, clock::time_point now, std::string* error) {
  std::erase_if(grants_, [&](const grant& x) { return x.expires <= now; });
  for (int attempt = 0; attempt < 8; ++attempt) {
    g.id = random_grant_id();
    const int64_t v = shared_.put(g, max_grants);
    if (v == -3) continue;  // id taken in the fleet: draw another
    if (v == -1) {
      *error = unreachable;
      return result::unavailable;
    }
    if (v == -2 || v <= 0) {
      *error = fmt::format("too many grants in force ({}); revoke some or let them expire", max_grants);
      return result::full;
    }
    shared_version_ = std::max(shared_version_, v);
    std::erase_if(grants_, [&](const grant& x) { return x.id == g.id; });
    grants_.push_back(g);
    publish();
    return result::ok;
  }
  *error = "could not draw a random grant id";
  return result::not_saved;
}

grant_store::result grant_store::remove_shared(std::string_view id, clock::time_point now, std::string* error) {
  if (!valid_grant_id(id)) {
    *error = "no grant with id '...'";
    return result::unknown;
  }
  const int64_t v = shared_.erase(std::string(id));
  if (v == -1) {
    *error = unreachable;
    return result::unavailable;
  }
  if (v <= 0) {
    *error = fmt::format("no grant with id '{}'", id);
    return result::unknown;
  }
  shared_version_ = std::max(shared_version_, v);
  std::erase_if(grants_, [&](const grant& x) { return x.id == id || x.expires <= now; });
  publish();
  return result::ok;
}

void grant_store::replace_all(int64_t version, std::vector<grant> set, bool restart, clock::time_point now) {
  if (version < shared_version_ && !restart) return;  // older than a change made here
  shared_version_ = version;
  std::erase_if(set, [&](const grant& x) { return x.expires <= now; });
  std::stable_sort(set.begin(), set.end(), [](const grant& a, const grant& b) { return a.created < b.created; });
  if (set.size() > max_grants) set.resize(max_grants);  // written past the bound by someone else: the oldest
  grants_ = std::move(set);
  publish();
}

}  // namespace egressd::state
