# lua-voiceclone: `make test` and `make demo` install what they need
# (scripts/bootstrap), build, and run. See README.md.
#
#   make build LUA=lua5.1|lua5.2|lua5.3|lua5.4|luajit   (default lua5.4)
#   make test  LUA=...     the whole suite under that interpreter (-Werror)
#   make install [PREFIX=/usr/local] [DESTDIR=] [LUA=...]
#   make rock [ROCK_TREE=dir]   make docs   make clean
#   make fuzz [FUZZ_SECONDS=60]   make test-valgrind
#
# CPPFLAGS, CFLAGS and LDFLAGS are honoured (e.g. dpkg-buildflags'); -Werror
# only comes with WERROR=-Werror, which `make test` (and so CI) sets.

LUA      ?= lua5.4
CC       ?= cc
LUAS     := lua5.1 lua5.2 lua5.3 lua5.4 luajit

# The version lives in one place, VC_VERSION in lua-voiceclone/src/vc.h:
# the module's _VERSION, the User-Agent and `voiceclone --version` come from
# it; spec/version_spec.lua checks that the rockspecs, the man page and
# CHANGELOG.md agree.
VERSION := $(shell sed -n 's/^\#define VC_VERSION "\([^"]*\)".*/\1/p' lua-voiceclone/src/vc.h)

# Each Lua's headers by pkg-config (Debian names its .pc files after the
# interpreters); lua-compat-5.3 (Debian lua-compat53-dev) gives every one the
# 5.3 API. Its header checks the version, so one copy serves them all; it
# comes after the Lua's own directory, whose lua.h wins.
# LuaRocks (the rockspec's `make` build, target rock-core) gives LUA_INCDIR
# instead: then LUA is not needed.
COMPAT53_INCDIR ?= /usr/include/lua5.1
ifdef LUA_INCDIR
LUA_CFLAGS := -I$(LUA_INCDIR) -I$(COMPAT53_INCDIR)
else
ifeq ($(filter $(LUA),$(LUAS)),)
$(error LUA must be one of: $(LUAS))
endif
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA) 2>/dev/null) -I$(COMPAT53_INCDIR)
endif
LUA_LIBS   := $(shell pkg-config --libs $(LUA) 2>/dev/null)
# curl.h is on the compiler's own path on Debian (the multiarch directory);
# CURL_INCDIR/CURL_LIBDIR (LuaRocks passes them) for anywhere else.
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null) $(if $(CURL_INCDIR),-I$(CURL_INCDIR))
CURL_LIBS   := $(if $(CURL_LIBDIR),-L$(CURL_LIBDIR)) $(or $(shell pkg-config --libs libcurl 2>/dev/null),-lcurl)
# libcrypto (OpenSSL; Debian libssl-dev) gives gateway.c the HMAC-SHA1 and
# Base64 of the API gateway's key-pair signature; OPENSSL_INCDIR and
# OPENSSL_LIBDIR (LuaRocks passes them) for anywhere else.
CRYPTO_CFLAGS := $(shell pkg-config --cflags libcrypto 2>/dev/null) $(if $(OPENSSL_INCDIR),-I$(OPENSSL_INCDIR))
CRYPTO_LIBS   := $(if $(OPENSSL_LIBDIR),-L$(OPENSSL_LIBDIR)) $(or $(shell pkg-config --libs libcrypto 2>/dev/null),-lcrypto)
LIBS       := $(CURL_LIBS) $(CRYPTO_LIBS) -lm

WERROR     ?=
WARNINGS   := -Wall -Wextra $(WERROR)
CFLAGS     ?= -O2 -g
ALL_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
              $(WARNINGS) $(CPPFLAGS) $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
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

# scripts/bootstrap installs Debian packages; packagers whose build
# dependencies are already there pass BOOTSTRAP=: to skip it.
BOOTSTRAP ?= scripts/bootstrap

.PHONY: all build bootstrap test test-asan test-valgrind fuzz fuzz-build demo bench soak rock rock-core install docs clean FORCE

all: build

bootstrap:
	@$(BOOTSTRAP) --lua $(LUA)

build: $(CORE) $(EMBED)

$(CORE): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(SOURCES) $(ALL_LDFLAGS) $(LIBS)

# The embedding example: Lua and the C core linked into one program.
$(EMBED): lua-voiceclone/examples/embed/host.c $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARNINGS) $(CPPFLAGS) $(CFLAGS) $(LUA_CFLAGS) $(CURL_CFLAGS) \
	    $(CRYPTO_CFLAGS) -o $@ lua-voiceclone/examples/embed/host.c $(SOURCES) $(LDFLAGS) $(LUA_LIBS) $(LIBS)

$(CORE_ASAN): $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 $(SANITIZE) -o $@ $(SOURCES) $(ALL_LDFLAGS) $(SANITIZE) $(LIBS)

# The specs start their own sandbox; scripts/run-specs prints the closing
# "N passed, N failed" line CI reads.
test: bootstrap
	@$(MAKE) --no-print-directory build WERROR=-Werror
	@VOICECLONE_LUA=$(LUA) VOICECLONE_CPATH="$(BUILD)/?.so" VOICECLONE_EMBED_HOST=$(EMBED) \
	 scripts/run-specs

# Lua itself is not instrumented: the sanitizer runtimes are preloaded into
# the Lua running the specs, which loads the instrumented core; the commands
# and servers the specs start run without the preload, on the plain build.
test-asan: bootstrap
	@$(MAKE) --no-print-directory build $(CORE_ASAN) WERROR=-Werror
	@VOICECLONE_LUA=$(LUA) VOICECLONE_SPEC_CPATH="build-asan/$(LUA)/?.so" \
	 VOICECLONE_CPATH="$(BUILD)/?.so" VOICECLONE_EMBED_HOST=$(EMBED) \
	 VOICECLONE_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	 scripts/run-specs

# --- make fuzz ------------------------------------------------------------
# libFuzzer targets (lua-voiceclone/fuzz/*.c, one per C path that reads
# outside bytes), each a program with Lua 5.4 and the C core linked in,
# built with clang's fuzzer and the sanitizers; scripts/fuzz runs each for
# FUZZ_SECONDS on a copy of its seeds (spec/fuzz/<target>/) and fails on a
# crash. A target that includes one of the core's .c files itself (to reach
# its private functions) does not link it a second time.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_TARGETS := $(patsubst lua-voiceclone/fuzz/%.c,%,$(wildcard lua-voiceclone/fuzz/*.c))
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/fuzz-,$(FUZZ_TARGETS))
FUZZ_CFLAGS  := -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror \
                $(shell pkg-config --cflags lua5.4 2>/dev/null) -I$(COMPAT53_INCDIR) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
FUZZ_LIBS    := $(shell pkg-config --libs lua5.4 2>/dev/null) $(LIBS) -ldl

$(FUZZ_BUILD)/fuzz-%: lua-voiceclone/fuzz/%.c lua-voiceclone/fuzz/common.h $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< \
	    $$(for f in $(SOURCES); do grep -q "^#include \"../src/$${f##*/}\"" $< || echo $$f; done) \
	    $(FUZZ_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz:
	@$(BOOTSTRAP) --lua lua5.4 --fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz $(FUZZ_TARGETS)

# The specs that exercise the C core, with the Lua running busted under
# valgrind's memcheck (its children run natively), on the plain build:
# fails on any error or byte definitely lost, and prints the totals. A few
# minutes.
test-valgrind:
	@$(BOOTSTRAP) --lua lua5.4 --valgrind
	@$(MAKE) --no-print-directory build LUA=lua5.4 WERROR=-Werror
	@scripts/test-valgrind

demo: bootstrap
	@$(MAKE) --no-print-directory build
	@VOICECLONE_CPATH="$(BUILD)/?.so" $(LUA) scripts/demo

# A benchmark, not a test: prints a table of ratios measured side by side
# (nginx, wrk, valgrind, taskset come from scripts/bootstrap --bench); it
# never fails on a missed target. A few minutes.
bench:
	@$(BOOTSTRAP) --lua lua5.4 --bench
	@$(BOOTSTRAP) --lua luajit
	@$(MAKE) --no-print-directory build LUA=lua5.4
	@$(MAKE) --no-print-directory build LUA=luajit
	@scripts/bench

# 10,000 jobs through the sandbox with every fault on, through direct calls,
# tasks and a batch; ends with "soak: N jobs, L lost, D duplicated, C crashes,
# R retries, T s" and fails unless L, D and C are 0.
soak: bootstrap
	@$(MAKE) --no-print-directory build
	@LUA=$(LUA) scripts/soak

# --- LuaRocks -------------------------------------------------------------
# The rockspecs use the `make` build type for the C core only, so that it is
# compiled with the same flags as here (-std=c99 -fvisibility=hidden: only
# luaopen_voiceclone_core is exported) plus LuaRocks' CFLAGS; LuaRocks itself
# copies the Lua modules and the command. Always rebuilt: one checkout may
# serve several Luas.
ROCK_CORE := build/luarocks/voiceclone/core.so
rock-core: FORCE
	@mkdir -p $(dir $(ROCK_CORE))
	$(CC) $(ALL_CFLAGS) -o $(ROCK_CORE) $(SOURCES) $(ALL_LDFLAGS) $(LIBS)

# Installs the rock into LuaRocks' tree for LUA (ROCK_TREE=dir for another
# one); LuaJIT takes 5.1's. --deps-mode=none: Debian's lua-cjson, luasocket
# and compat53 are not in LuaRocks' manifest.
ROCK_LUA_VERSION := $(if $(filter luajit,$(LUA)),5.1,$(patsubst lua%,%,$(LUA)))
rock:
	@$(BOOTSTRAP) --lua $(LUA) --rock
	luarocks --lua-version $(ROCK_LUA_VERSION) make --deps-mode=none \
	    rockspec/lua-voiceclone-scm-1.rockspec $(if $(ROCK_TREE),--tree $(ROCK_TREE))

# --- make install ---------------------------------------------------------
# The directories come from pkg-config for LUA (Debian's .pc files define
# INSTALL_LMOD and INSTALL_CMOD; LuaJIT's are taken from lua5.1's when it has
# none), for PREFIX. Debian's INSTALL_CMOD is its multiarch directory, which
# its Lua only searches under /usr: for any other PREFIX the core goes to
# PREFIX/lib/lua/<version>, where Lua's default path looks under /usr/local.
# All of them can be given on the command line.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
LUA_ABI := $(if $(filter luajit,$(LUA)),5.1,$(patsubst lua%,%,$(LUA)))
pc_var   = $(shell pkg-config --define-variable=prefix=$(PREFIX) --variable=$(1) $(2) 2>/dev/null)
lua_pc   = $(or $(call pc_var,$(1),$(LUA)),$(call pc_var,$(1),lua$(LUA_ABI)))
PC_PREFIX    := $(shell pkg-config --variable=prefix $(LUA) 2>/dev/null)
INSTALL_LMOD ?= $(or $(call lua_pc,INSTALL_LMOD),$(PREFIX)/share/lua/$(LUA_ABI))
INSTALL_CMOD ?= $(or $(if $(filter $(PC_PREFIX),$(PREFIX)),$(call lua_pc,INSTALL_CMOD)),$(PREFIX)/lib/lua/$(LUA_ABI))
LUA_BIN  := $(shell command -v $(LUA) 2>/dev/null || echo /usr/bin/$(LUA))
LUA_MODULES := $(wildcard lua-voiceclone/voiceclone/*.lua lua-voiceclone/voiceclone/cli/*.lua lua-voiceclone/voiceclone/sandbox/*.lua)
MANPAGE := lua-voiceclone/man/voiceclone.1

install:
	@$(BOOTSTRAP) --lua $(LUA) --build
	@$(MAKE) --no-print-directory $(CORE)
	install -d '$(DESTDIR)$(INSTALL_CMOD)/voiceclone' '$(DESTDIR)$(INSTALL_LMOD)/voiceclone/sandbox' '$(DESTDIR)$(INSTALL_LMOD)/voiceclone/cli' \
	    '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1'
	install -m 755 $(CORE) '$(DESTDIR)$(INSTALL_CMOD)/voiceclone/core.so'
	for f in $(patsubst lua-voiceclone/%,%,$(LUA_MODULES)); do \
	    install -m 644 "lua-voiceclone/$$f" '$(DESTDIR)$(INSTALL_LMOD)/'"$$f" || exit 1; done
	@# The command, for the Lua it was installed for, finding the modules
	@# where they were installed even when that is not on Lua's default path.
	{ echo '#!$(LUA_BIN)'; \
	  echo 'do -- make install: where the modules are'; \
	  echo '  local l, c = "$(INSTALL_LMOD)", "$(INSTALL_CMOD)"'; \
	  echo '  if not package.path:find(l .. "/?.lua", 1, true) then package.path = l .. "/?.lua;" .. l .. "/?/init.lua;" .. package.path end'; \
	  echo '  if not package.cpath:find(c .. "/?.so", 1, true) then package.cpath = c .. "/?.so;" .. package.cpath end'; \
	  echo 'end'; \
	  sed 1d scripts/voiceclone; } >'$(DESTDIR)$(BINDIR)/voiceclone.tmp'
	chmod 755 '$(DESTDIR)$(BINDIR)/voiceclone.tmp'
	mv '$(DESTDIR)$(BINDIR)/voiceclone.tmp' '$(DESTDIR)$(BINDIR)/voiceclone'
	install -m 644 $(MANPAGE) '$(DESTDIR)$(MANDIR)/man1/voiceclone.1'

# --- make docs ------------------------------------------------------------
# The reference (LDoc, Debian lua-ldoc) of the Lua modules and of the C
# functions they hand out (lua-voiceclone/doc/core.luadoc) into doc/.
docs:
	@$(BOOTSTRAP) --docs
	ldoc -c lua-voiceclone/doc/config.ld .

clean:
	rm -rf build build-asan build-fuzz demo-out doc voiceclone/core.so
	rm -f *.o lua-voiceclone/src/*.o
	-rmdir voiceclone 2>/dev/null || true

FORCE:
