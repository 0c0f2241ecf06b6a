/*
 * luaopen_voiceclone_core: the C core of lua-voiceclone. The public module
 * is the Lua one (require "voiceclone"); this one is its implementation.
 * Every function gets the module state as its one upvalue: nothing lives
 * in C globals, so two Lua states never share a setting.
 */
#include <errno.h>
#include <string.h>
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
    lua_getfield(L, -1, "encode");
    lua_rawseti(L, -3, VC_ENCODE);
    lua_getfield(L, -1, "decode");
    lua_rawseti(L, -3, VC_DECODE);
    lua_getfield(L, -1, "null");
    lua_rawseti(L, -3, VC_NULL);
    lua_pop(L, 1);
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

/* core.fsync(file): flushes a Lua file and has the system write it to disk
 * (a journal record must survive a crash). true, or nil and a message. */
static int core_fsync(lua_State *L) {
    luaL_Stream *stream = luaL_checkudata(L, 1, LUA_FILEHANDLE);
#if LUA_VERSION_NUM >= 502
    int closed = stream->closef == NULL;
#else
    int closed = stream->f == NULL;   /* 5.1 and LuaJIT: the FILE* comes first, NULL once closed */
#endif
    if (closed) return luaL_error(L, "attempt to use a closed file");
    if (fflush(stream->f) != 0 || fsync(fileno(stream->f)) != 0)
        return luaL_fileresult(L, 0, NULL);
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

VC_EXPORT int luaopen_voiceclone_core(lua_State *L) {
    static const char *const states[] = {
        "SUBMITTED", "PROCESSING", "COMPLETED", "ERROR", "CANCELED"
    };
    static const char *const types[] = {"GENERATE", "TRAIN"};

    lua_settop(L, 0);
    lua_newtable(L);                 /* module */
    push_state(L);                   /* module, state */
    vc_client_open(L, 2);
    vc_call_open(L, 2);
    vc_download_open(L, 2);
    vc_loop_open(L, 2);
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
    push_enum(L, states, 5);
    lua_setfield(L, -2, "state");
    push_enum(L, types, 2);
    lua_setfield(L, -2, "type");
    lua_pushliteral(L, VC_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
