#include "config/line_tokens.hpp"

#include <cstring>

namespace egressd::config {

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

static bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

void line_tokens::split(std::string_view line) {
  directive_ = {};
  args_.clear();
  options_.clear();
  bad_char_ = -1;

  // '#' starts a comment at the start of a word (as in the shell), so a '#'
  // inside a word (a regex) is never silently cut off: a stray one makes the
  // word invalid instead.
  for (const char* p = line.data(); p != nullptr;) {
    p = static_cast<const char*>(std::memchr(p, '#', size_t(line.data() + line.size() - p)));
    if (!p) break;
    if (p == line.data() || is_space(p[-1])) {
      line = line.substr(0, size_t(p - line.data()));
      break;
    }
    ++p;
  }

  size_t i = 0;
  const size_t n = line.size();
  bool first = true;
  while (i < n) {
    while (i < n && is_space(line[i])) ++i;
    if (i == n) break;
    size_t start = i;
    while (i < n && !is_space(line[i])) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      if ((c < 0x20 || c == 0x7f) && bad_char_ < 0) bad_char_ = c;
      ++i;
    }
    std::string_view word = line.substr(start, i - start);
    if (first) {
      directive_ = word;
      first = false;
      continue;
    }
    size_t k = 0;
    while (k < word.size() && is_key_char(word[k])) ++k;
    if (k > 0 && k < word.size() && word[k] == '=')
      options_.push_back({word.substr(0, k), word.substr(k + 1)});
    else
      args_.push_back(word);
  }
}

}  // namespace egressd::config
