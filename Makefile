# lua-voiceclone: `make test` and `make demo` install what they need
# (scripts/bootstrap), build, and run. See README.md.
#
#   make build LUA=lua5.1|lua5.2|lua5.3|lua5.4|luajit   (default lua5.4)
#   make test  LUA=...     the whole suite under that interpreter

LUA      ?= lua5.4
CC       ?= cc
LUAS     := lua5.1 lua5.2 lua5.3 lua5.4 luajit

ifeq ($(filter $(LUA),$(LUAS)),)
$(error LUA must be one of: $(LUAS))
endif

# Each Lua's headers by pkg-config (Debian names its .pc files after the
# interpreters); lua-compat-5.3 (Debian lua-compat53-dev) gives every one the
# 5.3 API. Its header checks the version, so one copy serves them all; it
# comes after the Lua's own directory, whose lua.h wins.
COMPAT53_INCDIR ?= /usr/include/lua5.1
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA) 2>/dev/null) -I$(COMPAT53_INCDIR)
LUA_LIBS   := $(shell pkg-config --libs $(LUA) 2>/dev/null)
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null)

WARNINGS   := -Wall -Wextra -Werror
CFLAGS     ?= -O2 -g
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
              $(WARNINGS) $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS)
# The module never links liblua: the host program provides it.
LDFLAGS    ?=
ALL_LDFLAGS := -shared $(LDFLAGS)

SOURCES := $(wildcard lua-voiceclone/src/*.c)
HEADERS := $(wildcard lua-voiceclone/src/*.h)
BUILD     := build/$(LUA)
CORE      := $(BUILD)/voiceclone/core.so
CORE_ASAN := build-asan/$(LUA)/voiceclone/core.so
EMBED     := $(BUILD)/embed-host
SANITIZE  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all build bootstrap test test-asan demo bench soak rock clean

all: build

bootstrap:
	@scripts/bootstrap --lua $(LUA)

build: $(CORE) $(EMBED)

$(CORE): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(SOURCES) $(ALL_LDFLAGS) $(CURL_LIBS) -lm

# The embedding example: Lua and the C core linked into one program.
$(EMBED): lua-voiceclone/examples/embed/host.c $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARNINGS) $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS) \
	    -o $@ lua-voiceclone/examples/embed/host.c $(SOURCES) $(LUA_LIBS) $(CURL_LIBS) -lm

$(CORE_ASAN): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 $(SANITIZE) -o $@ $(SOURCES) $(ALL_LDFLAGS) $(SANITIZE) $(CURL_LIBS) -lm

# The specs start their own sandbox; scripts/run-specs prints the closing
# "N passed, N failed" line CI reads.
test: bootstrap
	@$(MAKE) --no-print-directory build
	@VOICECLONE_LUA=$(LUA) VOICECLONE_CPATH="$(BUILD)/?.so" VOICECLONE_EMBED_HOST=$(EMBED) \
	 scripts/run-specs

# Lua itself is not instrumented: the sanitizer runtimes are preloaded.
test-asan: bootstrap
	@$(MAKE) --no-print-directory build $(CORE_ASAN)
	@VOICECLONE_LUA=$(LUA) VOICECLONE_CPATH="build-asan/$(LUA)/?.so" VOICECLONE_EMBED_HOST=$(EMBED) \
	 VOICECLONE_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	 scripts/run-specs

demo: bootstrap
	@$(MAKE) --no-print-directory build
	@VOICECLONE_CPATH="$(BUILD)/?.so" $(LUA) scripts/demo

# A benchmark, not a test: prints a table of ratios measured side by side
# (nginx, wrk, valgrind, taskset come from scripts/bootstrap --bench); it
# never fails on a missed target. A few minutes.
bench:
	@scripts/bootstrap --lua lua5.4 --bench
	@scripts/bootstrap --lua luajit
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@$(MAKE) --no-print-directory build LUA=luajit
	@scripts/bench

# 10,000 jobs through the sandbox with every fault on, through direct calls,
# tasks and a batch; ends with "soak: N jobs, L lost, D duplicated, C crashes,
# R retries, T s" and fails unless L, D and C are 0.
soak: bootstrap
	@$(MAKE) --no-print-directory build
	@LUA=$(LUA) scripts/soak

# Installs the rock into LuaRocks' tree for LUA (ROCK_TREE=dir for another
# one); LuaJIT takes 5.1's. Debian keeps curl.h under the multiarch include
# directory, which LuaRocks does not search by itself.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
ROCK_LUA_VERSION := $(if $(filter luajit,$(LUA)),5.1,$(patsubst lua%,%,$(LUA)))
rock: bootstrap
	luarocks --lua-version $(ROCK_LUA_VERSION) $(if $(ROCK_TREE),--tree $(ROCK_TREE)) make --deps-mode=none \
	    rockspec/lua-voiceclone-scm-1.rockspec \
	    CURL_INCDIR=/usr/include/$(MULTIARCH) CURL_LIBDIR=/usr/lib/$(MULTIARCH)

clean:
	rm -rf build build-asan demo-out
