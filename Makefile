# Makefile - thin wrapper over CMake/CTest: deps, build, test, bench.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test bench bench-full asan clean
all: build

deps:
	@sh third_party/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	python3 bench/run.py --build $(BUILD)

bench-full: build
	python3 bench/run.py --build $(BUILD) --full

# ASan + UBSan build of the in-process tests (arena, hooks, pools).
asan: deps
	cmake -S . -B $(BUILD)-asan -DHAKMEM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ctest --output-on-failure -j $(JOBS) -L inprocess

clean:
	rm -rf $(BUILD) $(BUILD)-asan
