# tcpfork entry point. CMake does the building underneath; this file is the
# contract users and CI rely on: `make run` and `make test` do all the set-up.

BUILD_DIR  ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
RUN_ARGS   ?=
PREFIX     ?= /usr/local
DESTDIR    ?=
SOAK_SECONDS ?= 60
# The Debian packages' build tree: a copy of the source, because
# dpkg-buildpackage writes its results beside the source directory.
DEB_DIR    ?= build-deb

# Debian packages the build, the tests, the benchmark and `make deb` need.
DEB_PACKAGES := gcc g++ make cmake pkg-config python3 \
	libevent-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev \
	libyaml-cpp-dev libsystemd-dev \
	libgtest-dev libgmock-dev prometheus-cpp-dev prometheus \
	libgoogle-perftools-dev google-perftools libdw-dev curl haproxy \
	scdoc man-db groff-base logrotate clang libbpf-dev bpftool python3-matplotlib \
	debhelper dpkg-dev lintian chromium systemd golang-go

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps configure build run test deb bench soak install uninstall clean asan tsan fuzz

all: build

# Installs only what is missing; `apt-get update` runs first only then.
# (`make deps DEB_PACKAGES="..."` installs another list: make fuzz uses it.)
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "deps: all Debian packages present"; \
	fi

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The master in the foreground on its built-in defaults (0.0.0.0:8888, one
# worker per core); Ctrl-C stops it. `make run RUN_ARGS="-c deploy/tcpfork.yaml"`.
run: build
	$(BUILD_DIR)/bin/tcpfork $(RUN_ARGS)

# The Debian package first: a test installs, runs and purges it (ctest -L
# package; as root, it skips otherwise).
test: build deb
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

# The Debian packages tcpfork and tcpfork-dev (and tcpfork-dbgsym), built by
# debian/rules with the Debian build flags and without the tests, checked by
# lintian (an error or warning fails), in $(BUILD_DIR)/deb/. The working tree
# as it is, tracked and new files, is copied to $(DEB_DIR)/ and built there
# from scratch; only when a file changed since the last build. The version is
# CMake's; debian/changelog must carry it (debian/rules fails otherwise).
# lintian leaves temporary files behind: in $(DEB_DIR), not /tmp.
VERSION     := $(shell sed -n 's/^project(tcpfork VERSION \([^ )]*\).*/\1/p' CMakeLists.txt)
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null)
DEB_FILE    := $(BUILD_DIR)/deb/tcpfork_$(VERSION)_$(DEB_ARCH).deb
DEB_SOURCES := $(wildcard $(shell git ls-files --cached --others --exclude-standard 2>/dev/null || \
	find * -path 'build*' -prune -o -type f -print))
deb: deps $(DEB_FILE)

$(DEB_FILE): $(DEB_SOURCES) | deps
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/tcpfork-$(VERSION)
	tar -cf - $(DEB_SOURCES) | tar -xf - -C $(DEB_DIR)/tcpfork-$(VERSION)
	cd $(DEB_DIR)/tcpfork-$(VERSION) && dpkg-buildpackage -us -uc -b -j$(JOBS)
	mkdir -p $(DEB_DIR)/lintian-tmp && TMPDIR="$(abspath $(DEB_DIR))/lintian-tmp" \
	  lintian --fail-on error,warning $(DEB_DIR)/tcpfork_$(VERSION)_$(DEB_ARCH).changes
	mkdir -p $(BUILD_DIR)/deb && rm -f $(BUILD_DIR)/deb/*.deb && cp $(DEB_DIR)/*.deb $(BUILD_DIR)/deb/
	@test -f $@ || { echo "deb: no $@ (is $(VERSION) the version in debian/changelog?)"; exit 1; }

# Binaries, man pages, the example config, the logrotate snippet and the
# systemd units (see cmake/install.cmake). `make install PREFIX=/usr
# DESTDIR=/tmp/stage` stages a package; with PREFIX=/usr the config goes to
# /etc/tcpfork, otherwise to $(PREFIX)/etc/tcpfork. An existing config is kept.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix "$(PREFIX)"
	{ echo 'DESTDIR=$(DESTDIR)'; cat "$(BUILD_DIR)/install_manifest.txt"; } > "$(BUILD_DIR)/installed.txt"

# Removes what the last `make install` put in place (recorded with its
# DESTDIR in build/installed.txt); keeps the config and the logrotate
# snippet, as removing a Debian package does.
uninstall:
	cmake -DINSTALLED="$(BUILD_DIR)/installed.txt" -P cmake/uninstall.cmake

# Plots go to $(BUILD_DIR)/bench/; matplotlib is Debian's, in the system
# interpreter (another python3 first on PATH would not have it).
bench: build
	python3 bench/run_bench.py --bin-dir $(BUILD_DIR)/bin --out $(BUILD_DIR)/bench.json $(BENCH_ARGS)
	/usr/bin/python3 bench/plots.py --bench $(BUILD_DIR)/bench.json --out-dir $(BUILD_DIR)/bench
	python3 bench/idle_memory.py --bin-dir $(BUILD_DIR)/bin
	python3 bench/idle_memory.py --bin-dir $(BUILD_DIR)/bin --worker tcpfork-worker-glibc --counts 10000
	python3 bench/steering_bench.py --bin-dir $(BUILD_DIR)/bin --out $(BUILD_DIR)/bench/steering.json
	python3 bench/overload_bench.py --bin-dir $(BUILD_DIR)/bin --out $(BUILD_DIR)/bench/overload.json
	/usr/bin/python3 bench/plots.py --overload $(BUILD_DIR)/bench/overload.json --out-dir $(BUILD_DIR)/bench

# A real master under load and chaos (kill -9, HUP, TTIN/TTOU, SIGSTOP, TRAP)
# for SOAK_SECONDS; fails on a wrong ack, a failed connect, a hung worker not
# replaced, a counter going down, a leak or anything left behind.
# `make soak SOAK_SECONDS=600 SOAK_ARGS="--seed N"` replays a run's choices.
soak: build
	python3 bench/soak.py --bin-dir $(BUILD_DIR)/bin --seconds $(SOAK_SECONDS) --json $(BUILD_DIR)/soak.json $(SOAK_ARGS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its
# own build tree. Any report fails the run.
ASAN_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPFORK_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS) --timeout 300 $(CTEST_ARGS)

# ThreadSanitizer where we use threads: the client's bench threads.
tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPFORK_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS) --target unit_tests integration_tests
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 300 -R 'Client|Histogram'

# libFuzzer (clang) on the frame decoder, the config loader and the journal's
# segment reader, each for FUZZ_SECONDS, starting from the seed corpus in
# test/fuzz/corpus (copied, so new inputs stay out of the tree). A crash
# leaves its input in build-fuzz/.
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) deps DEB_PACKAGES="cmake make pkg-config clang libclang-rt-14-dev libyaml-cpp-dev libfmt-dev libspdlog-dev nlohmann-json3-dev"
	cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTCPFORK_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	@for target in codec config journal; do \
	  mkdir -p build-fuzz/corpus/$$target && cp -n test/fuzz/corpus/$$target/* build-fuzz/corpus/$$target/; \
	  echo "fuzz: $${target}_fuzz for $(FUZZ_SECONDS) s"; \
	  (cd build-fuzz && ./bin/$${target}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=./$${target}- corpus/$$target > $$target.log 2>&1); rc=$$?; \
	  grep -E "^#[0-9]+.*(DONE|pulse)|cov:|stat::number_of_executed_units|ERROR|SUMMARY" build-fuzz/$$target.log | tail -n 6; \
	  [ $$rc -eq 0 ] || { echo "fuzz: $${target}_fuzz failed (exit $$rc); see build-fuzz/$$target.log"; exit 1; }; \
	done

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz $(DEB_DIR)
