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

}  // namespace egressd::state
