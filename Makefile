# Stentor: thin wrapper over meson/ninja and the scripts in scripts/.
#   make run    - install deps, build, run the live demo (DEMO_SECONDS=10)
#   make test   - install deps, build, run every test suite (non-zero on failure)
#   make bench  - run every benchmark, then write $(BUILD)/bench-report/report.md
#                 with plots (docs/performance.md, "The report")
#   make fuzz   - build the libFuzzer targets (clang) and run each for
#                 FUZZ_SECONDS (default 300); prints executions and findings
BUILD ?= build
FUZZ_SECONDS ?= 300

.PHONY: all deps build run test bench fuzz clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then meson setup $(BUILD); fi
	ninja -C $(BUILD)

run: build
	BUILD_DIR=$(BUILD) bash scripts/demo.sh

test: build
	bash scripts/run-tests.sh $(BUILD)

bench: build
	bash scripts/run-bench.sh $(BUILD)

fuzz: deps
	FUZZ_OUT=$(abspath $(BUILD))/fuzz bash fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
