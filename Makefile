# Latch: `make run` serves on 127.0.0.1:8080 with ./auth.db; `make test` runs every test.
# Both install the Debian packages they need when missing (as root, or through sudo).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
ADDR       ?= 127.0.0.1:8080
DB         ?= ./auth.db
# CI (which sets CI=true) treats warnings as errors.
WERROR     ?= $(if $(filter true 1,$(CI)),ON,OFF)

BUILD_PKGS := g++ cmake make pkg-config libcpp-httplib-dev nlohmann-json3-dev libsqlite3-dev \
              doctest-dev libssl-dev libsodium-dev libcurl4-openssl-dev libicu-dev libcrypt-dev \
              libpq-dev
TEST_PKGS  := python3 python3-aiosmtpd python3-jwt python3-cryptography sqlite3 faketime \
              clang-format python3-bcrypt python3-argon2 python3-django python3-werkzeug whois \
              postgresql
# clang with its sanitizer and libFuzzer runtimes (the distribution's default LLVM).
FUZZ_PKGS  := clang libclang-rt-dev
FUZZ_TARGETS := fuzz_jwt fuzz_body fuzz_routes fuzz_framing

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps test-deps fuzz-deps build run test test-long asan tsan fuzz format clean

all: build

# Installs only what dpkg says is missing, so a set-up machine pays nothing.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing missing packages:" $$missing; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(BUILD_PKGS))

test-deps: deps
	$(call install_missing,$(TEST_PKGS))

fuzz-deps: deps
	$(call install_missing,$(FUZZ_PKGS))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/latch serve --addr $(ADDR) --db $(DB)

test: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite with the slow scenarios (crash cycles) repeated many more times.
test-long: test-deps build
	cd $(BUILD) && LATCH_LONG_TESTS=1 ctest --output-on-failure -j $(JOBS)

# AddressSanitizer + UndefinedBehaviorSanitizer build running the whole suite.
asan: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLATCH_SANITIZE=address -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer build running the tests that exercise concurrency (unit tests of the
# hashing gate, limits and store; the HTTP race, theft and slow-client suites). A race
# makes the server or the test exit with an error, so the run fails.
TSAN_TESTS ?= unit|http_test_races|http_test_forged_tokens|http_test_floods|http_test_limits|http_test_framing|http_test_lockout|http_test_faults
tsan: test-deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATCH_SANITIZE=thread -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$(abspath tests/tsan.supp) $(TSAN_OPTIONS)" \
	  ctest --output-on-failure -j $(JOBS) -R '^($(TSAN_TESTS))$$'

# libFuzzer (clang, ASan + UBSan) runs each target in tests/fuzz for FUZZ_SECONDS on a copy of
# its seeds in $(FUZZ_BUILD)/corpus, which keeps what earlier runs found; the source tree is
# never written. A crash fails the run and leaves its input in $(FUZZ_BUILD)/crashes/TARGET.
fuzz: fuzz-deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DLATCH_FUZZ=ON -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)
	@failed=; for t in $(FUZZ_TARGETS); do \
	  rm -rf $(FUZZ_BUILD)/crashes/$$t && mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t && \
	  cp tests/fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/ && \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
	  ./$(FUZZ_BUILD)/tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ $(FUZZ_BUILD)/corpus/$$t \
	    >$(FUZZ_BUILD)/$$t.log 2>&1; rc=$$?; \
	  grep -E '^Done [0-9]+ runs' $(FUZZ_BUILD)/$$t.log | sed "s/^/fuzz: $$t: /"; \
	  if [ $$rc != 0 ]; then \
	    tail -n 40 $(FUZZ_BUILD)/$$t.log; failed="$$failed $$t"; \
	    echo "fuzz: $$t FAILED (exit $$rc): log $(FUZZ_BUILD)/$$t.log, input in $(FUZZ_BUILD)/crashes/$$t"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi

# Applies .clang-format to every C++ file; the ctest entry `format` (tests/format.sh) fails on a
# file that differs from it.
format:
	clang-format -i $$(sh tests/format.sh --list)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

# Benchmarks (bench/run, results in BENCHMARKS.md): wrk against $(BUILD)/latch, Django + SimpleJWT
# and a Node server (peers are installed here; one that cannot be is skipped, and bench/run says
# why), a bare cpp-httplib route and raw argon2id. BENCH_SECONDS (10), BENCH_RUNS (3) and
# BENCH_ONLY (e.g. latch,getuser; faults,scale: Latch under faults and at a million sessions;
# latch_pg,latch_pg2,roundtrips: Latch on a throwaway PostgreSQL, two behind HAProxy) pick what runs. `make soak`: mixed traffic on Latch alone for SOAK_SECONDS, sampling memory and
# database size; any failed request fails it.
BENCH_PKGS        := wrk gnuplot-nox g++ pkg-config libcpp-httplib-dev libsodium-dev postgresql haproxy
BENCH_DJANGO_PKGS := python3-django python3-djangorestframework \
                     python3-djangorestframework-simplejwt python3-argon2 gunicorn
BENCH_BIN         := bench/out/bin
BENCH_CEILINGS    := $(BENCH_BIN)/ceiling_http $(BENCH_BIN)/ceiling_argon2 $(BENCH_BIN)/token_cost
SOAK_SECONDS      ?= 600

.PHONY: bench soak bench-deps bench-peers

bench-deps: deps
	$(call install_missing,$(BENCH_PKGS))

# Not fatal: a peer that cannot be installed is left out of the results, with the reason.
bench-peers: bench-deps
	-$(call install_missing,$(BENCH_DJANGO_PKGS))
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  echo "Installing missing packages: nodejs npm"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm \
	  || echo "bench: nodejs and npm could not be installed: the Node peer will be skipped"; \
	fi
	@mkdir -p bench/out
	@cd bench/peers/node && if [ node_modules/.installed -nt package-lock.json ]; then :; \
	elif ! command -v npm >/dev/null; then echo "bench: no npm: the Node peer will be skipped"; \
	else echo "bench: npm ci in bench/peers/node (log: bench/out/npm-ci.log)"; \
	  nodedir=$$([ -f /usr/include/node/node.h ] && echo /usr); \
	  if env $${nodedir:+npm_config_nodedir=$$nodedir} npm ci --no-audit --no-fund >../../out/npm-ci.log 2>&1; \
	  then touch node_modules/.installed; \
	  else echo "bench: npm ci failed (bench/out/npm-ci.log): the Node peer will be skipped"; rm -rf node_modules; fi; \
	fi

# Bare cpp-httplib, or (argument `loop`) Latch's connection loop under it: auth/http/connection_loop.cpp.
CEILING_HTTP_SRCS := bench/ceiling_http.cpp auth/http/connection_loop.cpp auth/http/framing.cpp

$(BENCH_BIN)/ceiling_http: $(CEILING_HTTP_SRCS) auth/http/connection_loop.h auth/http/framing.h | bench-deps
	@mkdir -p $(BENCH_BIN)
	g++ -std=c++20 -O2 -Wall -Wextra -I. -o $@ $(CEILING_HTTP_SRCS) \
	  $$(pkg-config --cflags --libs cpp-httplib) -lssl -lcrypto -pthread

# Linked like Latch (CMakeLists.txt): static libsodium with its mmap and munmap wrapped.
$(BENCH_BIN)/ceiling_argon2: bench/ceiling_argon2.cpp auth/password.cpp auth/password.h | bench-deps
	@mkdir -p $(BENCH_BIN)
	g++ -std=c++20 -O2 -Wall -Wextra -I. -o $@ bench/ceiling_argon2.cpp auth/password.cpp \
	  $$(pkg-config --cflags libsodium) $$(pkg-config --variable=libdir libsodium)/libsodium.a \
	  -Wl,--wrap=mmap -Wl,--wrap=munmap -pthread

# A signature's cost: Latch's TokenCodec with each alg (auth/tokens.cpp), one thread.
$(BENCH_BIN)/token_cost: bench/token_cost.cpp auth/tokens.cpp auth/tokens.h auth/secure.cpp | bench-deps
	@mkdir -p $(BENCH_BIN)
	g++ -std=c++20 -O2 -Wall -Wextra -I. -o $@ bench/token_cost.cpp auth/tokens.cpp auth/secure.cpp \
	  $$(pkg-config --cflags --libs libsodium) -lssl -lcrypto

bench: bench-peers build $(BENCH_CEILINGS)
	BENCH_LATCH=$(abspath $(BUILD))/latch /usr/bin/python3 bench/run

soak: bench-deps build
	BENCH_LATCH=$(abspath $(BUILD))/latch SOAK_SECONDS=$(SOAK_SECONDS) /usr/bin/python3 bench/soak

# Browser tests (tests/e2e, the ctest entries e2e_reset_password, e2e_cors and e2e_console): Debian's Chromium
# and the tests' npm packages (playwright-core, which never downloads a browser); without them
# `make test` skips those tests. npm ci runs again only when package-lock.json is newer than the
# last install. `make screenshots` runs the reset-page and console tests once, saving each page
# state to docs/screenshots/*.png.
E2E_PKGS := chromium
E2E_DIR  := tests/e2e

.PHONY: e2e-deps screenshots

e2e-deps:
	$(call install_missing,$(E2E_PKGS))
	@command -v npm >/dev/null || { echo "e2e-deps: npm not found: install Node.js 20+ with npm"; exit 1; }
	@cd $(E2E_DIR) && if [ node_modules/.installed -nt package-lock.json ]; then :; else \
	  echo "npm ci in $(E2E_DIR)"; \
	  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund && touch node_modules/.installed; \
	fi

screenshots: e2e-deps test-deps build
	LATCH_E2E_SCREENSHOTS=docs/screenshots node $(E2E_DIR)/reset_password.test.mjs $(BUILD)/latch
	LATCH_E2E_SCREENSHOTS=docs/screenshots node $(E2E_DIR)/console.test.mjs $(BUILD)/latch

# The OpenAPI test (tests/openapi, the ctest entry openapi_document): its npm packages (an
# OpenAPI 3.1 validator, openapi-typescript, TypeScript, openapi-fetch, ajv); without them
# `make test` skips that test. npm ci runs again only when package-lock.json is newer than the
# last install.
OPENAPI_DIR := tests/openapi

.PHONY: openapi-deps

openapi-deps:
	@command -v npm >/dev/null || { echo "openapi-deps: npm not found: install Node.js 20+ with npm"; exit 1; }
	@cd $(OPENAPI_DIR) && if [ node_modules/.installed -nt package-lock.json ]; then :; else \
	  echo "npm ci in $(OPENAPI_DIR)"; \
	  npm ci --no-audit --no-fund && touch node_modules/.installed; \
	fi

# Installation and packaging (rules in CMakeLists.txt and packaging/). `make install` copies the
# build to PREFIX (default /usr/local; use sudo), under DESTDIR when set; PREFIX=/usr also puts
# the systemd unit in /lib/systemd/system and the settings in /etc/latch/latch.env, as the
# package does. `make deb` writes $(BUILD)/latch_VERSION_ARCH.deb (cpack; dpkg-shlibdeps, from
# dpkg-dev, works out its Depends).
PREFIX   ?= /usr/local
DEB_PKGS := dpkg-dev file

.PHONY: install deb deb-deps

deb-deps: deps
	$(call install_missing,$(DEB_PKGS))

# The package test (tests/package, in `make test`) builds the .deb too.
test-deps: deb-deps

install: build
	DESTDIR="$(if $(DESTDIR),$(abspath $(DESTDIR)))" cmake --install $(BUILD) --prefix $(PREFIX) --strip

deb: deb-deps build
	cd $(BUILD) && cpack -G DEB
