#pragma once
// Helpers shared by the config unit tests (header-only, test code only).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.hpp"

namespace egressd::config::testing {

// Parses `text` as "t.conf" with unsupported features allowed (the parser
// is tested, not the build's feature table). A listen line is appended at
// the end so the text's own line numbers stay as written.
inline load_result parse(const std::string& text, bool allow_unsupported = true) {
  load_options o;
  o.allow_unsupported = allow_unsupported;
  o.file_access = false;
  return load_string(text + "\nlisten 127.0.0.9:1\n", "t.conf", o);
}

inline std::vector<std::string> errors(const load_result& r) {
  std::vector<std::string> out;
  for (const auto& d : r.errors) out.push_back(d.str());
  return out;
}

// The snapshot of a config that must load.
inline std::shared_ptr<const snapshot> ok(const std::string& text) {
  auto r = parse(text);
  EXPECT_THAT(errors(r), ::testing::IsEmpty()) << text;
  EXPECT_TRUE(r.snap) << text;
  return r.snap;
}

// The single error of a config that must fail.
inline std::string one_error(const std::string& text) {
  auto r = parse(text);
  EXPECT_FALSE(r.snap) << text;
  EXPECT_EQ(r.errors.size(), 1u) << text << "\n" << ::testing::PrintToString(errors(r));
  return r.errors.empty() ? std::string() : r.errors.front().str();
}

}  // namespace egressd::config::testing
