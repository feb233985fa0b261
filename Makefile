# egressd — the two entry points are `make run` and `make test`; `make test-image` tests the container image.
BUILD ?= build
JOBS ?= $(shell nproc)
CONF ?= conf/egressd.conf
CMAKE_FLAGS ?=

.PHONY: run test test-image build deps bench bench-micro bench-limits fuzz clean

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

fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DEGRESSD_FUZZ=ON -DEGRESSD_BENCH=OFF
	cmake --build build-fuzz -j$(JOBS) --target $(notdir $(basename $(wildcard tests/fuzz/*_fuzz.cpp)))
	@for f in build-fuzz/tests/*_fuzz; do \
	  echo "== $$f"; mkdir -p build-fuzz/corpus/$$(basename $$f); \
	  $$f -max_total_time=$${FUZZ_SECONDS:-60} build-fuzz/corpus/$$(basename $$f) \
	    tests/fuzz/corpus/$$(basename $$f) || exit 1; done

clean:
	rm -rf $(BUILD) build-fuzz
