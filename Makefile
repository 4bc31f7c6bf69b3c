# Thin front door over CMake. The README's two commands are `make demo` and `make test`;
# both install the dependencies (scripts/install-deps) and build first.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps build test test-fast test-asan demo bench fuzz fuzz-build fuzz-minimize install format format-check clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite: the regular build, then the same tests under ASan + UBSan.
test: test-fast test-asan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(BUILD_ASAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DSKY_SANITIZE=ON $(CMAKE_ARGS)

test-asan: deps $(BUILD_ASAN)/CMakeCache.txt
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo $(BUILD)/skyio

bench: build
	@bench/run-all $(BUILD)

# libFuzzer targets (clang; library and harnesses instrumented, ASan + UBSan): each runs
# FUZZ_SECONDS from its seeds and a work corpus under $(BUILD_FUZZ)/corpus that grows from
# run to run. FUZZ_TARGETS picks some ("arm sse"); fuzz-minimize folds the work corpus
# back into the seeds under tests/fuzz/corpus (see tests/fuzz/fuzz.sh).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

fuzz-build: deps
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DSKY_FUZZ=ON -DSKY_SANITIZE=ON
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/fuzz.sh run $(BUILD_FUZZ) $(FUZZ_TARGETS)

fuzz-minimize: fuzz-build
	tests/fuzz/fuzz.sh merge $(BUILD_FUZZ) $(FUZZ_TARGETS)

install: build
	cmake --install $(BUILD)

# clang-format comes from scripts/install-deps, as the compilers do.
format: deps
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check: deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
