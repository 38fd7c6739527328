# lossweight -- a plain Makefile.
#
#   make            build build/lossweightd, build/lossweight, the libraries
#   make run        install missing packages, build, start lossweightd on 127.0.0.1:7070
#   make test       install missing packages, build, run every test
#   make check      unit + integration tests under AddressSanitizer + UBSan (build-san/)
#   make bench      benchmarks (figures, not pass/fail)
#   make fuzz       longer libFuzzer runs: request bodies, journal/snapshot recovery
#   make install    PREFIX=/usr/local DESTDIR= (GNU dirs)
#   make deps       apt-get the Debian packages we build and test with
#
# BUILD=dir puts every output under dir (default build/), so several builds
# (plain, sanitizers, another compiler) can live side by side.

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
LIBDIR   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR  ?= $(PREFIX)/share
MANDIR   ?= $(DATADIR)/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
PYTHON   ?= /usr/bin/python3

# gnutls: libmicrohttpd's TLS goes through it; the daemon also uses it for
# the certificate check (server/tls.c) and SHA-256 of bearer tokens (server/auth.c).
PKGS     := libmicrohttpd libcjson libuv gnutls
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# Dense linear algebra: LAPACKE over Debian's *reference* LAPACK and BLAS
# (packages liblapack3, libblas3), pinned by RPATH. The system-wide
# libblas.so.3 alternative is often OpenBLAS, which starts its own thread
# pool and picks kernels per CPU model: slower on our T x T matrices and not
# bit-reproducible across machines. The reference libraries are one plain
# compiled implementation, single-threaded: the same bits everywhere.
# (--disable-new-dtags: an RPATH also governs liblapacke's own dependency.)
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
REFLAPACK := /usr/lib/$(MULTIARCH)/lapack
REFBLAS   := /usr/lib/$(MULTIARCH)/blas
LAPACK_LIBS := -L$(REFLAPACK) -L$(REFBLAS) -Wl,--disable-new-dtags,-rpath,$(REFLAPACK):$(REFBLAS) \
               -Wl,--no-as-needed -llapacke -llapack -lblas -Wl,--as-needed

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
OPT      ?= -O2 -g
CFLAGS   ?= $(OPT)
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fPIC -Ilib -Iserver $(DEP_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  ?=
# V=1 shows full command lines.
V ?= 0
ifeq ($(V),0)
Q = @
say = @printf '  %-6s %s\n' $(1) $(2);
endif
ALL_LDFLAGS := $(LDFLAGS) $(EXTRA_LDFLAGS)

LIB_SRC  := $(sort $(wildcard lib/*.c) $(wildcard lib/methods/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
# wire.c: JSON <-> library structs, shared by the daemon and the tool.
WIRE_SRC := server/wire.c
WIRE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(WIRE_SRC)))
# Recovery -- reading a data directory as start-up does -- and what it
# drives, without the daemon's HTTP and loop-side files: linked into the
# tool (`lossweight check`) and the journal fuzz target, with
# RECOVERY_STUBS standing in for the rest. The daemon links the real rest.
RECOVERY_SRC := $(addprefix server/,recovery.c persist.c crc32c.c jobs.c steps.c state.c \
                  history.c log.c names.c)
RECOVERY_STUBS := server/recovery_stubs.c
SRV_SRC  := $(filter-out $(WIRE_SRC) $(RECOVERY_STUBS) server/main.c,$(sort $(wildcard server/*.c)))
SRV_OBJ  := $(SRV_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := tools/lossweight.c tools/check.c
TOOL_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(TOOL_SRC) $(RECOVERY_SRC) $(RECOVERY_STUBS))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

LIBA     := $(BUILD)/liblossweight.a
LIBSO    := $(BUILD)/liblossweight.so
DAEMON   := $(BUILD)/lossweightd
TOOL     := $(BUILD)/lossweight

.PHONY: all lib test unit check bench bench-deps fuzz fuzz-short install uninstall deps run clean \
        integration e2e refdata

all: $(LIBA) $(LIBSO) $(TOOL) $(if $(wildcard server/main.c),$(DAEMON))

lib: $(LIBA)

$(BUILD)/%.o: %.c $(wildcard lib/*.h server/*.h tools/*.h)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(call say,AR,$@)ar rcs $@ $^

$(LIBSO): $(LIB_OBJ)
	$(call say,LD,$@)$(CC) -shared -Wl,-soname,liblossweight.so.0 -o $@ $^ $(ALL_LDFLAGS) $(LAPACK_LIBS) -lm

$(TOOL): $(TOOL_OBJ) $(WIRE_OBJ) $(LIBA)
	$(call say,LD,$@)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(DEP_LIBS) $(LAPACK_LIBS) -lm

$(DAEMON): $(BUILD)/server/main.o $(SRV_OBJ) $(WIRE_OBJ) $(LIBA)
	$(call say,LD,$@)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(DEP_LIBS) $(LAPACK_LIBS) -lm

$(BUILD)/tests/%: tests/unit/%.c $(WIRE_OBJ) $(LIBA) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Itests/unit -o $@ $< $(WIRE_OBJ) $(LIBA) \
	    $(ALL_LDFLAGS) $(CMOCKA_LIBS) $(DEP_LIBS) $(LAPACK_LIBS) -lm

# Unit tests that #include a server file: rebuilt when it changes.
$(BUILD)/tests/test_auth: server/auth.c server/log.c server/names.c
$(BUILD)/tests/test_crc32c: server/crc32c.c

# The C client (clients/c, libcurl) and its test against a live daemon.
$(BUILD)/clients/c/lwc.o: clients/c/lwc.c clients/c/lwc.h
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) $(CURL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_c_client: tests/unit/test_c_client.c $(BUILD)/clients/c/lwc.o
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) $(CURL_CFLAGS) -Wno-missing-prototypes -Iclients/c -o $@ $^ \
	    $(ALL_LDFLAGS) $(CMOCKA_LIBS) $(CURL_LIBS) $(DEP_LIBS) -lm

$(BUILD)/bench/%: tests/bench/%.c $(WIRE_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(WIRE_OBJ) $(LIBA) \
	    $(ALL_LDFLAGS) $(DEP_LIBS) $(LAPACK_LIBS) -lm

# ---- tests ----

# Unit tests: every tests/unit/test_*.c is one cmocka program. They find the
# reference vectors through LW_REFDATA and the tool through LW_TOOL.
unit: $(UNIT_BIN) $(TOOL)
	@LW_REFDATA=tests/refdata LW_TOOL=$(TOOL) LW_DAEMON=$(DAEMON) tests/run.sh unit $(UNIT_BIN)

integration: all
	@LW_BUILD=$(BUILD) tests/run.sh pytest tests/integration

# Clients and a real two-rank DDP training run (python3-torch).
e2e: all
	@LW_BUILD=$(BUILD) tests/run.sh pytest tests/e2e

# Every suite runs even if an earlier one failed; the last line is the total.
# A suite that fails before it runs anything (a test that does not build)
# counts as one failure, so the total never reads 0 failed after an error.
test: deps
	@$(MAKE) --no-print-directory all
	@tally=$$(mktemp); st=0; \
	for suite in unit fuzz-short integration e2e; do \
	    before=$$(wc -l < $$tally); \
	    if ! LW_TALLY=$$tally $(MAKE) --no-print-directory $$suite; then \
	        st=1; \
	        if [ "$$(wc -l < $$tally)" = "$$before" ]; then \
	            echo "$$suite: did not run (see above): counted as 1 failed"; \
	            echo "0 1" >> $$tally; fi; \
	    fi; \
	done; \
	LW_TALLY=$$tally tests/run.sh total || st=1; rm -f $$tally; exit $$st

# Sanitizers: a separate build tree (clang), the unit and daemon integration
# tests against it (the e2e training run is left to `make test`). The tree is
# build-san/, or BUILD when given on the command line (`make BUILD=dir check`:
# give it a directory of its own, not one a plain build uses).
SAN_BUILD := $(if $(filter command line,$(origin BUILD)),$(BUILD),build-san)
check: deps
	$(MAKE) BUILD=$(SAN_BUILD) CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" all unit integration

# tests/bench/*.sh get BUILD; http_bench.sh needs nginx-light and wrk,
# durability_bench.sh redis-server and wrk (bench-deps).
bench: all $(BENCH_BIN) bench-deps
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done
	@if ls tests/bench/*.sh >/dev/null 2>&1; then \
	    for s in tests/bench/*.sh; do echo "== $$s"; BUILD=$(BUILD) bash $$s || exit 1; done; fi

# ---- fuzzing ----
# Two libFuzzer targets, everything built with clang, ASan and UBSan into
# $(BUILD)/fuzz/, where their corpora also live:
#   tests/fuzz/fuzz_body.c     the request-body path (server/body.c,
#                              server/wire.c, lib/)
#   tests/fuzz/fuzz_journal.c  the durability reader: recovery's decoding and
#                              applying of snapshot and journal files
#                              (server/persist.c and what it drives); its seeds
#                              come from running $(DAEMON) (seed_journal.sh)
# `make fuzz` runs each for FUZZ_SECONDS; `make test` runs FUZZ_SHORT_SECONDS
# of each (fuzz-short), tallied like unit tests.
FUZZ_CC            ?= clang
FUZZ_SECONDS       ?= 300
FUZZ_SHORT_SECONDS ?= 20
FUZZ_DIR    := $(BUILD)/fuzz
FUZZ_BIN    := $(FUZZ_DIR)/fuzz_body
FUZZ_JOURNAL_BIN := $(FUZZ_DIR)/fuzz_journal
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -Ilib -Iserver $(DEP_CFLAGS) -O1 -g \
               -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ    := $(patsubst %.c,$(FUZZ_DIR)/%.o,$(LIB_SRC) $(WIRE_SRC) server/body.c)
# recovery and what it drives, as the tool links it
FUZZ_JOURNAL_OBJ := $(patsubst %.c,$(FUZZ_DIR)/%.o,$(LIB_SRC) $(WIRE_SRC) $(RECOVERY_SRC) \
               $(RECOVERY_STUBS))

$(FUZZ_DIR)/%.o: %.c $(wildcard lib/*.h server/*.h)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BIN): tests/fuzz/fuzz_body.c $(FUZZ_OBJ)
	$(call say,LD,$@)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ \
	    $(DEP_LIBS) $(LAPACK_LIBS) -lm

$(FUZZ_JOURNAL_BIN): tests/fuzz/fuzz_journal.c $(FUZZ_JOURNAL_OBJ)
	$(call say,LD,$@)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ \
	    $(DEP_LIBS) $(LAPACK_LIBS) -lm

fuzz: $(FUZZ_BIN) $(FUZZ_JOURNAL_BIN) $(DAEMON)
	@st=0; \
	LW_FUZZ=$(FUZZ_BIN) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh || st=1; \
	LW_FUZZ=$(FUZZ_JOURNAL_BIN) LW_DAEMON=$(DAEMON) FUZZ_SECONDS=$(FUZZ_SECONDS) \
	    tests/fuzz/run.sh || st=1; exit $$st

fuzz-short: $(FUZZ_BIN) $(FUZZ_JOURNAL_BIN) $(DAEMON)
	@st=0; \
	LW_FUZZ=$(FUZZ_BIN) FUZZ_SECONDS=$(FUZZ_SHORT_SECONDS) tests/run.sh unit tests/fuzz/run.sh || st=1; \
	LW_FUZZ=$(FUZZ_JOURNAL_BIN) LW_DAEMON=$(DAEMON) FUZZ_SECONDS=$(FUZZ_SHORT_SECONDS) \
	    tests/run.sh unit tests/fuzz/run.sh || st=1; exit $$st

# ---- packages ----

DEBS := build-essential pkg-config clang libmicrohttpd-dev libcjson-dev libuv1-dev \
        libcmocka-dev liblapacke-dev liblapack3 libblas3 python3 python3-pytest \
        python3-jsonschema python3-yaml curl libcurl4-openssl-dev python3-torch \
        libclang-rt-14-dev libgnutls28-dev openssl
# What tests/bench/http_bench.sh compares lossweightd with, and drives it by.
BENCH_DEBS := nginx-light wrk
# ... and what tests/bench/durability_bench.sh compares it with.
BENCH_DEBS += redis-server redis-tools
deps:
	@missing=""; for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' \
	        || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

bench-deps:
	@$(MAKE) --no-print-directory deps DEBS="$(BENCH_DEBS)"

run: deps
	$(MAKE) all
	@mkdir -p var
	$(DAEMON) --listen 127.0.0.1:7070 --data-dir var

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(TOOL) $(DESTDIR)$(BINDIR)/lossweight
	[ ! -f $(DAEMON) ] || install -m 0755 $(DAEMON) $(DESTDIR)$(SBINDIR)/lossweightd
	install -m 0644 $(LIBA) $(DESTDIR)$(LIBDIR)/liblossweight.a
	install -m 0755 $(LIBSO) $(DESTDIR)$(LIBDIR)/liblossweight.so.0
	ln -sf liblossweight.so.0 $(DESTDIR)$(LIBDIR)/liblossweight.so
	install -m 0644 lib/lossweight.h $(DESTDIR)$(INCLUDEDIR)/lossweight.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@LAPACK_LIBS@|$(LAPACK_LIBS)|' \
	    lib/lossweight.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/lossweight.pc
	install -m 0644 doc/lossweight.1 $(DESTDIR)$(MANDIR)/man1/lossweight.1
	install -m 0644 doc/lossweightd.8 $(DESTDIR)$(MANDIR)/man8/lossweightd.8
	if [ -d systemd ] && ls systemd/*.service >/dev/null 2>&1; then \
	    install -d $(DESTDIR)$(SYSTEMDUNITDIR) && \
	    sed -e 's|@SBINDIR@|$(SBINDIR)|' systemd/lossweightd.service \
	        > $(DESTDIR)$(SYSTEMDUNITDIR)/lossweightd.service && \
	    install -m 0644 systemd/lossweightd.socket $(DESTDIR)$(SYSTEMDUNITDIR)/lossweightd.socket; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/lossweight $(DESTDIR)$(SBINDIR)/lossweightd \
	    $(DESTDIR)$(LIBDIR)/liblossweight.a $(DESTDIR)$(LIBDIR)/liblossweight.so* \
	    $(DESTDIR)$(INCLUDEDIR)/lossweight.h $(DESTDIR)$(LIBDIR)/pkgconfig/lossweight.pc \
	    $(DESTDIR)$(MANDIR)/man1/lossweight.1 $(DESTDIR)$(MANDIR)/man8/lossweightd.8 \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/lossweightd.service $(DESTDIR)$(SYSTEMDUNITDIR)/lossweightd.socket

# For tests that link the library into their own programs.
print-lapack-libs:
	@echo $(ALL_LDFLAGS) $(LAPACK_LIBS)
print-cc:
	@echo $(CC)

clean:
	rm -rf build build-san build-*
