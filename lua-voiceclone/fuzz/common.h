/*
 * What every libFuzzer target shares: one Lua 5.4 state per process with the
 * C core linked in statically and preloaded (as examples/embed/host.c does),
 * the module state the core's functions carry as their upvalue, a client
 * that is never driven (so nothing reaches the network), and the checks
 * that turn a broken promise into a crash libFuzzer reports.
 *
 * A target that needs the core's private functions (the transport's header
 * and body callbacks, the calls' finish functions) includes that .c file
 * itself; the Makefile then leaves it out of the sources it links.
 *
 * Built by `make fuzz` (scripts/fuzz) with -fsanitize=fuzzer,address,undefined.
 */
#ifndef VC_FUZZ_COMMON_H
#define VC_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "../src/vc.h"

int luaopen_voiceclone_core(lua_State *L);

/* The credentials of the fuzz client: the key is what no answer may leak. */
#define FUZZ_SECRET_ID  "AKIDfuzz0123456789"
#define FUZZ_SECRET_KEY "fuzzKey0123456789abcdefghijklmno"
/* Never driven: a request started on it waits in its queue until canceled. */
#define FUZZ_ENDPOINT   "http://127.0.0.1:9"

/* A broken promise: print it and abort, which libFuzzer reports with the input. */
static inline void fuzz_fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static inline int fuzz_traceback(lua_State *L) {
    luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
    return 1;
}

/* Pushes the registry's copy of what fuzz_lua made: "core", "state", "client". */
static inline void fuzz_push(lua_State *L, const char *what) {
    lua_getfield(L, LUA_REGISTRYINDEX, what);
}

/* Calls f as a closure over the module state (as the core's own functions
 * are) with the nargs values at the top; leaves nresults results, or the
 * error with a traceback. Returns lua_pcall's status. */
static inline int fuzz_pcall(lua_State *L, lua_CFunction f, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs, status;
    lua_pushcfunction(L, fuzz_traceback);
    lua_insert(L, base + 1);
    fuzz_push(L, "state");
    lua_pushcclosure(L, f, 1);
    lua_insert(L, base + 2);
    status = lua_pcall(L, nargs, nresults, base + 1);
    lua_remove(L, base + 1);
    return status;
}

/* Calls core[name] with the nargs values at the top; a raise is a finding. */
static inline void fuzz_call_core(lua_State *L, const char *name, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, fuzz_traceback);
    lua_insert(L, base + 1);
    fuzz_push(L, "core");
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, base + 2);
    if (lua_pcall(L, nargs, nresults, base + 1) != LUA_OK) fuzz_fail(name, lua_tostring(L, -1));
    lua_remove(L, base + 1);
}

/* Pushes core.new's settings: the fuzz credentials and the endpoint at the top, popped. */
static inline void fuzz_push_settings(lua_State *L) {
    lua_createtable(L, 0, 4);
    lua_insert(L, -2);
    lua_setfield(L, -2, "endpoint");
    lua_pushliteral(L, FUZZ_SECRET_ID);
    lua_setfield(L, -2, "secret_id");
    lua_pushliteral(L, FUZZ_SECRET_KEY);
    lua_setfield(L, -2, "secret_key");
}

/* The process's one Lua state, made on the first input. */
static inline lua_State *fuzz_lua(void) {
    static lua_State *L;
    if (L) return L;
    if (!(L = luaL_newstate())) fuzz_fail("no Lua state", NULL);
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_voiceclone_core);
    lua_setfield(L, -2, "voiceclone.core");
    lua_pop(L, 2);
    lua_pushcfunction(L, fuzz_traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "voiceclone.core");
    if (lua_pcall(L, 1, 1, 1) != LUA_OK) fuzz_fail("require voiceclone.core", lua_tostring(L, -1));
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "core");
    /* the module state: the one upvalue of every function of the core */
    lua_getfield(L, -1, "job_from_json");
    if (!lua_getupvalue(L, -1, 1)) fuzz_fail("the core's functions have no module state", NULL);
    lua_setfield(L, LUA_REGISTRYINDEX, "state");
    lua_pop(L, 1);
    lua_getfield(L, -1, "new");
    lua_pushliteral(L, FUZZ_ENDPOINT);
    fuzz_push_settings(L);
    if (lua_pcall(L, 1, 2, 1) != LUA_OK || !lua_isuserdata(L, -2))
        fuzz_fail("core.new", luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "client");
    lua_settop(L, 0);
    return L;
}

/* After each input: nothing kept, every finalizer run, so that what an
 * input allocated is freed (or reported by LeakSanitizer) with it. */
static inline void fuzz_done(lua_State *L) {
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
}

/* Aborts if the secret key is in any string (key or value) reachable from
 * the value at idx; records (Job, Model) are read through core.totable. */
static inline void fuzz_check_no_key(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, NULL);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        size_t key_len = sizeof FUZZ_SECRET_KEY - 1, i;
        for (i = 0; i + key_len <= len; i++)
            if (memcmp(s + i, FUZZ_SECRET_KEY, key_len) == 0) fuzz_fail("the secret key reached Lua", s);
        break;
    }
    case LUA_TUSERDATA:
        if (luaL_testudata(L, idx, VC_JOB) || luaL_testudata(L, idx, VC_MODEL)) {
            lua_pushvalue(L, idx);
            fuzz_call_core(L, "totable", 1, 1);
            fuzz_check_no_key(L, -1, depth + 1);
            lua_pop(L, 1);
        }
        break;
    case LUA_TTABLE:
        if (depth > 80) break;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            fuzz_check_no_key(L, -2, depth + 1);
            fuzz_check_no_key(L, -1, depth + 1);
            lua_pop(L, 1);
        }
        break;
    default:
        break;
    }
}

/* What a caller does with a Job: every core function that reads its data. */
static inline void fuzz_use_job(lua_State *L, int idx) {
    static const char *const readers[] = {"job_status", "job_is_final", "job_result", "totable", NULL};
    int i;
    idx = lua_absindex(L, idx);
    for (i = 0; readers[i]; i++) {
        lua_pushvalue(L, idx);
        fuzz_call_core(L, readers[i], 1, 0);
    }
    luaL_tolstring(L, idx, NULL);
    lua_pop(L, 1);
}

/* An error from the core: a table with a string kind and message, and a
 * __tostring that works. */
static inline void fuzz_check_error(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) fuzz_fail("nil without an error table", luaL_typename(L, idx));
    if (lua_getfield(L, idx, "kind") != LUA_TSTRING) fuzz_fail("an error without a kind", NULL);
    if (lua_getfield(L, idx, "message") != LUA_TSTRING) fuzz_fail("an error without a message", NULL);
    lua_pop(L, 2);
    luaL_tolstring(L, idx, NULL);
    lua_pop(L, 1);
}

#endif
