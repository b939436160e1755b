# The front door: every target installs what it needs, then calls meson.
# Meson builds; see meson.build. PREFIX applies to `make install`, whatever
# was built before.
PREFIX ?= /usr/local
BUILD ?= build
SAN ?= build-san
PYTEST = /usr/bin/python3 -m pytest
MESON_OPTS = -Dwerror=true

.PHONY: all run check example san valgrind install bench fuzz format format-check clean

all: $(BUILD)/build.ninja
	@scripts/deps.sh build
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) $(MESON_OPTS) --prefix=$(PREFIX)

$(SAN)/build.ninja:
	@scripts/deps.sh test
	meson setup $(SAN) $(MESON_OPTS) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all

# Serves the demo capsule (examples/demo) on gemini://localhost:1965.
run: all
	@scripts/deps.sh run
	examples/demo.sh $(CURDIR)/$(BUILD)

# Every test: unit and end-to-end, plain and under ASan+UBSan.
check:
	@scripts/deps.sh test
	$(MAKE) format-check
	$(MAKE) all
	meson test -C $(BUILD) --print-errorlogs
	$(MAKE) example
	XITZIN_BIN=$(CURDIR)/$(BUILD)/xitzin \
		XITZIN_HELLO=$(CURDIR)/$(BUILD)/stage/hello $(PYTEST) -q tests/e2e
	$(MAKE) san

san: $(SAN)/build.ninja
	ninja -C $(SAN)
	ASAN_OPTIONS=detect_leaks=1 meson test -C $(SAN) --print-errorlogs
	XITZIN_BIN=$(CURDIR)/$(SAN)/xitzin XITZIN_SANITIZED=1 $(PYTEST) -q tests/e2e

# Each fuzz target for FUZZ_SECONDS (new inputs go to build-fuzz/, not
# to the seed corpora in fuzz/corpus/).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = request response netstring config route keyshare cert
fuzz:
	@scripts/deps.sh fuzz
	test -f build-fuzz/build.ninja || CC=clang meson setup build-fuzz \
		-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-fuzz
	for t in $(FUZZ_TARGETS); do \
		mkdir -p build-fuzz/corpus/$$t && \
		build-fuzz/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 build-fuzz/corpus/$$t fuzz/corpus/$$t \
			|| exit 1; \
	done

# examples/hello.c built as a user would: against the installed library
# (staged under $(BUILD)/stage) through pkg-config.
example: all
	rm -rf $(BUILD)/stage
	DESTDIR=$(CURDIR)/$(BUILD)/stage meson install -C $(BUILD) --quiet
	pc=$$(dirname $$(find $(BUILD)/stage -name xitzin.pc)); \
	prefix=$$(sed -n 's/^prefix=//p' $$pc/xitzin.pc); \
	flags=$$(PKG_CONFIG_PATH=$$pc pkg-config --cflags --libs xitzin \
		--define-variable=prefix=$(CURDIR)/$(BUILD)/stage$$prefix); \
	cc -Wall -Wextra -Werror -o $(BUILD)/stage/hello examples/hello.c \
		$$flags -Wl,-rpath,$(CURDIR)/$$(dirname $$pc)

# memcheck over the end-to-end smoke subset (slow: not part of check).
# Not CGI: Debian 12's valgrind (3.19) has no pidfd_open, which CGI needs;
# nor openat2, so static files take the no-symlink walk (the symlink test
# expects openat2); and the sub-second SCGI timeouts of two tests are too
# short for a server running ten times slower.
VALGRIND_TESTS = tests/e2e/test_engine.py tests/e2e/test_scgi.py \
	tests/e2e/test_hostile_backends.py
valgrind: all
	@scripts/deps.sh valgrind
	XITZIN_BIN=$(CURDIR)/scripts/valgrind-xitzin XITZIN_SANITIZED=1 \
		XITZIN_BUILD_DIR=$(CURDIR)/$(BUILD) \
		$(PYTEST) -q -k "not concurrent and not 100_mib and not flood and not sigterm \
		and not symlinks and not stalls and not never_reads" \
		$(VALGRIND_TESTS)

# xitzin beside Molly Brown, scenario by scenario (bench/run.py; its own
# release build in bench/build/). QUICK=1: a short run, under two minutes;
# METRICS=1: only the metrics on/off comparison (static 100 B).
bench:
	@scripts/deps.sh bench
	/usr/bin/python3 bench/run.py $(if $(QUICK),--quick) $(if $(METRICS),--metrics-cost)

# Installs under PREFIX, whatever $(BUILD) was configured with before
# (the prefix is set again each time), then sees to ldconfig.
install: all
	meson configure $(BUILD) -Dprefix=$(abspath $(PREFIX))
	ninja -C $(BUILD)
	meson install -C $(BUILD)
	@scripts/after-install.sh $(BUILD)

format:
	clang-format -i src/*.c src/*.h include/*.h tests/unit/*.[ch] fuzz/*.c bench/*.c examples/*.c examples/scgi/*.c

format-check:
	clang-format --dry-run -Werror src/*.c src/*.h include/*.h tests/unit/*.[ch] fuzz/*.c bench/*.c examples/*.c examples/scgi/*.c

clean:
	rm -rf $(BUILD) $(SAN) build-fuzz
