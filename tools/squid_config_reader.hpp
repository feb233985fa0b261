#pragma once
// Reads a squid.conf into logical lines of words: comments and blank lines
// dropped, `\` continuations joined, `include GLOB` followed (relative to the
// including file, at most 16 deep), quoted words ("/path/file") marked.
// Squid's conditionals (if/else/endif) are refused: translating both branches
// could widen access. One reader per import, used by one thread; control
// path only (blocking file reads).

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace egressd::tools {

struct squid_word {
  std::string text;     // without the quotes
  bool quoted = false;  // "..." : a file whose lines are the values (acl)
};

struct squid_line {
  std::string file;
  int line = 0;
  std::string dir;                // directory of `file`, for relative paths
  std::string text;               // the logical line, whitespace-normalised
  std::vector<squid_word> words;  // words[0] is the directive
};

class squid_config_reader {
 public:
  // file_access=false (fuzzing): never touch the file system; `include`
  // lines are errors.
  explicit squid_config_reader(bool file_access = true) : file_access_(file_access) {}

  // False if the file cannot be read (the error is in errors()).
  bool read_file(const std::string& path);
  void read_string(std::string_view text, const std::string& name, const std::string& dir);

  const std::vector<squid_line>& lines() const { return lines_; }
  const std::vector<config::diagnostic>& errors() const { return errors_; }

  // Splits one physical line into words (exposed for acl value files).
  // A word starting with '#' ends the line. Returns false on an unterminated
  // quote (*words holds what came before it).
  static bool split_words(std::string_view line, std::vector<squid_word>* words);

 private:
  void parse(std::string_view text, const std::string& file, const std::string& dir, int depth);
  void include(const squid_line& l, int depth);
  void error(const std::string& file, int line, std::string message);

  bool file_access_;
  std::vector<squid_line> lines_;
  std::vector<config::diagnostic> errors_;
  std::vector<std::string> stack_;  // canonical paths being read (cycle check)
};

}  // namespace egressd::tools
