# buoy - build, test and demo.
#
#   make            release build: build/buoy and build/libbuoy.a
#   make demo       install deps, build, run the main job (scripts/demo.sh)
#   make check      install deps, build with ASan+UBSan, run every test with prove
#   make unit       only the C unit tests (ASan build)
#   make test T=tests/t0100-store-dir.sh   one test, verbose
#   make stress     thousands of kill -9 / crash-point trials of the volume writer
#   make format     clang-format every source file
#   make bench      install bench deps, build, run bench/run.sh (buoy vs s3backer,
#                   about 25 minutes on 2 cores; BENCH_QUICK=1 for a few-minute trial)
#                   -> bench/RESULTS.md
#   make install    the binary, the nbdkit plugin, the man pages and the systemd
#                   units under PREFIX (default /usr/local), staged under DESTDIR
#   make uninstall  remove exactly what make install put there

CC      ?= cc
# make V=1 shows the full commands
ifeq ($(V),1)
  Q :=
else
  Q := @
endif
PKGS    := libcurl openssl expat json-c libxxhash fuse3 libzstd libsodium
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wformat=2 -Wvla -Wno-format-truncation
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -pthread $(WARN) \
           -Isrc $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm

MODE ?= release
ifeq ($(MODE),asan)
  OUT    := build-asan
  CFLAGS_MODE := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=undefined
  # buoy serve runs the (instrumented) plugin inside nbdkit, which is not:
  # the ASan runtime has to be preloaded into nbdkit (src/cli/cmd_serve.c).
  CFLAGS_MODE += -DBUOY_ASAN_RUNTIME='"$(shell $(CC) -print-file-name=libasan.so)"'
  LDFLAGS_MODE := -fsanitize=address,undefined
else
  OUT    := build
  CFLAGS_MODE := -O2 -g
  LDFLAGS_MODE :=
endif
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS_MODE) $(CFLAGS)
ALL_LDFLAGS := $(LDFLAGS_MODE) $(LDFLAGS)

LIB_SRCS  := $(wildcard src/util/*.c src/store/*.c src/aws/*.c src/vol/*.c src/ha/*.c src/fs/*.c)
# Frontends linked into the buoy binary (the nbdkit plugin, src/fe/nbdkit_*.c,
# is a shared object of its own).
FE_SRCS   := $(filter-out src/fe/nbdkit_%.c,$(wildcard src/fe/*.c))
CLI_SRCS  := $(wildcard src/cli/*.c) $(FE_SRCS)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
# The nbdkit plugin: the library and the plugin compiled again as PIC, with
# only plugin_init visible, linked into one shared object nbdkit dlopen()s.
PLUGIN_SRCS := $(filter-out src/fs/%,$(LIB_SRCS)) src/fe/statsfile.c $(wildcard src/fe/nbdkit_*.c)
PLUGIN_OBJS := $(PLUGIN_SRCS:%.c=$(OUT)/pic/%.o)
PLUGIN    := $(OUT)/nbdkit-buoy-plugin.so
BENCH_SRCS := $(wildcard bench/*.c)

LIB_OBJS  := $(LIB_SRCS:%.c=$(OUT)/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(OUT)/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(OUT)/tests/%)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(OUT)/tools/%)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(OUT)/bench/%)

.PHONY: all asan deps demo check unit test stress format clean bench install uninstall
all: $(OUT)/buoy $(OUT)/libbuoy.a $(PLUGIN) $(UNIT_BINS) $(TOOL_BINS) $(BENCH_BINS)

$(OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(OUT)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC PIC  $@")
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $< -o $@

$(PLUGIN): $(PLUGIN_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -o $@ $(PLUGIN_OBJS) $(LDLIBS)

$(OUT)/libbuoy.a: $(LIB_OBJS)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)ar rcs $@ $^

$(OUT)/buoy: $(CLI_OBJS) $(OUT)/libbuoy.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(OUT)/libbuoy.a $(LDLIBS)

$(OUT)/tests/%: $(OUT)/tests/unit/%.o $(OUT)/libbuoy.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(OUT)/libbuoy.a $(LDLIBS)

$(OUT)/tools/%: $(OUT)/tests/tools/%.o $(OUT)/libbuoy.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(OUT)/libbuoy.a $(LDLIBS)

# crypt_speed measures a store layer itself, so it links libbuoy.
$(OUT)/bench/crypt_speed: $(OUT)/bench/crypt_speed.o $(OUT)/libbuoy.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(OUT)/libbuoy.a $(LDLIBS)

# The other bench programs stand alone (they do not link libbuoy).
$(OUT)/bench/%: $(OUT)/bench/%.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LDLIBS)

asan:
	$(MAKE) MODE=asan all

deps:
	scripts/deps.sh

demo: deps
	$(MAKE) all
	scripts/demo.sh

# Tests run against the sanitizer build.  prove runs the C unit tests
# (build-asan/tests/test_*) and the shell integration tests (tests/t*.sh).
check: deps
	$(MAKE) MODE=asan all
	scripts/run-tests.sh

unit:
	$(MAKE) MODE=asan all
	prove -v build-asan/tests/test_*

test:
	$(MAKE) MODE=asan all
	BUOY_OUT=build-asan prove -v $(T)

# Thousands of crash trials of the volume writer (make check runs 250).
stress:
	$(MAKE) MODE=asan all
	TRIALS=$${TRIALS:-2000} prove -v build-asan/tests/test_vol_crash

# The benchmarks use the release build.
bench:
	scripts/deps.sh --bench
	$(MAKE) MODE=release all
	bench/run.sh

# Installing.  buoy serve looks for the plugin beside its own executable,
# then in ../lib/buoy beside it (src/cli/cmd_serve.c), so BINDIR and
# PLUGINDIR stay siblings under PREFIX.  The units in contrib/ name
# /usr/local/bin/buoy; they are installed naming $(BINDIR)/buoy.  systemd
# reads units from /usr/local/lib/systemd/system too, so the default needs
# nothing outside PREFIX.  MODE=asan installs the sanitizer build (tests).
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
PLUGINDIR := $(PREFIX)/lib/buoy
MANDIR  ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
UNITS   := $(notdir $(wildcard contrib/*.service))
INSTALLED := $(BINDIR)/buoy $(PLUGINDIR)/nbdkit-buoy-plugin.so $(MANDIR)/man1/buoy.1 \
             $(MANDIR)/man5/buoy-ha.conf.5 $(UNITS:%=$(SYSTEMDUNITDIR)/%)

install: $(OUT)/buoy $(PLUGIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 $(OUT)/buoy $(DESTDIR)$(BINDIR)/buoy
	install -m 755 $(PLUGIN) $(DESTDIR)$(PLUGINDIR)/nbdkit-buoy-plugin.so
	install -m 644 docs/buoy.1 $(DESTDIR)$(MANDIR)/man1/buoy.1
	install -m 644 docs/buoy-ha.conf.5 $(DESTDIR)$(MANDIR)/man5/buoy-ha.conf.5
	for u in $(UNITS); do \
	    sed 's|/usr/local/bin/buoy|$(BINDIR)/buoy|g' contrib/$$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
	    chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
	    mv $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done

# Only the files make install wrote, and the plugin directory it made.
uninstall:
	rm -f $(INSTALLED:%=$(DESTDIR)%)
	-rmdir $(DESTDIR)$(PLUGINDIR) 2>/dev/null

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(wildcard src/fe/nbdkit_*.c) $(UNIT_SRCS) $(TOOL_SRCS) $(BENCH_SRCS) $(wildcard src/*/*.h tests/unit/*.h)

clean:
	rm -rf build build-asan

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(PLUGIN_OBJS:.o=.d) $(UNIT_SRCS:tests/unit/%.c=$(OUT)/tests/unit/%.d) \
         $(TOOL_SRCS:tests/tools/%.c=$(OUT)/tests/tools/%.d) $(BENCH_SRCS:bench/%.c=$(OUT)/bench/%.d)
.SECONDARY:
