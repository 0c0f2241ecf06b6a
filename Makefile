# lua-voiceclone: `make test` and `make demo` install what they need
# (scripts/bootstrap), build, and run. See README.md.

LUA      ?= lua5.4
CC       ?= cc
BUSTED   ?= $(LUA) /usr/bin/busted

PKG_CFLAGS := $(shell pkg-config --cflags lua5.4 libcurl 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null) -lm
WARNINGS   := -Wall -Wextra -Werror
CFLAGS     ?= -O2 -g
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
              $(WARNINGS) $(CFLAGS) $(PKG_CFLAGS)
# The module never links liblua: the host program provides it.
LDFLAGS    ?=
ALL_LDFLAGS := -shared $(LDFLAGS)

SOURCES := $(wildcard lua-voiceclone/src/*.c)
HEADERS := $(wildcard lua-voiceclone/src/*.h)
CORE      := build/voiceclone/core.so
CORE_ASAN := build-asan/voiceclone/core.so
EMBED     := build/embed-host
SANITIZE  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all build bootstrap test test-asan demo bench rock clean

all: build

bootstrap:
	@scripts/bootstrap

build: $(CORE) $(EMBED)

$(CORE): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(SOURCES) $(ALL_LDFLAGS) $(PKG_LIBS)

# The embedding example: Lua and the C core linked into one program.
$(EMBED): lua-voiceclone/examples/embed/host.c $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARNINGS) $(CFLAGS) $(PKG_CFLAGS) -o $@ \
	    lua-voiceclone/examples/embed/host.c $(SOURCES) \
	    $$(pkg-config --libs lua5.4 libcurl) -lm

$(CORE_ASAN): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 $(SANITIZE) -o $@ $(SOURCES) $(ALL_LDFLAGS) $(SANITIZE) $(PKG_LIBS)

# The specs start their own sandbox; scripts/run-specs prints the closing
# "N passed, N failed" line CI reads.
test: bootstrap
	@$(MAKE) --no-print-directory build
	@scripts/run-specs

# Lua itself is not instrumented: the sanitizer runtimes are preloaded.
test-asan: bootstrap
	@$(MAKE) --no-print-directory build $(CORE_ASAN)
	@VOICECLONE_CPATH="build-asan/?.so" \
	 VOICECLONE_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	 scripts/run-specs

demo: bootstrap
	@$(MAKE) --no-print-directory build
	@scripts/demo

# A benchmark, not a test: prints a table of ratios measured side by side
# (nginx, wrk, valgrind, taskset come from scripts/bootstrap --bench); it
# never fails on a missed target. About a minute.
bench:
	@scripts/bootstrap --bench
	@$(MAKE) --no-print-directory build
	@scripts/bench

# Installs the rock into LuaRocks' tree (ROCK_TREE=dir for another one).
# Debian keeps curl.h under the multiarch include directory, which
# LuaRocks does not search by itself.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
rock: bootstrap
	luarocks --lua-version 5.4 $(if $(ROCK_TREE),--tree $(ROCK_TREE)) make --deps-mode=none \
	    rockspec/lua-voiceclone-scm-1.rockspec \
	    CURL_INCDIR=/usr/include/$(MULTIARCH) CURL_LIBDIR=/usr/lib/$(MULTIARCH)

clean:
	rm -rf build build-asan demo-out
