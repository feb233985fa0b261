#include "tools/squid_config_reader.hpp"

#include <glob.h>

#include <filesystem>

#include "config/text_file.hpp"

namespace egressd::tools {

namespace {

constexpr int max_include_depth = 16;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string dir_of(const std::string& path) {
  auto p = std::filesystem::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

std::string resolve(const std::string& dir, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  return dir + "/" + path;
}

}  // namespace

bool squid_config_reader::split_words(std::string_view line, std::vector<squid_word>* words) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i >= line.size() || line[i] == '#') break;
    squid_word w;
    if (line[i] == '"') {
      auto close = line.find('"', i + 1);
      if (close == line.npos) return false;
      w.text = std::string(line.substr(i + 1, close - i - 1));
      w.quoted = true;
      i = close + 1;
    } else {
      size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      w.text = std::string(line.substr(start, i - start));
    }
    words->push_back(std::move(w));
  }
  return true;
}

void squid_config_reader::error(const std::string& file, int line, std::string message) {
  errors_.push_back({file, line, std::move(message)});
}

bool squid_config_reader::read_file(const std::string& path) {
  std::string text, err;
  if (!config::read_text_file(path, &text, &err)) {
    error(path, 0, "cannot read " + path + ": " + err);
    return false;
  }
  std::error_code ec;
  auto canon = std::filesystem::weakly_canonical(path, ec);
  stack_.push_back(ec ? path : canon.string());
  parse(text, path, dir_of(path), 0);
  stack_.pop_back();
  return true;
}

void squid_config_reader::read_string(std::string_view text, const std::string& name,
                                      const std::string& dir) {
  parse(text, name, dir, 0);
}

void squid_config_reader::parse(std::string_view text, const std::string& file,
                                const std::string& dir, int depth) {
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // One logical line: physical lines joined while they end in '\'.
    int first = line_no + 1;
    std::string logical;
    while (pos < text.size()) {
      auto nl = text.find('\n', pos);
      std::string_view phys = text.substr(pos, nl == text.npos ? text.npos : nl - pos);
      pos = nl == text.npos ? text.size() : nl + 1;
      ++line_no;
      if (!phys.empty() && phys.back() == '\r') phys.remove_suffix(1);
      std::string_view t = trim(phys);
      if (!t.empty() && t.back() == '\\') {
        logical += std::string(t.substr(0, t.size() - 1));
        logical += ' ';
        continue;
      }
      logical += std::string(t);
      break;
    }
    std::string_view lt = trim(logical);
    if (lt.empty() || lt[0] == '#') continue;
    squid_line l;
    l.file = file;
    l.line = first;
    l.dir = dir;
    for (unsigned char c : lt) {
      if (c < 0x20 && c != '\t') {
        error(file, first, "control character in the line");
        break;
      }
    }
    if (!split_words(lt, &l.words)) {
      error(file, first, "unterminated quote");
      continue;
    }
    if (l.words.empty()) continue;
    // Normalised text for comments: words joined by one space, quotes kept.
    for (const auto& w : l.words) {
      if (!l.text.empty()) l.text += ' ';
      l.text += w.quoted ? '"' + w.text + '"' : w.text;
    }
    const std::string& d = l.words[0].text;
    if (d == "if" || d == "else" || d == "endif") {
      error(file, first,
            "squid conditionals (if/else/endif) are not supported: resolve them by hand first");
      continue;
    }
    if (d == "include") {
      include(l, depth);
      continue;
    }
    lines_.push_back(std::move(l));
  }
}

void squid_config_reader::include(const squid_line& l, int depth) {
  if (l.words.size() < 2) {
    error(l.file, l.line, "include needs a file name or glob");
    return;
  }
  if (!file_access_) {
    error(l.file, l.line, "include is not allowed here");
    return;
  }
  if (depth + 1 >= max_include_depth) {
    error(l.file, l.line, "includes nested too deep (at most 16)");
    return;
  }
  for (size_t i = 1; i < l.words.size(); ++i) {
    std::string pattern = resolve(l.dir, l.words[i].text);
    glob_t g{};
    int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    std::vector<std::string> paths;
    if (rc == 0)
      for (size_t k = 0; k < g.gl_pathc; ++k) paths.emplace_back(g.gl_pathv[k]);
    ::globfree(&g);
    if (rc == GLOB_NOMATCH && pattern.find_first_of("*?[") == std::string::npos) {
      error(l.file, l.line, "cannot read " + pattern + ": No such file or directory");
      continue;
    }
    for (const auto& p : paths) {
      std::string text, err;
      if (!config::read_text_file(p, &text, &err)) {
        error(l.file, l.line, "cannot read " + p + ": " + err);
        continue;
      }
      std::error_code ec;
      auto canon = std::filesystem::weakly_canonical(p, ec);
      std::string key = ec ? p : canon.string();
      bool cycle = false;
      for (const auto& s : stack_) cycle = cycle || s == key;
      if (cycle) {
        error(l.file, l.line, "include cycle: " + p + " is already being read");
        continue;
      }
      stack_.push_back(key);
      parse(text, p, dir_of(p), depth + 1);
      stack_.pop_back();
    }
  }
}

}  // namespace egressd::tools
