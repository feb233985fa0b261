// Built instead of redis_state.cpp, redis_feeds.cpp and redis_link.cpp when CMake finds no
// hiredis (libhiredis-dev): `state redis://` is then refused by the config
// parser ("not supported yet by this build"), and this is never reached.
#include "state/redis_link.hpp"
#include "state/redis_state.hpp"

namespace egressd::state {

redis_link::~redis_link() = default;

std::unique_ptr<redis_state> redis_state::start(const config::state_spec&, monitor::metrics&, hooks,
                                                std::string* error) {
  *error = "this build has no Redis client for state redis:// (install libhiredis-dev and rebuild)";
  return nullptr;
}

redis_state::~redis_state() = default;

std::shared_ptr<rate_lease> redis_state::lease(const std::string& key, double per_second, uint32_t burst) {
  return std::make_shared<rate_lease>(key, per_second, burst);
}

std::shared_ptr<rate_lease_table> redis_state::lease_table(const std::string& key, double per_second,
                                                           uint32_t burst, size_t max_clients) {
  return std::make_shared<rate_lease_table>(key, per_second, burst, max_clients);
}

void redis_state::set_hooks(hooks) {}
void redis_state::set_grant_sink(grant_sink) {}
int64_t redis_state::put_grant(const grant&, size_t) { return -1; }
int64_t redis_state::erase_grant(const std::string&) { return -1; }
void redis_state::set_denial_source(std::function<std::vector<denial_feed::group>()>) {}
std::optional<std::vector<denial_feed::group>> redis_state::read_denials(std::optional<denial_feed::clock::time_point>) {
  return std::nullopt;
}

}  // namespace egressd::state
