#include "monitor/metrics_registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace egressd::monitor {
namespace {

constexpr size_t pad_slots = 8;  // one cache line of uint64_t

const char* type_name(metrics_registry::metric_type t) {
  switch (t) {
    case metrics_registry::metric_type::counter: return "counter";
    case metrics_registry::metric_type::gauge: return "gauge";
    case metrics_registry::metric_type::histogram: return "histogram";
  }
  return "untyped";
}

uint32_t slots_for(metrics_registry::metric_type t, size_t nbounds) {
  return t == metrics_registry::metric_type::histogram ? static_cast<uint32_t>(nbounds + 2) : 1;
}

void append_labels(std::string& out, const metrics_registry::label_set& labels,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    metrics_registry::append_label_value(out, v);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_help_text(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

metrics_registry::metrics_registry(unsigned workers, size_t capacity)
    : workers_(workers), capacity_(std::max<size_t>(capacity, 2)) {
  for (unsigned i = 0; i <= workers_; ++i) {
    auto block = std::make_unique<std::atomic<uint64_t>[]>(capacity_ + 2 * pad_slots);
    shard_ptrs_.push_back(block.get() + pad_slots);
    storage_.push_back(std::move(block));
  }
  base_ = std::make_unique<std::atomic<int64_t>[]>(capacity_);
}

metrics_registry::~metrics_registry() = default;

size_t metrics_registry::family(std::string name, std::string help, metric_type type, bool sparse,
                                std::vector<double> buckets) {
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < families_.size(); ++i) {
    if (families_[i].name == name) {
      if (families_[i].type != type) throw std::logic_error("metric family type clash: " + name);
      return i;
    }
  }
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  if (!buckets.empty() && std::isinf(buckets.back())) buckets.pop_back();
  families_.push_back(family_info{std::move(name), std::move(help), type, sparse,
                                  std::move(buckets), {}, {}});
  return families_.size() - 1;
}

uint32_t metrics_registry::series_slot(size_t family, const label_set& labels, metric_type type) {
  // Caller holds mu_.
  family_info& f = families_.at(family);
  if (f.type != type) throw std::logic_error("metric type mismatch: " + f.name);
  std::string key;
  for (const auto& [k, v] : labels) {
    key += k;
    key += '\0';
    key += v;
    key += '\0';
  }
  if (auto it = f.index.find(key); it != f.index.end()) return it->second;
  const uint32_t need = slots_for(type, f.bounds.size());
  if (next_slot_ + need > capacity_) return 0;  // full: the sink, never rendered
  f.members.push_back(series{labels, next_slot_});
  f.index.emplace(std::move(key), next_slot_);
  next_slot_ += need;
  return f.members.back().slot;
}

metrics_registry::counter_id metrics_registry::counter(size_t family, const label_set& labels) {
  std::lock_guard lk(mu_);
  return counter_id{series_slot(family, labels, metric_type::counter)};
}

metrics_registry::gauge_id metrics_registry::gauge(size_t family, const label_set& labels) {
  std::lock_guard lk(mu_);
  return gauge_id{series_slot(family, labels, metric_type::gauge)};
}

metrics_registry::histogram_id metrics_registry::histogram(size_t family, const label_set& labels) {
  std::lock_guard lk(mu_);
  const uint32_t slot = series_slot(family, labels, metric_type::histogram);
  const family_info& f = families_.at(family);
  if (slot == 0) return histogram_id{0, 0, nullptr};  // sink: observe() touches slot 0..1 only
  return histogram_id{slot, static_cast<uint32_t>(f.bounds.size()), f.bounds.data()};
}

void metrics_registry::set(gauge_id id, int64_t v) {
  base_[id.slot].store(v, std::memory_order_relaxed);
}

void metrics_registry::observe(unsigned shard, histogram_id id, double v) {
  uint32_t i = 0;
  while (i < id.nbounds && v > id.bounds[i]) ++i;  // le: v <= bound
  bump(shard, id.slot + i, 1);
  auto& sum = shard_ptrs_[shard][id.slot + id.nbounds + 1];
  uint64_t bits = sum.load(std::memory_order_relaxed);
  if (shard < workers_) {
    sum.store(std::bit_cast<uint64_t>(std::bit_cast<double>(bits) + v), std::memory_order_relaxed);
  } else {
    while (!sum.compare_exchange_weak(bits, std::bit_cast<uint64_t>(std::bit_cast<double>(bits) + v),
                                      std::memory_order_relaxed)) {
    }
  }
}

uint64_t metrics_registry::sum_slot(uint32_t slot) const {
  uint64_t total = 0;
  for (auto* shard : shard_ptrs_) total += shard[slot].load(std::memory_order_relaxed);
  return total;
}

double metrics_registry::sum_double_slot(uint32_t slot) const {
  double total = 0;
  for (auto* shard : shard_ptrs_) {
    total += std::bit_cast<double>(shard[slot].load(std::memory_order_relaxed));
  }
  return total;
}

uint64_t metrics_registry::value(counter_id id) const { return sum_slot(id.slot); }

int64_t metrics_registry::value(gauge_id id) const {
  return base_[id.slot].load(std::memory_order_relaxed) + static_cast<int64_t>(sum_slot(id.slot));
}

metrics_registry::histogram_snapshot metrics_registry::value(histogram_id id) const {
  histogram_snapshot h;
  uint64_t running = 0;
  for (uint32_t i = 0; i <= id.nbounds; ++i) {
    running += sum_slot(id.slot + i);
    h.cumulative.push_back(running);
  }
  h.count = running;
  h.sum = sum_double_slot(id.slot + id.nbounds + 1);
  return h;
}

void metrics_registry::add_collector(collector c) {
  std::lock_guard lk(mu_);
  collectors_.push_back(std::move(c));
}

void metrics_registry::append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void metrics_registry::append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void metrics_registry::write_header(std::string& out, std::string_view name, std::string_view help,
                                    metric_type type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_help_text(out, help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type_name(type);
  out += '\n';
}

void metrics_registry::write_sample(std::string& out, std::string_view name,
                                    const label_set& labels, double value) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  append_number(out, value);
  out += '\n';
}

void metrics_registry::write_sample(std::string& out, std::string_view name,
                                    const label_set& labels, uint64_t value) {
  out += name;
  append_labels(out, labels);
  out += ' ';
  append_uint(out, value);
  out += '\n';
}

void metrics_registry::render_family(std::string& out, const family_info& f) const {
  write_header(out, f.name, f.help, f.type);
  for (const auto& s : f.members) {
    switch (f.type) {
      case metric_type::counter: {
        const uint64_t v = sum_slot(s.slot);
        if (f.sparse && v == 0) break;
        write_sample(out, f.name, s.labels, v);
        break;
      }
      case metric_type::gauge: {
        const int64_t v = value(gauge_id{s.slot});
        if (f.sparse && v == 0) break;
        out += f.name;
        append_labels(out, s.labels);
        out += ' ';
        append_int(out, v);
        out += '\n';
        break;
      }
      case metric_type::histogram: {
        const auto h = value(histogram_id{s.slot, static_cast<uint32_t>(f.bounds.size()),
                                          f.bounds.data()});
        if (f.sparse && h.count == 0) break;
        const std::string bucket = f.name + "_bucket";
        for (size_t i = 0; i <= f.bounds.size(); ++i) {
          std::string le;
          if (i < f.bounds.size()) {
            append_number(le, f.bounds[i]);
          } else {
            le = "+Inf";
          }
          out += bucket;
          append_labels(out, s.labels, "le", le);
          out += ' ';
          append_uint(out, h.cumulative[i]);
          out += '\n';
        }
        write_sample(out, f.name + "_sum", s.labels, h.sum);
        write_sample(out, f.name + "_count", s.labels, h.count);
        break;
      }
    }
  }
}

std::string metrics_registry::render() const {
  std::string out;
  std::lock_guard lk(mu_);
  out.reserve(4096 + 96 * next_slot_);
  for (const auto& f : families_) render_family(out, f);
  for (const auto& c : collectors_) c(out);
  return out;
}

}  // namespace egressd::monitor
