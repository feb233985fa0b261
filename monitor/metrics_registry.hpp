#pragma once
// Counters, gauges and histograms for Prometheus, written by workers without
// locks. Every series owns fixed value slots; each worker has its own shard
// (a preallocated array of relaxed atomics) that only that worker writes, so
// an increment is a plain load + store on a cache line no other thread writes
// (no lock prefix, no false sharing). One extra shared shard takes atomic
// read-modify-writes from any other thread. A scrape sums the shards with
// relaxed loads: values are per-series consistent enough for monitoring, not
// a global snapshot.
//
// Thread contract: registration (family(), counter(), gauge(), histogram(),
// add_collector()) and render() take an internal mutex and may run on any
// thread, off the data path; a series id must reach a worker through an
// ordinary synchronisation point (e.g. the config snapshot posted to it).
// add()/observe() with shard i are called only by the thread owning shard i
// (i < workers()), or with shared_shard() from any thread. The registry owns
// all storage and must outlive every user; ids stay valid for its lifetime.
// Label values must come from a bounded set (the config, enums, the bounded
// client table): a full registry hands out the unrendered sink slot instead
// of growing.

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <unordered_map>
#include <vector>

namespace egressd::monitor {

class metrics_registry {
 public:
  enum class metric_type : uint8_t { counter, gauge, histogram };
  using label_set = std::vector<std::pair<std::string, std::string>>;

  struct counter_id {
    uint32_t slot = 0;
  };
  struct gauge_id {
    uint32_t slot = 0;
  };
  struct histogram_id {
    uint32_t slot = 0;              // nbounds + 1 bucket slots, then the sum
    uint32_t nbounds = 0;
    const double* bounds = nullptr;  // owned by the family, ascending
  };

  static constexpr size_t default_capacity = 16384;  // value slots per shard

  explicit metrics_registry(unsigned workers, size_t capacity = default_capacity);
  ~metrics_registry();
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  unsigned workers() const { return workers_; }
  unsigned shared_shard() const { return workers_; }

  // Declares a family (idempotent by name). sparse: series still at zero are
  // left out of the exposition (for families pre-registered over a product
  // of label values, most of which never occur). buckets: histogram upper
  // bounds, ascending, without +Inf.
  size_t family(std::string name, std::string help, metric_type type, bool sparse = false,
                std::vector<double> buckets = {});
  // Get-or-create the series with these label values (a second call with the
  // same labels returns the same id, so reloads keep counting).
  counter_id counter(size_t family, const label_set& labels);
  gauge_id gauge(size_t family, const label_set& labels);
  histogram_id histogram(size_t family, const label_set& labels);

  // --- data path -----------------------------------------------------------
  void add(unsigned shard, counter_id id, uint64_t n = 1) { bump(shard, id.slot, n); }
  void add(unsigned shard, gauge_id id, int64_t delta) {
    bump(shard, id.slot, static_cast<uint64_t>(delta));  // two's complement sums
  }
  void set(gauge_id id, int64_t v);  // any thread; the shards' deltas add to it
  void observe(unsigned shard, histogram_id id, double v);

  // --- scrape --------------------------------------------------------------
  uint64_t value(counter_id id) const;
  int64_t value(gauge_id id) const;
  struct histogram_snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  histogram_snapshot value(histogram_id id) const;

  // A collector appends complete families (use write_header/write_sample) for
  // series whose label set lives elsewhere (e.g. the anomaly detector's
  // bounded client table). Called by render() in registration order, under
  // the registry mutex: a collector must not call back into the registry.
  using collector = std::function<void(std::string& out)>;
  void add_collector(collector c);

  // Prometheus text exposition format 0.0.4.
  std::string render() const;

  static void write_header(std::string& out, std::string_view name, std::string_view help,
                           metric_type type);
  static void write_sample(std::string& out, std::string_view name, const label_set& labels,
                           double value);
  static void write_sample(std::string& out, std::string_view name, const label_set& labels,
                           uint64_t value);
  static void append_label_value(std::string& out, std::string_view v);  // escaped
  static void append_number(std::string& out, double v);  // shortest; +Inf, -Inf, NaN

 private:
  struct series {
    label_set labels;
    uint32_t slot;
  };
  struct family_info {
    std::string name, help;
    metric_type type;
    bool sparse;
    std::vector<double> bounds;
    std::deque<series> members;
    // labels (values joined by '\0') -> slot: registration stays O(1) with
    // a million rule series.
    std::unordered_map<std::string, uint32_t> index;
  };

  void bump(unsigned shard, uint32_t slot, uint64_t n) {
    auto& v = shard_ptrs_[shard][slot];
    if (shard < workers_) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      v.fetch_add(n, std::memory_order_relaxed);
    }
  }
  uint64_t sum_slot(uint32_t slot) const;
  double sum_double_slot(uint32_t slot) const;
  uint32_t series_slot(size_t family, const label_set& labels, metric_type type);
  void render_family(std::string& out, const family_info& f) const;

  unsigned workers_;
  size_t capacity_;
  // shard_ptrs_[workers_] is the shared shard. Slots 0-1 are the sink for
  // overflow. Each array is padded by a cache line on both ends (storage_).
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> storage_;
  std::vector<std::atomic<uint64_t>*> shard_ptrs_;
  std::unique_ptr<std::atomic<int64_t>[]> base_;  // gauge set() values

  mutable std::mutex mu_;  // guards everything below
  std::deque<family_info> families_;
  std::vector<collector> collectors_;
  uint32_t next_slot_ = 2;  // slots 0 and 1: the sink (a histogram sink uses both)
};

}  // namespace egressd::monitor
