# dinotrain: the README's commands. Everything else is plain CMake underneath.
#   make test   install deps, configure, build, run every test (plus the ASan/UBSan pass)
#   make demo   install deps, build, run the main job on the embedded defaults
#   make bench  build and run the benchmarks
#   make fuzz   build the libFuzzer targets with clang (build-fuzz) and run each FUZZ_SECONDS
#   make test-cuda  the pinned CUDA LibTorch 2.x (scripts/install-torch-cuda), its whole tree
#                   (build-cuda, DINO_WITH_CUDA=ON) and its ctest suite on the CPU; the tests that
#                   need a GPU are reported as skipped
BUILD       ?= build
CUDA_BUILD  ?= build-cuda
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS        ?= $(shell nproc)
# Release (no -g): a LibTorch translation unit compiles ~30% faster and links far faster than with
# RelWithDebInfo. `make BUILD_TYPE=RelWithDebInfo ...` for a debuggable build.
BUILD_TYPE  ?= Release
# Ninja when installed (install-deps installs it). A build dir keeps the generator it was first
# configured with, so -G is passed only to a fresh one.
GENERATOR   ?= $(if $(shell command -v ninja 2>/dev/null),Ninja,Unix Makefiles)
generator_for = $(if $(wildcard $(1)/CMakeCache.txt),,-G "$(GENERATOR)")
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: all deps configure build test test-unit test-sanitize test-fuzz fuzz fuzz-build demo bench format clean \
        torch-cuda configure-cuda build-cuda test-cuda

all: build

deps:
	bash scripts/install-deps

configure: deps
	cmake -S . -B $(BUILD) $(call generator_for,$(BUILD)) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: test-unit test-sanitize test-fuzz

# Tests make their scratch directories under TEST_TMPDIR (gtest's TempDir() and the test helpers
# read it): inside the build tree, emptied before each run, instead of piling up in /tmp.
test-unit: build
	rm -rf $(BUILD)/test-tmp && mkdir -p $(BUILD)/test-tmp
	cd $(BUILD) && TEST_TMPDIR=$(abspath $(BUILD))/test-tmp ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# AddressSanitizer + UBSan for every target that does not load LibTorch (Debian's LibTorch is not
# instrumented and aborts under ASan), i.e. the tests labelled "sanitizable".
test-sanitize: deps
	cmake -S . -B $(ASAN_BUILD) $(call generator_for,$(ASAN_BUILD)) -DCMAKE_BUILD_TYPE=Debug -DDINO_SANITIZE=ON -DDINO_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	rm -rf $(ASAN_BUILD)/test-tmp && mkdir -p $(ASAN_BUILD)/test-tmp
	cd $(ASAN_BUILD) && TEST_TMPDIR=$(abspath $(ASAN_BUILD))/test-tmp ctest --output-on-failure -j $(JOBS) -L sanitizable $(CTEST_FLAGS)

# libFuzzer targets (tests/fuzz, clang + ASan/UBSan) in their own build dir, so the g++ build is
# untouched; run two at a time for FUZZ_SECONDS each.
fuzz-build: deps
	CC=clang-14 CXX=clang++-14 cmake -S tests/fuzz -B $(FUZZ_BUILD) $(call generator_for,$(FUZZ_BUILD)) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=2 bash tests/fuzz/run_fuzzers.sh $(FUZZ_BUILD)

# Every target, fuzz_checkpoint included: checkpoints carry a SHA-256 that is verified before
# LibTorch's unpickler (which can SEGV on a mutated archive) sees a byte.
test-fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=2 \
	  FUZZ_TARGETS="fuzz_spec_file fuzz_checkpoint fuzz_idx fuzz_image" \
	  bash tests/fuzz/run_fuzzers.sh $(FUZZ_BUILD)

# The CUDA tree: LibTorch 2.x from its own virtual environment (never Debian's python3), Debian's
# packages for everything else. Configured with the torch package folder on CMAKE_PREFIX_PATH.
torch-cuda: deps
	bash scripts/install-torch-cuda

configure-cuda: torch-cuda
	cmake -S . -B $(CUDA_BUILD) $(call generator_for,$(CUDA_BUILD)) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DDINO_WITH_CUDA=ON -DCMAKE_PREFIX_PATH="$$(bash scripts/install-torch-cuda --print | tail -n 1)" \
	  $(CMAKE_FLAGS)

build-cuda: configure-cuda
	cmake --build $(CUDA_BUILD) -j $(JOBS)

test-cuda: build-cuda
	rm -rf $(CUDA_BUILD)/test-tmp && mkdir -p $(CUDA_BUILD)/test-tmp
	cd $(CUDA_BUILD) && TEST_TMPDIR=$(abspath $(CUDA_BUILD))/test-tmp ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

demo: build
	bash scripts/demo $(BUILD)

bench: build
	bash scripts/bench $(BUILD)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(CUDA_BUILD)
