/*
 * luaopen_voiceclone_core: the C core of lua-voiceclone. The public module
 * is the Lua one (require "voiceclone"); this one is its implementation.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "vc.h"

/* Registers funcs into the table at the top, each with copies of the three
 * shared upvalues found at stack index base. */
void vc_setfuncs(lua_State *L, const luaL_Reg *funcs, int base) {
    lua_pushvalue(L, base);
    lua_pushvalue(L, base + 1);
    lua_pushvalue(L, base + 2);
    luaL_setfuncs(L, funcs, VC_UPVALUES);
}

/* Our own lua-cjson instance: its settings never touch anyone else's. */
static void push_cjson(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson.safe");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "new");
    lua_call(L, 0, 1);
    lua_remove(L, -2);
    /* A job is a few levels deep: refuse pathological nesting early. */
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, 64);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "encode");
    lua_getfield(L, -2, "decode");
    lua_getfield(L, -3, "null");
    lua_remove(L, -4);
}

/* core.now(): a monotonic clock in seconds, for deadlines. */
static int core_now(lua_State *L) {
    lua_pushnumber(L, vc_now());
    return 1;
}

/* core.fsync(file): flushes a Lua file and has the system write it to disk
 * (a journal record must survive a crash). true, or nil and a message. */
static int core_fsync(lua_State *L) {
    luaL_Stream *stream = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    if (!stream->closef) return luaL_error(L, "attempt to use a closed file");
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

    lua_newtable(L);                 /* module */
    push_cjson(L);                   /* module, encode, decode, null */
    vc_client_open(L);
    vc_job_open(L);
    vc_model_open(L);
    lua_pop(L, VC_UPVALUES);
    vc_error_open(L);

    lua_pushcfunction(L, core_now);
    lua_setfield(L, -2, "now");
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
