# Makefile - thin wrapper over CMake/CTest: deps, build, test, bench.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test soak bench bench-full asan tsan debug fuzz clean
all: build

deps:
	@sh third_party/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The quick tier: every test but the full-volume ones (label `soak`).
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE soak

# The soak tier: the reliability cases at full volume.
soak: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L soak

# BENCH_ARGS: more run.py options, e.g. BENCH_ARGS="--only larson,xmalloc".
BENCH_ARGS ?=
bench: build
	python3 bench/run.py --build $(BUILD) $(BENCH_ARGS)

bench-full: build
	python3 bench/run.py --build $(BUILD) --full $(BENCH_ARGS)

# ASan + UBSan build of the in-process tests (arena, hooks, pools).
asan: deps
	cmake -S . -B $(BUILD)-asan -DHAKMEM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS) -L inprocess -LE soak

# ThreadSanitizer build of the multi-threaded in-process tests (label
# `threads`).  detect_deadlocks=0: TSan's lock-order checker fails an
# internal CHECK in fork children (our locks are atomics it does not track);
# data-race detection stays on.
tsan: deps
	cmake -S . -B $(BUILD)-tsan -DHAKMEM_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0" \
	    ctest --output-on-failure -j $(JOBS) -L threads -LE soak

# Debug build with the internal invariant checks (HAKMEM_DEBUG): every test
# of the quick tier.
debug: deps
	cmake -S . -B $(BUILD)-debug -DHAKMEM_DEBUG=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-debug -j $(JOBS)
	cd $(BUILD)-debug && ctest --output-on-failure -j $(JOBS) -LE soak

# libFuzzer (clang): smoke runs over the seed corpora, then each harness for
# FUZZ_SECONDS seconds.
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)-fuzz -DHAKMEM_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz_malloc fuzz_arena
	cd $(BUILD)-fuzz && ctest --output-on-failure -L fuzz
	sh tests/fuzz/run_fuzz.sh $(BUILD)-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-debug $(BUILD)-fuzz
