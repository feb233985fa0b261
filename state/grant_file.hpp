#pragma once
// `state FILE`: the grants on disk, as one JSON document
// {"version": 1, "grants": [...]}. Control path only (blocking file I/O:
// never call from a worker).

#include <string>
#include <vector>

#include "state/grant.hpp"

namespace egressd::state {

// Reads FILE. A missing file is an empty set (true); an unreadable or
// corrupt one is false with *error = "FILE: what is wrong". Grants already
// expired at `now` are dropped.
bool read_grant_file(const std::string& path, clock::time_point now, std::vector<grant>* out, std::string* error);

// Replaces FILE atomically: a temporary file in the same directory (mode
// 0600), written, fsync'd, renamed over FILE, then the directory fsync'd, so
// a crash leaves either the old or the new set, never a torn file.
// false and *error = "FILE: what failed" (the old file is untouched then).
bool write_grant_file(const std::string& path, const std::vector<grant>& grants, std::string* error);

}  // namespace egressd::state
