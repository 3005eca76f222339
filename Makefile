# Latch: `make run` serves on 127.0.0.1:8080 with ./auth.db; `make test` runs every test.
# Both install the Debian packages they need when missing (as root, or through sudo).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
ADDR       ?= 127.0.0.1:8080
DB         ?= ./auth.db
# CI (which sets CI=true) treats warnings as errors.
WERROR     ?= $(if $(filter true 1,$(CI)),ON,OFF)

BUILD_PKGS := g++ cmake make pkg-config libcpp-httplib-dev nlohmann-json3-dev libsqlite3-dev \
              doctest-dev libssl-dev libsodium-dev libcurl4-openssl-dev
TEST_PKGS  := python3 python3-aiosmtpd sqlite3

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps test-deps build run test asan tsan format clean

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

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/latch serve --addr $(ADDR) --db $(DB)

test: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# AddressSanitizer + UndefinedBehaviorSanitizer build running the whole suite.
asan: test-deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLATCH_SANITIZE=address -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer build running the tests that exercise concurrency (unit tests of the
# hashing gate, limits and store; the HTTP race, theft and slow-client suites). A race
# makes the server or the test exit with an error, so the run fails.
TSAN_TESTS ?= unit|http_test_races|http_test_forged_tokens|http_test_slow_clients|http_test_limits
tsan: test-deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLATCH_SANITIZE=thread -DLATCH_WERROR=$(WERROR) >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 exitcode=66 $(TSAN_OPTIONS)" \
	  ctest --output-on-failure -j $(JOBS) -R '^($(TSAN_TESTS))$$'

format:
	clang-format -i main.cpp $$(find auth db tests -name '*.cpp' -o -name '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
