// Time to load large allowlists: a generated config of N rules (mixed
// exact, suffix and wildcard names, some with options, a few regexes) read
// by load_file, including compiling the acl::policy.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "config/config.hpp"

namespace {

namespace fs = std::filesystem;

// Generates (once per size, per process) <tmp>/egressd-bench-XXXXXX/N.conf.
class generated_configs {
 public:
  ~generated_configs() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  const std::string& path(size_t rules) {
    auto it = paths_.find(rules);
    if (it != paths_.end()) return it->second;
    if (dir_.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "egressd-bench-XXXXXX").string();
      if (!::mkdtemp(tmpl.data())) std::abort();
      dir_ = tmpl;
    }
    std::string p = dir_ + "/" + std::to_string(rules) + ".conf";
    write(p, rules);
    return paths_.emplace(rules, p).first->second;
  }

 private:
  static void write(const std::string& p, size_t rules) {
    std::ofstream out(p);
    out << "# generated: " << rules << " rules\nlisten 127.0.0.1:3128\nthreads auto\nhosts off\n";
    const char* tlds[] = {"com", "net", "org", "io", "dev"};
    for (size_t i = 0; i < rules; ++i) {
      const char* tld = tlds[i % 5];
      switch (i % 20) {
        case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9:
        case 10: case 11:  // 60% exact
          out << "allow api" << i << ".service" << (i % 977) << ".example." << tld;
          if (i % 3 == 0) out << " ports=443";
          out << '\n';
          break;
        case 12: case 13: case 14: case 15: case 16:  // 25% suffix
          out << "allow .cdn" << i << ".example." << tld << "  # mirror\n";
          break;
        case 17: case 18:  // 10% wildcard
          out << "allow *.tenant" << i << ".example." << tld << " ports=443,8443 methods=GET,POST\n";
          break;
        default:  // 5% deny
          out << "deny blocked" << i << ".example." << tld << '\n';
      }
    }
    for (int i = 0; i < 8; ++i) out << "allow ~^build-[0-9]+\\.ci" << i << "\\.example\\.com$\n";
  }

  std::string dir_;
  std::map<size_t, std::string> paths_;
};

generated_configs& configs() {
  static generated_configs g;
  return g;
}

void BM_load_file(benchmark::State& state) {
  const size_t rules = size_t(state.range(0));
  const std::string& path = configs().path(rules);
  const auto bytes = fs::file_size(path);
  for (auto _ : state) {
    auto r = egressd::config::load_file(path);
    if (!r.snap) {
      for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
      state.SkipWithError("config did not load");
      return;
    }
    benchmark::DoNotOptimize(r.snap.get());
    // Freeing a million rules is not part of loading: keep it off the clock.
    state.PauseTiming();
    r = {};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(rules));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
}
BENCHMARK(BM_load_file)->Arg(10'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_load_file)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
