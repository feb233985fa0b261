# egressd — the two entry points are `make run` and `make test`; `make test-image` tests the container image.
BUILD ?= build
JOBS ?= $(shell nproc)
CONF ?= conf/egressd.conf
CMAKE_FLAGS ?=
# ccache: paths inside the checkout are hashed relative to it, and debug
# builds (sanitizers, fuzzing) do not hash the build directory, so a fresh
# clone elsewhere (CI) reuses what an earlier build compiled.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= 1

.PHONY: run test test-image build deps bench bench-micro bench-limits fuzz clean \
  test-sanitize test-asan test-tsan soak

run: build
	./$(BUILD)/egressd -c $(CONF)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

# The image as users run it: builds container/Dockerfile with podman and runs
# the compose topology on internal networks (tests/image/test_image.py).
test-image:
	@scripts/deps.sh --image
	python3 tests/image/test_image.py

build: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then \
	  cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS); fi
	cmake --build $(BUILD) -j$(JOBS)

deps:
	@scripts/deps.sh

bench-micro: build
	@for b in $(BUILD)/bench/*_bench; do echo "== $$b"; $$b $(BENCH_ARGS) || exit 1; done

bench: build
	@scripts/deps.sh --bench
	bench/load.sh

bench-limits: build
	@scripts/deps.sh --bench
	bench/limits_overhead.sh

# ---- sanitizers (make test-sanitize = test-asan, then test-tsan)
# Every report is fatal and fails its test: the unit tests abort, and the
# integration harness scans egressd's stderr at every stop (EGRESSD_SANITIZE,
# set by ctest, tells it to). LeakSanitizer runs at egressd's exit (SIGTERM,
# exit 0), so a leak fails the test that stopped it.
SAN_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DEGRESSD_BENCH=OFF
ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
  UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/sanitize/tsan.supp
# The unit tests with threads of their own: limiters shared by workers,
# per-worker metrics shards read by the scraper, the access-log writer
# thread, the agent table, the relay's workers (those of them that exist).
TSAN_TESTS ?= $(filter $(notdir $(basename $(wildcard tests/unit/*_test.cpp))), \
  acl_token_bucket_test acl_concurrency_limiter_test acl_bandwidth_limiter_test acl_agents_test \
  monitor_metrics_test monitor_access_log_test monitor_anomaly_detector_test \
  relay_tunnel_test relay_scale_test)

test-sanitize: test-asan test-tsan

# ASan+UBSan: every unit test, fuzz-corpus replay and integration test.
test-asan: deps
	@if [ ! -f build-asan/build.ninja ]; then \
	  cmake -S . -B build-asan $(SAN_FLAGS) -DEGRESSD_SANITIZE=address; fi
	cmake --build build-asan -j$(JOBS)
	cd build-asan && $(ASAN_ENV) ctest --output-on-failure -j$(JOBS) --timeout 900 $(CTEST_ARGS)

# TSan: the threaded unit tests only (each binary run whole).
test-tsan: deps
	@if [ ! -f build-tsan/build.ninja ]; then \
	  cmake -S . -B build-tsan $(SAN_FLAGS) -DEGRESSD_SANITIZE=thread; fi
	cmake --build build-tsan -j$(JOBS) --target $(TSAN_TESTS)
	@for t in $(TSAN_TESTS); do echo "== tsan $$t"; \
	  $(TSAN_ENV) build-tsan/tests/$$t --gtest_brief=1 || exit 1; done

# ---- libFuzzer (clang): each target replays tests/fuzz/corpus/<target> (a
# crash there fails at once), then fuzzes for FUZZ_SECONDS; new inputs go to
# build-fuzz/corpus/<target>, a crashing one to build-fuzz/crashes/.
FUZZ_SECONDS ?= 30
fuzz:
	@scripts/deps.sh --fuzz
	@if [ ! -f build-fuzz/build.ninja ]; then \
	  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_CXX_COMPILER=clang++ -DEGRESSD_FUZZ=ON -DEGRESSD_BENCH=OFF; fi
	cmake --build build-fuzz -j$(JOBS) --target $(notdir $(basename $(wildcard tests/fuzz/*_fuzz.cpp)))
	@mkdir -p build-fuzz/crashes
	@for src in tests/fuzz/*_fuzz.cpp; do t=$$(basename $$src .cpp); \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; mkdir -p build-fuzz/corpus/$$t; \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  $(ASAN_ENV) build-fuzz/tests/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/$$t- $$dict \
	    build-fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>build-fuzz/$$t.log \
	    || { tail -60 build-fuzz/$$t.log; echo "fuzz: $$t failed (log build-fuzz/$$t.log)"; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' build-fuzz/$$t.log | tail -2; done

# ---- soak (bench/soak.py): SOAK_SECONDS of mixed traffic, RSS/fds every 30 s.
soak: build
	python3 bench/soak.py --egressd $(BUILD)/egressd

clean:
	rm -rf $(BUILD) build-fuzz build-asan build-tsan
