/*
 * luaopen_voiceclone_core: the C core of lua-voiceclone. The public module
 * is the Lua one (require "voiceclone"); this one is its implementation.
 * Every function gets the module state as its one upvalue: nothing lives
 * in C globals, so two Lua states never share a setting.
 */
#define _GNU_SOURCE   /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include "vc.h"

void vc_setfuncs(lua_State *L, const luaL_Reg *funcs, int state) {
    lua_pushvalue(L, state);
    luaL_setfuncs(L, funcs, 1);
}

void vc_push_state(lua_State *L, int slot) {
    lua_rawgeti(L, VC_STATE, slot);
}

/* The module state: our own lua-cjson instance, whose settings never touch
 * anyone else's. */
static void push_state(lua_State *L) {
    lua_createtable(L, VC_STATE_SIZE, 0);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson.safe");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_remove(L, -2);                            /* state, cjson */
    /* A job is a few levels deep: refuse pathological nesting early. */
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, 64);
    lua_call(L, 1, 0);
    /* JSON's numbers only: not 0x3, NaN or Infinity */
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode");
    lua_rawseti(L, -3, VC_ENCODE);
    lua_getfield(L, -1, "decode");
    lua_rawseti(L, -3, VC_DECODE);
    lua_getfield(L, -1, "null");
    lua_rawseti(L, -3, VC_NULL);
    lua_pop(L, 1);
}

double vc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* core.now(): a monotonic clock in seconds, for deadlines. */
static int core_now(lua_State *L) {
    lua_pushnumber(L, vc_now());
    return 1;
}

/* core.sleep(seconds): a blocking pause, for client:sleep outside a task. */
static int core_sleep(lua_State *L) {
    double seconds = luaL_checknumber(L, 1);
    struct timespec left;
    if (!(seconds > 0)) return 0;                 /* NaN too */
    if (seconds > 86400.0 * 365) seconds = 86400.0 * 365;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {}
    return 0;
}

/* The FILE* of the open Lua file at idx; raises if closed. */
static FILE *check_file(lua_State *L, int idx) {
    luaL_Stream *stream = luaL_checkudata(L, idx, LUA_FILEHANDLE);
#if LUA_VERSION_NUM >= 502
    int closed = stream->closef == NULL;
#else
    int closed = stream->f == NULL;   /* 5.1 and LuaJIT: the FILE* comes first, NULL once closed */
#endif
    if (closed) luaL_error(L, "attempt to use a closed file");
    return stream->f;
}

/* core.fsync(file): flushes a Lua file and has the system write it to disk
 * (a journal record must survive a crash). true, or nil and a message. */
static int core_fsync(lua_State *L) {
    FILE *f = check_file(L, 1);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) return luaL_fileresult(L, 0, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.lock(file [, wait]): an exclusive flock on the open file, held until
 * it is closed (or the process ends, even by a crash). true; or nil and a
 * "locked" error when another holds it and wait is not true. */
static int core_lock(lua_State *L) {
    FILE *f = check_file(L, 1);
    int wait = lua_toboolean(L, 2);
    while (flock(fileno(f), LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) return vc_fail(L, "locked", NULL, "another process holds it");
        return luaL_fileresult(L, 0, NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void push_enum(lua_State *L, const char *const names[], int count) {
    int i;
    lua_createtable(L, 0, count);
    for (i = 0; i < count; i++) {
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, names[i]);
    }
}

/* Keeps this library mapped until the process ends. LuaJIT's lua_close
 * unloads C modules before it runs the finalizers of the userdata they
 * made, so a client still open at exit would have its __gc called in
 * unmapped code. (Linked into a host program, this finds the program.) */
static void stay_loaded(void) {
    Dl_info self;
    if (dladdr((void *)stay_loaded, &self) && self.dli_fname)
        dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

VC_EXPORT int luaopen_voiceclone_core(lua_State *L) {
    static const char *const states[] = {
        "SUBMITTED", "PROCESSING", "COMPLETED", "ERROR", "CANCELED"
    };
    static const char *const types[] = {"GENERATE", "TRAIN"};

    stay_loaded();
    lua_settop(L, 0);
    lua_newtable(L);                 /* module */
    push_state(L);                   /* module, state */
    vc_client_open(L, 2);
    vc_call_open(L, 2);
    vc_download_open(L, 2);
    vc_gateway_open(L, 2);
    vc_loop_open(L, 2);
    vc_record_functions(L);
    vc_job_open(L, 2);
    vc_model_open(L, 2);
    vc_error_open(L);
    lua_rawgeti(L, 2, VC_NULL);
    lua_setfield(L, 1, "null");
    lua_pop(L, 1);
    VC_STACK(L, 1);

    lua_pushcfunction(L, core_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, core_sleep);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, core_fsync);
    lua_setfield(L, -2, "fsync");
    lua_pushcfunction(L, core_lock);
    lua_setfield(L, -2, "lock");
    push_enum(L, states, 5);
    lua_setfield(L, -2, "state");
    push_enum(L, types, 2);
    lua_setfield(L, -2, "type");
    lua_pushliteral(L, VC_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
