#pragma once
// A set of TCP ports (1..65535) kept as sorted, disjoint, non-adjacent
// closed intervals, as Squid's `acl NAME port 80 1025-65535` lists them.
// Value type; no shared state; safe to copy between threads.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::tools {

class port_set {
 public:
  using interval = std::pair<uint16_t, uint16_t>;  // [first, last], 1 <= first <= last

  static port_set all();  // 1-65535
  static port_set of(std::initializer_list<uint16_t> ports);
  static port_set range(uint16_t first, uint16_t last);  // empty if first is 0 or > last

  // "443", "1025-65535". False on anything else (0, out of range, first > last).
  static bool parse_item(std::string_view text, interval* out);

  void add(interval iv);
  void add(const port_set& other);
  bool contains(uint16_t port) const;
  bool empty() const { return ivs_.empty(); }
  bool is_all() const;
  uint32_t size() const;  // number of ports

  port_set intersect(const port_set& other) const;
  port_set subtract(const port_set& other) const;

  const std::vector<interval>& intervals() const { return ivs_; }
  // "80,443,1025-65535" ("" when empty).
  std::string str() const;

  friend bool operator==(const port_set&, const port_set&) = default;

 private:
  std::vector<interval> ivs_;
};

}  // namespace egressd::tools
