# lockservice -- see README.md. `make` builds everything, `make test` runs the
# suite and ends with "N passed, N failed".

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
PKGS := libmicrohttpd jansson hiredis

CC ?= cc
OPT ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wconversion -Wformat=2 -Wvla -Wstrict-prototypes
CFLAGS ?=
# The one place the version is written is the file VERSION (service/version.h).
VERSION := $(shell cat VERSION)
CPPFLAGS += -D_GNU_SOURCE -I. -Iservice -I$(BUILD)/gen \
            -DLOCKSERVICE_VERSION='"$(VERSION)"'
ALL_CFLAGS = -std=c11 $(OPT) $(WARN) $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LIBS := $(shell pkg-config --libs $(PKGS)) -lpthread
LDFLAGS ?=

SERVICE_SRC := $(filter-out service/main.c,$(wildcard service/*.c service/*/*.c)) \
               $(wildcard handlers/*.c) \
               $(filter-out demo-inventory/oversell-demo.c,$(wildcard demo-inventory/*.c))
SERVICE_OBJ := $(SERVICE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded.o
LUA := $(sort $(wildcard service/lock/lua/*.lua demo-inventory/lua/*.lua))
# The browser pages (handlers/pages.c serves them).
WEB := $(sort $(wildcard web/*.* web/*/*.*))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)

.PHONY: all tests test check valgrind run demo bench fuzz safety safety-failover \
        contract lint test-browser screenshots \
        test-docker deb test-package install uninstall format format-check \
        style clean

all: lockservice oversell-demo lockctl

lockservice: $(BUILD)/service/main.o $(SERVICE_OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

# The same binary inside BUILD (e.g. the sanitized one in build-asan/).
$(BUILD)/lockservice: $(BUILD)/service/main.o $(SERVICE_OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

oversell-demo: demo-inventory/oversell-demo.c $(BUILD)/service/request.o
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $^ $(shell pkg-config --cflags --libs libcurl jansson) -lpthread

$(BUILD)/%.o: %.c $(wildcard service/*.h service/*/*.h handlers/*.h demo-inventory/*.h) $(BUILD)/gen/embedded.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -c -o $@ $<

# A new VERSION rebuilds every object (-DLOCKSERVICE_VERSION changed).
$(SERVICE_OBJ) $(BUILD)/service/main.o: VERSION

$(BUILD)/gen/embedded.h $(BUILD)/gen/embedded.c &: tools/embed.sh $(LUA) openapi.yaml $(WEB)
	@mkdir -p $(BUILD)/gen
	sh tools/embed.sh $(BUILD)/gen $(LUA) openapi.yaml $(WEB)

$(BUILD)/gen/embedded.o: $(BUILD)/gen/embedded.c
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -c -o $@ $<

tests: lockservice oversell-demo $(UNIT_BIN) $(INTEG_BIN)

$(BUILD)/tests/unit/%: tests/unit/%.c $(SERVICE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/integration/%: tests/integration/%.c $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -Itests/lib $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libcurl jansson) -lpthread

$(BUILD)/tests/lib/%.o: tests/lib/%.c $(wildcard tests/lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -Itests/lib -c -o $@ $<

# The whole suite: unit + integration against a private redis-server.
test:
	sh scripts/deps.sh test
	sh tests/run

# The same suite against an AddressSanitizer + UndefinedBehaviorSanitizer build.
check:
	sh scripts/deps.sh check
	sh tests/run --sanitize

valgrind:
	sh scripts/deps.sh valgrind
	sh tests/run --valgrind

run:
	sh scripts/run

demo:
	sh scripts/run --demo-only

bench:
	sh scripts/deps.sh bench
	sh bench/run

fuzz:
	sh scripts/deps.sh fuzz
	sh tests/fuzz/run

# Two instances, one Redis, 16+ clients, kills and Redis restarts (~90 s).
safety:
	sh scripts/deps.sh safety
	$(MAKE) lockservice
	sh tests/safety/run

# What a Sentinel failover loses: 1 master, 2 replicas, 3 sentinels, two
# instances; SENTINEL FAILOVER and SIGKILL of the master, with
# --redis-wait-replicas 0 and then 1 (~3 minutes).
safety-failover: lockservice $(BUILD)/safety/failover
	sh scripts/deps.sh safety
	FAILOVER_BIN=$(BUILD)/safety/failover sh tests/safety/failover

$(BUILD)/safety/failover: tests/safety/failover.c $(TESTLIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -Itests/lib $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libcurl jansson) -lpthread

contract:
	sh scripts/deps.sh contract
	sh tests/contract/run

# /demo/ and /ui/ in headless Chromium (tests/browser/, about a minute);
# screenshots in tests/browser/artifacts/.
test-browser:
	sh scripts/deps.sh browser
	sh tests/browser/run

# The README's screenshots (docs/screenshots/), from a test-browser run.
screenshots: test-browser
	@mkdir -p docs/screenshots
	cp tests/browser/artifacts/demo-desktop.png tests/browser/artifacts/ui-desktop.png \
	   tests/browser/artifacts/ui-phone.png docs/screenshots/

lint:
	sh scripts/deps.sh lint
	npx --yes @redocly/cli@2.77.0 lint openapi.yaml

test-docker:
	sh tests/docker/run

# The Debian package, build/deb/lockservice_$(VERSION)_<arch>.deb
# (packaging/debian/).
deb:
	sh scripts/deps.sh deb
	sh packaging/debian/build-deb

# The package installed into a clean debootstrap root and run from there;
# lintian; systemd-analyze verify on the unit (~15 s; ~1 minute the first
# time, which runs debootstrap).
test-package:
	sh scripts/deps.sh package
	sh tests/package/run

install: lockservice oversell-demo install-lockctl
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 lockservice oversell-demo $(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/lockservice $(DESTDIR)$(PREFIX)/bin/oversell-demo

format:
	sh scripts/deps.sh style
	clang-format -i service/*.[ch] service/*/*.[ch] handlers/*.[ch] demo-inventory/*.[ch] tests/*/*.[ch]

format-check:
	sh scripts/deps.sh style
	clang-format --dry-run -Werror service/*.[ch] service/*/*.[ch] handlers/*.[ch] demo-inventory/*.[ch] tests/*/*.[ch]

# clang-format's layout and no banned functions (tools/banned.sh).
style: format-check
	sh tools/banned.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz lockservice oversell-demo

# ---- lockctl (tools/lockctl/): locks for the shell, see its man page ----
LOCKCTL_SRC := $(wildcard tools/lockctl/*.c)
LOCKCTL_DEPS := $(LOCKCTL_SRC) $(wildcard tools/lockctl/*.h)
LOCKCTL_LIBS = $(shell pkg-config --cflags --libs libcurl jansson)
MANDIR ?= $(PREFIX)/share/man

.PHONY: install-lockctl uninstall-lockctl clean-lockctl format-lockctl \
        format-check-lockctl test-clients

lockctl: $(LOCKCTL_DEPS)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $(LOCKCTL_SRC) $(LOCKCTL_LIBS)

# The same inside BUILD (tests/run --sanitize tests build-asan/lockctl).
$(BUILD)/lockctl: $(LOCKCTL_DEPS)
	@mkdir -p $(BUILD)
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS) -o $@ $(LOCKCTL_SRC) $(LOCKCTL_LIBS)

tests: lockctl

install-lockctl: lockctl
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1
	install -m 755 lockctl $(DESTDIR)$(PREFIX)/bin/
	install -m 644 tools/lockctl/lockctl.1 $(DESTDIR)$(MANDIR)/man1/

uninstall: uninstall-lockctl
uninstall-lockctl:
	rm -f $(DESTDIR)$(PREFIX)/bin/lockctl $(DESTDIR)$(MANDIR)/man1/lockctl.1

clean: clean-lockctl
clean-lockctl:
	rm -f lockctl

format: format-lockctl
format-lockctl:
	sh scripts/deps.sh style
	clang-format -i tools/lockctl/*.[ch]

format-check: format-check-lockctl
format-check-lockctl:
	sh scripts/deps.sh style
	clang-format --dry-run -Werror tools/lockctl/*.[ch]

# The client libraries' tests alone (make test runs them too).
test-clients: lockservice
	sh scripts/deps.sh test
	sh tests/clients/run
