# Thin wrappers around meson. `make serve` and `make test` are the README's two
# commands (after .ci/deps); .ci/run is what CI runs.
BUILD ?= build
ASAN ?= build-asan

.PHONY: all build serve test test-asan fuzz bench clean

all: build

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

serve: build
	./$(BUILD)/hookflow serve --workflows workflows --scripts scripts

# One test more than the cores: an end-to-end file spends much of its time
# waiting (timers, sleeps, leases, a PostgreSQL cluster starting), not on CPU.
test: build
	meson test -C $(BUILD) --print-errorlogs --no-rebuild \
	  --num-processes $$(( $$(nproc) + 1 )); \
	  rc=$$?; /usr/bin/python3 tests/summary.py $(BUILD); exit $$rc

$(ASAN)/build.ninja:
	CC=clang meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false

test-asan: $(ASAN)/build.ninja
	ninja -C $(ASAN)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(ASAN) --print-errorlogs --no-rebuild; \
	  rc=$$?; /usr/bin/python3 tests/summary.py $(ASAN); exit $$rc

fuzz:
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: build
	/usr/bin/python3 tests/bench/bench.py --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz
