#include "config/options.hpp"

#include <algorithm>
#include <array>
#include <string>

namespace egressd::config {

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

static size_t edit_distance(std::string_view a, std::string_view b) {
  if (a.size() > 64 || b.size() > 64) return 99;
  std::array<size_t, 65> prev{}, cur{};
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    prev = cur;
  }
  return prev[b.size()];
}

static bool iprefix(std::string_view p, std::string_view s) {
  if (p.size() > s.size() || p.size() < 3) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (lower(p[i]) != lower(s[i])) return false;
  return true;
}

std::string_view suggest(std::string_view word, std::initializer_list<std::string_view> candidates) {
  std::string_view best;
  size_t best_d = 3;
  for (auto c : candidates) {
    size_t d = edit_distance(word, c);
    if (d == 0 || iprefix(word, c) || iprefix(c, word)) d = std::min<size_t>(d, 1);
    // Short words: only one edit, or nearly every word would be "close".
    size_t limit = std::min<size_t>(2, std::max<size_t>(1, c.size() / 3));
    if (d <= limit && d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

bool take_options(parse_context& ctx, std::string_view directive, const line_tokens& t,
                  std::initializer_list<std::string_view> keys, std::optional<std::string_view>* values) {
  bool ok = true;
  for (const option& o : t.options()) {
    auto it = std::find(keys.begin(), keys.end(), o.key);
    if (it == keys.end()) {
      std::string msg = "unknown option '" + std::string(o.key) + "=' for " + std::string(directive);
      if (keys.size() == 0) {
        msg += " (" + std::string(directive) + " takes no options)";
      } else if (auto s = suggest(o.key, keys); !s.empty()) {
        msg += " (did you mean " + std::string(s) + "=?)";
      } else {
        msg += " (options:";
        for (auto k : keys) msg.append(" ").append(k).append("=");
        msg += ")";
      }
      ctx.error(std::move(msg));
      ok = false;
      continue;
    }
    auto& slot = values[it - keys.begin()];
    if (slot) {
      ctx.error(std::string(o.key) + "= given twice on one line");
      ok = false;
      continue;
    }
    if (o.value.empty()) {
      ctx.error(std::string(o.key) + "= needs a value");
      ok = false;
      continue;
    }
    slot = o.value;
  }
  return ok;
}


bool expect_args(parse_context& ctx, const line_tokens& t, size_t min, size_t max,
                 std::string_view usage) {
  size_t n = t.args().size();
  if (n >= min && n <= max) return true;
  std::string d(t.directive());
  if (n < min) {
    ctx.error(d + (n == 0 ? " needs an argument" : " needs more arguments") + " (usage: " +
              std::string(usage) + ")");
  } else {
    ctx.error("unexpected '" + std::string(t.args()[max]) + "' after " + d + " (usage: " +
              std::string(usage) + ")");
  }
  return false;
}

}  // namespace egressd::config
