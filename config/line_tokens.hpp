#pragma once
// Splits one config line into its directive, positional words and key=value
// options. Owned by one loader (not thread-safe); the views point into the
// line given to split() and the storage is reused line after line, so the
// hot path allocates nothing once warmed up.

#include <string_view>
#include <vector>

namespace egressd::config {

struct option {
  std::string_view key;    // without '='
  std::string_view value;  // may be empty ("ports=")
};

class line_tokens {
 public:
  // `line` has no newline. Strips a comment (a word starting with '#' and
  // the rest of the line) and a trailing '\r'.
  // A word is an option when it starts with a key character
  // ([A-Za-z0-9_-]) run followed by '='; `~regex` and paths never are.
  void split(std::string_view line);

  bool empty() const { return directive_.empty(); }
  std::string_view directive() const { return directive_; }
  const std::vector<std::string_view>& args() const { return args_; }
  const std::vector<option>& options() const { return options_; }
  // First byte that is a control character (other than tab), or -1.
  int bad_char() const { return bad_char_; }

 private:
  std::string_view directive_;
  std::vector<std::string_view> args_;
  std::vector<option> options_;
  int bad_char_ = -1;
};

}  // namespace egressd::config
