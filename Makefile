# encfs: build, install, test.  GNU make.
#
#   make                      build every tool into build/bin
#   make check                install dependencies, build, run every test through prove, then
#                             the host tests again under ASan+UBSan (build-san/)
#   make check SANITIZE=1     every test, guest ones too, under ASan+UBSan only (build-san/)
#   make fuzz [FUZZ_TIME=60]  build the libFuzzer targets (clang) and run each for FUZZ_TIME seconds
#   make bench                run the benchmarks (our tools beside their peers)
#   make mutate               mutation check: test/mutations.txt applied one by one to a copy of the
#                             tree; fails if a mutation survives its tests [MUTATIONS="name..."]
#   make check STRICT=1       a skipped test fails unless test/skips.allowed lists it (the default
#                             under CI=true)
#   make install [PREFIX=/usr/local] [DESTDIR=]
#   make deps                 install build/test/demo dependencies (apt-get, npm); idempotent
#   make image [IMAGE=localhost/encfs:latest] [REBASE=1] [IIDFILE=file]
#                             the sidecar image from the Dockerfile, with buildah (sh/image/build.sh)
#
# Layout: cmd/<tool>/*.c is one tool (main.c holds main); cmd/<tool>/tool.mk may set
# <tool>_PKGS (extra pkg-config packages).  common/*.c is libcommon.a, linked into every tool.
# test/unit/<t>.c is a TAP test program; when <t> starts with "<x>-" and cmd/encfs-<x> exists it
# also links that tool's objects (all but main.c).  test/fuzz/<t>.c likewise, for libFuzzer.
# test/*.t are TAP scripts; test/bench/*.sh are benchmarks.

.SUFFIXES:
.DELETE_ON_ERROR:
.SECONDARY:
SHELL := /bin/sh

# V=1 shows the full commands
ifeq ($(V),1)
Q :=
say = @:
else
Q := @
say = @printf '  %-6s %s\n'
endif

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man

CC      ?= cc
PKG_CONFIG ?= pkg-config
BASE_PKGS := libcurl libsodium libcrypto

ifeq ($(SANITIZE),1)
B ?= build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
B ?= build
SAN_FLAGS :=
endif

# Messages are cut to their buffers on purpose; gcc's truncation warning would fire on each.
NO_TRUNC_WARN := $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && \
                   echo -Wno-format-truncation)
CSTD     := -std=c17
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
            -Wno-unused-parameter $(NO_TRUNC_WARN)
OPT      ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Icommon
CFLAGS   += $(CSTD) $(WARN) $(OPT) $(SAN_FLAGS) -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
LDFLAGS  += $(SAN_FLAGS) -pie -Wl,-z,relro,-z,now

TOOLS := $(sort $(notdir $(wildcard cmd/encfs-*)))
-include $(wildcard cmd/*/tool.mk)
ALL_PKGS := $(sort $(BASE_PKGS) $(foreach t,$(TOOLS),$($(t)_PKGS)))

pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pkg_libs   = $(shell $(PKG_CONFIG) --libs $(1))

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
COMMON_LIB := $(B)/libcommon.a

tool_src  = $(wildcard cmd/$(1)/*.c)
tool_objs = $(filter-out %/main.o,$(patsubst %.c,$(B)/%.o,$(call tool_src,$(1))))
tool_lib  = $(B)/lib$(1).a

BINS := $(TOOLS:%=$(B)/bin/%)

UNIT_SRC   := $(wildcard test/unit/*.c)
UNIT_BINS  := $(UNIT_SRC:test/unit/%.c=$(B)/test/%)
# the tool a test/unit or test/fuzz source belongs to, if any: "dmsetup-luks2" -> encfs-dmsetup
test_tool  = $(filter $(TOOLS),encfs-$(firstword $(subst -, ,$(1))))

.PHONY: all
all: $(BINS)

# --- compile -------------------------------------------------------------------------------
$(B)/common/%.o: common/%.c $(wildcard common/*.h) Makefile
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(call pkg_cflags,$(BASE_PKGS)) -c -o $@ $<

define tool_rules
$(B)/cmd/$(1)/%.o: cmd/$(1)/%.c $(wildcard cmd/$(1)/*.h) $(wildcard common/*.h) Makefile
	@mkdir -p $$(@D)
	$$(say) CC $$@
	$$(Q)$$(CC) $$(CPPFLAGS) -Icmd/$(1) $$(CFLAGS) $$(call pkg_cflags,$$(BASE_PKGS) $$($(1)_PKGS)) -c -o $$@ $$<

$(call tool_lib,$(1)): $(call tool_objs,$(1))
	@mkdir -p $$(@D)
	$$(Q)rm -f $$@ && $$(AR) rcs $$@ $$^

$(B)/bin/$(1): $(B)/cmd/$(1)/main.o $(call tool_lib,$(1)) $(COMMON_LIB)
	@mkdir -p $$(@D)
	$$(say) LINK $$@
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(call pkg_libs,$$(BASE_PKGS) $$($(1)_PKGS))
endef
$(foreach t,$(TOOLS),$(eval $(call tool_rules,$(t))))

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# --- unit tests ----------------------------------------------------------------------------
$(B)/test/%.o: test/unit/%.c test/unit/tap.h $(wildcard common/*.h) Makefile
	@mkdir -p $(@D)
	$(say) CC $@
	$(Q)$(CC) $(CPPFLAGS) -Itest/unit $(addprefix -Icmd/,$(call test_tool,$*)) $(CFLAGS) \
	  $(call pkg_cflags,$(ALL_PKGS)) -c -o $@ $<

.SECONDEXPANSION:
$(B)/test/%: $(B)/test/%.o $$(foreach t,$$(call test_tool,$$*),$$(call tool_lib,$$(t))) $(COMMON_LIB)
	$(say) LINK $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(call pkg_libs,$(ALL_PKGS))

.PHONY: tests
tests: $(BINS) $(UNIT_BINS)

# --- check ---------------------------------------------------------------------------------
# Tests find the tools through ENCFS_BIN and the sources through ENCFS_SRC.
PROVE ?= prove
PYTHON3 ?= /usr/bin/python3
PROVE_FLAGS ?= --timer
# the tests that run on this machine (the vm-* ones boot a guest kernel)
HOST_TESTS  := $(UNIT_BINS) $(filter-out test/vm-%,$(sort $(wildcard test/*.t)))
# tests that run no program of $(B) (the container image, the deployment files): the sanitized
# host-only pass of plain make check leaves them out
NO_SAN_TESTS := test/image.t test/aci.t
ifeq ($(HOST_ONLY),1)
CHECK_TESTS ?= $(filter-out $(if $(filter 1,$(SANITIZE)),$(NO_SAN_TESTS)),$(HOST_TESTS))
else
CHECK_TESTS ?= $(UNIT_BINS) $(sort $(wildcard test/*.t))
endif

# Strict mode: a skipped test is a failure unless test/skips.allowed lists it with a reason.  On by
# default under CI=true (GitHub Actions, GitLab and most CI services set it); STRICT=1 or 0 forces it.
STRICT ?= $(if $(filter true 1,$(CI)),1,0)

.PHONY: check check-run clang-build mutate
# Plain make check: every test with the gcc build, then the host tests again under ASan+UBSan
# (the guest tests prove the kernel side; a second boot of each would add minutes, not findings).
check: deps
	@$(MAKE) --no-print-directory clang-build
	@$(MAKE) --no-print-directory check-run
ifneq ($(SANITIZE),1)
	@$(MAKE) --no-print-directory SANITIZE=1 HOST_ONLY=1 check-run
endif

# the tree must build warning-free (-Werror) with clang as well as gcc
clang-build:
	@$(MAKE) --no-print-directory CC=clang B=build-clang all tests

check-run: tests
	ENCFS_BIN=$(CURDIR)/$(B)/bin ENCFS_SRC=$(CURDIR) ENCFS_BUILD=$(CURDIR)/$(B) ENCFS_STRICT=$(STRICT) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PROVE) $(PROVE_FLAGS) $(CHECK_TESTS)

# Mutation check (not part of check): each mutation of test/mutations.txt applied to a copy of the
# tree, built, and the tests it names run; reports the mutations no test catches.
# MUTATIONS="name ..." runs only those.
mutate:
	@$(PYTHON3) test/mutate.py $(MUTATIONS)

# --- fuzz ----------------------------------------------------------------------------------
FUZZ_CC   ?= clang
FUZZ_TIME ?= 30
FB        := build-fuzz
FUZZ_SRC  := $(wildcard test/fuzz/*.c)
# FUZZ_TARGETS="config-load common-json" runs only those
FUZZ_TARGETS ?= $(FUZZ_SRC:test/fuzz/%.c=%)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FB)/fuzz/%)

.PHONY: fuzz fuzz-build
fuzz-build:
	@$(MAKE) --no-print-directory B=$(FB) CC=$(FUZZ_CC) \
	  SAN_FLAGS='-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
	  $(FUZZ_BINS)

$(FB)/fuzz/%: test/fuzz/%.c $$(foreach t,$$(call test_tool,$$*),$(FB)/lib$$(t).a) $(FB)/libcommon.a
	@mkdir -p $(@D)
	$(say) FUZZ $@
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -Itest/unit $(addprefix -Icmd/,$(call test_tool,$*)) $(CSTD) $(WARN) -O1 -g \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  $(call pkg_cflags,$(ALL_PKGS)) -o $@ $^ $(call pkg_libs,$(ALL_PKGS))

fuzz: fuzz-build
	@set -e; for f in $(FUZZ_BINS); do \
	  n=$${f##*/}; mkdir -p $(FB)/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_TIME)s"; \
	  $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 $(FB)/corpus/$$n test/fuzz/corpus/$$n \
	    2>$(FB)/fuzz-$$n.log || { tail -40 $(FB)/fuzz-$$n.log; exit 1; }; \
	  grep -E '^(stat::number_of_executed_units|cov:|#[0-9]+.*DONE)' $(FB)/fuzz-$$n.log | tail -2; \
	done

# --- bench ---------------------------------------------------------------------------------
.PHONY: bench
bench: deps
	@$(MAKE) --no-print-directory all
	@set -e; for b in $(sort $(wildcard test/bench/*.sh)); do \
	  echo "== $$b"; ENCFS_BIN=$(CURDIR)/$(B)/bin ENCFS_SRC=$(CURDIR) sh $$b; done

# --- install -------------------------------------------------------------------------------
MAN1 := $(wildcard man/*.1)
MAN5 := $(wildcard man/*.5)
MAN7 := $(wildcard man/*.7)

.PHONY: install
install: $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0755 sh/encfs.sh $(DESTDIR)$(BINDIR)/encfs.sh
	$(if $(MAN1),install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/)
	$(if $(MAN5),install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/)
	$(if $(MAN7),install -m 0644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/)

# --- image ---------------------------------------------------------------------------------
# The Dockerfile built with buildah, no daemon or registry; its base images made from Debian's
# packages when absent (REBASE=1 makes them again).  See sh/image/build.sh.
IMAGE ?= localhost/encfs:latest
.PHONY: image
image:
	@sh test/deps.sh buildah mmdebstrap uidmap
	@sh sh/image/build.sh --tag '$(IMAGE)' $(if $(IIDFILE),--iidfile '$(IIDFILE)') $(if $(filter 1,$(REBASE)),--rebase)

# --- deps, demo, housekeeping --------------------------------------------------------------
.PHONY: deps demo clean lint
deps:
	@sh test/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@ENCFS_BUILD=$(CURDIR)/$(B) ENCFS_BIN=$(CURDIR)/$(B)/bin ENCFS_SRC=$(CURDIR) sh test/demo.sh

lint:
	shellcheck -s sh sh/encfs.sh test/*.sh test/*.t test/bench/*.sh

clean:
	rm -rf build build-san build-fuzz build-clang
