#include "tools/port_set.hpp"

#include <algorithm>
#include <charconv>

namespace egressd::tools {

port_set port_set::all() {
  port_set s;
  s.ivs_.push_back({1, 65535});
  return s;
}

port_set port_set::of(std::initializer_list<uint16_t> ports) {
  port_set s;
  for (uint16_t p : ports)
    if (p != 0) s.add({p, p});
  return s;
}

port_set port_set::range(uint16_t first, uint16_t last) {
  port_set s;
  s.add({first, last});
  return s;
}

bool port_set::parse_item(std::string_view text, interval* out) {
  auto num = [](std::string_view v, uint16_t* n) {
    if (v.empty() || v.size() > 5) return false;
    unsigned x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || p != v.data() + v.size() || x == 0 || x > 65535) return false;
    *n = uint16_t(x);
    return true;
  };
  auto dash = text.find('-');
  uint16_t a = 0, b = 0;
  if (dash == text.npos) {
    if (!num(text, &a)) return false;
    *out = {a, a};
    return true;
  }
  if (!num(text.substr(0, dash), &a) || !num(text.substr(dash + 1), &b) || a > b) return false;
  *out = {a, b};
  return true;
}

void port_set::add(interval iv) {
  if (iv.first == 0 || iv.first > iv.second) return;
  ivs_.push_back(iv);
  std::sort(ivs_.begin(), ivs_.end());
  std::vector<interval> merged;
  for (const auto& x : ivs_) {
    if (!merged.empty() && uint32_t(x.first) <= uint32_t(merged.back().second) + 1)
      merged.back().second = std::max(merged.back().second, x.second);
    else
      merged.push_back(x);
  }
  ivs_ = std::move(merged);
}

void port_set::add(const port_set& other) {
  for (const auto& iv : other.ivs_) add(iv);
}

bool port_set::contains(uint16_t port) const {
  return std::any_of(ivs_.begin(), ivs_.end(),
                     [port](const interval& iv) { return iv.first <= port && port <= iv.second; });
}

bool port_set::is_all() const { return ivs_.size() == 1 && ivs_[0] == interval{1, 65535}; }

uint32_t port_set::size() const {
  uint32_t n = 0;
  for (const auto& iv : ivs_) n += uint32_t(iv.second) - iv.first + 1;
  return n;
}

port_set port_set::intersect(const port_set& other) const {
  port_set r;
  for (const auto& a : ivs_)
    for (const auto& b : other.ivs_) {
      uint16_t lo = std::max(a.first, b.first), hi = std::min(a.second, b.second);
      if (lo <= hi) r.ivs_.push_back({lo, hi});
    }
  std::sort(r.ivs_.begin(), r.ivs_.end());
  return r;
}

port_set port_set::subtract(const port_set& other) const {
  port_set r;
  for (auto a : ivs_) {
    uint32_t lo = a.first, hi = a.second;
    for (const auto& b : other.ivs_) {
      if (b.second < lo || b.first > hi) continue;
      if (b.first > lo) r.ivs_.push_back({uint16_t(lo), uint16_t(b.first - 1)});
      lo = uint32_t(b.second) + 1;
      if (lo > hi) break;
    }
    if (lo <= hi) r.ivs_.push_back({uint16_t(lo), uint16_t(hi)});
  }
  return r;
}

std::string port_set::str() const {
  std::string s;
  for (const auto& iv : ivs_) {
    if (!s.empty()) s += ',';
    s += std::to_string(iv.first);
    if (iv.second != iv.first) s += '-' + std::to_string(iv.second);
  }
  return s;
}

}  // namespace egressd::tools
