// SNI extraction on ClientHello bytes captured from real clients
// (tests/data/clienthello), whole and fragmented into small records.
#include "proxy/inspect/client_hello.hpp"

#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using bytes = std::vector<uint8_t>;

// The captures live in the source tree, found from this file's path.
bytes load(const std::string& name) {
  const auto dir = std::filesystem::path(__FILE__).parent_path().parent_path() / "tests" /
                   "data" / "clienthello";
  std::ifstream in(dir / name, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Re-frames a single-record capture into records of at most `chunk` bytes.
bytes fragment(const bytes& wire, size_t chunk) {
  bytes out;
  for (size_t pos = 5; pos < wire.size(); pos += chunk) {
    const size_t n = std::min(chunk, wire.size() - pos);
    out.insert(out.end(), {22, 3, 1, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    out.insert(out.end(), wire.begin() + pos, wire.begin() + pos + n);
  }
  return out;
}

void run(benchmark::State& state, const bytes& wire) {
  if (wire.empty()) {
    state.SkipWithError("capture not found");
    return;
  }
  for (auto _ : state) {
    const auto r = egressd::proxy::parse_client_hello(wire.data(), wire.size());
    benchmark::DoNotOptimize(r.sni_size);
    if (r.status != egressd::proxy::hello_status::ok) state.SkipWithError("not ok");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}

void bm_capture(benchmark::State& state, const char* file) { run(state, load(file)); }
void bm_fragmented(benchmark::State& state, const char* file) {
  run(state, fragment(load(file), 64));
}

}  // namespace

BENCHMARK_CAPTURE(bm_capture, curl, "curl_sni.bin");
BENCHMARK_CAPTURE(bm_capture, python, "python_sni.bin");
BENCHMARK_CAPTURE(bm_capture, openssl_tls13, "openssl_tls13_sni.bin");
BENCHMARK_CAPTURE(bm_capture, openssl_tls12, "openssl_tls12_sni.bin");
BENCHMARK_CAPTURE(bm_capture, openssl_nosni, "openssl_nosni.bin");
BENCHMARK_CAPTURE(bm_fragmented, curl_64_byte_records, "curl_sni.bin");
