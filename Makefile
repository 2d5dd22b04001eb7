# Stentor: thin wrapper over meson/ninja and the scripts in scripts/.
#   make run    - install deps, build, run the live demo (DEMO_SECONDS=10)
#   make test   - install deps, build, run every test suite (non-zero on failure)
BUILD ?= build

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

fuzz:
	@echo "no fuzz targets yet"

clean:
	rm -rf $(BUILD)
